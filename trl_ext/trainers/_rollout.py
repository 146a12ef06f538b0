"""What every trl_ext trainer's generation seam wraps its own sampler in."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from trl.extras.profiling import profiling_context
from trl.models import unwrap_model_for_generation


@contextlib.contextmanager
def rollout_model(trainer, profile_name: str) -> Iterator[torch.nn.Module]:
    """
    The policy unwrapped for sampling, as TRL's own generation does it: DeepSpeed-3 / FSDP parameters gathered,
    gradient checkpointing off, no autograd, the trainer's autocast, and the time recorded under `profile_name`.
    """
    with (
        profiling_context(trainer, profile_name),
        unwrap_model_for_generation(
            trainer.model_wrapped,
            trainer.accelerator,
            gather_deepspeed3_params=trainer.args.ds3_gather_for_generation,
            gradient_checkpointing_kwargs=trainer.args.gradient_checkpointing_kwargs,
        ) as unwrapped_model,
        torch.no_grad(),
        trainer._dist.summon_full_params(trainer.model_wrapped, recurse=False),
        trainer.accelerator.autocast(),
    ):
        yield unwrapped_model
