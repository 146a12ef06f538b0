"""Run by tests/test_ar_image_grpo_multiprocess.py under `torchrun --nproc_per_node 2`: train, dump parameters."""

import os
import sys

import torch
from datasets import Dataset

from trl_ext.rewards.pixel import brightness_reward
from trl_ext.testing import make_tokenizer
from trl_ext.testing_image import make_tiny_t5_encoder
from trl_ext.trainers.ar_image_grpo_config import ARImageGRPOConfig
from trl_ext.trainers.ar_image_grpo_trainer import ARImageGRPOTrainer

condition_type, gpt_path, vq_path, out_dir = sys.argv[1:5]
args = ARImageGRPOConfig(
    output_dir=out_dir,
    num_generations=4,
    per_device_train_batch_size=4,
    max_steps=3,
    beta=0.1,
    cfg_scale=2.0,
    cfg_in_logprobs=True,
    learning_rate=0.05,
    bf16=False,
    use_cpu=True,
    report_to="none",
    save_strategy="no",
    logging_steps=1,
    gradient_checkpointing=False,
    disable_tqdm=True,
)
if condition_type == "c2i":
    dataset = Dataset.from_dict(
        {"prompt": [f"class {i % 5}" for i in range(64)], "class_label": [i % 5 for i in range(64)]}
    )
    extra = {}
else:
    tokenizer = make_tokenizer(with_mask_token=False)
    dataset = Dataset.from_dict({"prompt": [f"caption number {i}" for i in range(64)]})
    extra = {"text_encoder": make_tiny_t5_encoder(len(tokenizer)), "processing_class": tokenizer}
trainer = ARImageGRPOTrainer(gpt_path, brightness_reward, args=args, train_dataset=dataset, vq_model=vq_path, **extra)
trainer.train()
rank = int(os.environ.get("RANK", 0))
params = {n: p.detach().clone() for n, p in trainer.accelerator.unwrap_model(trainer.model).named_parameters()}
torch.save(
    {"params": params, "world_size": trainer.accelerator.num_processes}, os.path.join(out_dir, f"rank{rank}.pt")
)
