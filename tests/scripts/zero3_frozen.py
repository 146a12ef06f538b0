"""2 processes (torchrun): a frozen model loaded under ZeRO-3 is partitioned, and trl_ext.distributed undoes it."""

import sys

import deepspeed
import torch
from transformers import JanusVQVAE
from transformers.integrations import HfDeepSpeedConfig

from trl_ext.distributed import frozen_model_loading, is_partitioned, materialize_frozen
from trl_ext.models.llamagen.vq import decode_image_tokens

folder, out = sys.argv[1], sys.argv[2]
deepspeed.init_distributed(dist_backend="gloo")
rank = torch.distributed.get_rank()
expected = JanusVQVAE.from_pretrained(folder).state_dict()
# What `accelerate launch` with a ZeRO-3 config sets up before the recipe loads its models.
keep_alive = HfDeepSpeedConfig({"zero_optimization": {"stage": 3}, "train_batch_size": 2})

partitioned = JanusVQVAE.from_pretrained(folder)
result = {"partitioned_before": all(is_partitioned(p) for p in partitioned.parameters())}
materialize_frozen(partitioned)
with frozen_model_loading():
    whole = JanusVQVAE.from_pretrained(folder)
result["whole_not_partitioned"] = not any(is_partitioned(p) for p in whole.parameters())
for name, model in (("materialized", partitioned), ("whole", whole)):
    state = model.state_dict()
    result[name] = all(torch.equal(state[k], v) for k, v in expected.items()) and not any(
        is_partitioned(p) for p in model.parameters()
    )
    with torch.no_grad():
        tokens = torch.arange(4).view(1, 4) % model.quantize.embedding.weight.size(0)
        result[f"{name}_decodes"] = bool(torch.isfinite(decode_image_tokens(model, tokens)).all())
torch.save(result, f"{out}/rank{rank}.pt")
