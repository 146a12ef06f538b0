"""
Frozen helper models under DeepSpeed ZeRO-3.

With ZeRO-3 and `zero3_init_flag: true`, every `from_pretrained` that runs after the training arguments are built is
wrapped in `deepspeed.zero.Init`: the parameters are partitioned across processes and each process keeps an empty
placeholder. The policy is gathered layer by layer by its DeepSpeed engine, but a model the trainer only calls (the
VQ image decoder, the T5 text encoder, CLIP and judge models behind the rewards) has no engine: its weights stay
empty and the first decode fails with shapes of size 0.

These models are frozen and small next to the policy, so every process keeps a full copy:

- load them inside [`frozen_model_loading`], which switches transformers' ZeRO-3 detection off for the duration;
- or pass an already partitioned model through [`materialize_frozen`], which gathers each parameter once and
  replaces it with a plain tensor.

Both are no-ops without DeepSpeed ZeRO-3.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn


def is_partitioned(param: torch.Tensor) -> bool:
    """Whether `param` is a ZeRO-3 partitioned parameter (DeepSpeed tags them with `ds_id`)."""
    return hasattr(param, "ds_id")


@contextlib.contextmanager
def frozen_model_loading() -> Iterator[None]:
    """
    Load models whole, outside ZeRO-3 partitioning, inside this block.

    Example:

    ```python
    >>> from transformers import T5EncoderModel
    >>> from trl_ext.distributed import frozen_model_loading
    >>> with frozen_model_loading():
    ...     encoder = T5EncoderModel.from_pretrained("google/flan-t5-xl")  # doctest: +SKIP
    ```
    """
    try:
        from transformers.integrations import deepspeed as hf_deepspeed
    except ImportError:  # pragma: no cover - transformers always ships the module
        yield
        return
    saved = hf_deepspeed._hf_deepspeed_config_weak_ref
    hf_deepspeed._hf_deepspeed_config_weak_ref = None
    try:
        yield
    finally:
        hf_deepspeed._hf_deepspeed_config_weak_ref = saved


def materialize_frozen(module: nn.Module | None) -> nn.Module | None:
    """
    Make every ZeRO-3 partitioned parameter of `module` a full, plain tensor on each process, in place.

    All processes must call it together (each parameter is all-gathered once). Parameters that are not partitioned
    are left as they are, so it is safe to call on any model.
    """
    if module is None:
        return None
    partitioned = [(name, p) for name, p in module.named_parameters(remove_duplicate=False) if is_partitioned(p)]
    if not partitioned:
        return module
    import deepspeed

    replacements: dict[int, nn.Parameter] = {}
    for _, param in partitioned:
        if id(param) in replacements:
            continue  # tied weights: gather once, share the replacement
        with deepspeed.zero.GatheredParameters([param], modifier_rank=None):
            full = param.data.detach().clone()
        replacements[id(param)] = nn.Parameter(full, requires_grad=param.requires_grad)
    for name, param in partitioned:
        owner_name, _, attr = name.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        owner._parameters[attr] = replacements[id(param)]
    return module
