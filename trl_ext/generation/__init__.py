from .masked_diffusion import (
    MaskedDiffusionSampler,
    MaskedDiffusionSamplerOutput,
    block_transfer_schedule,
    dream_transfer_schedule,
)

__all__ = [
    "MaskedDiffusionSampler",
    "MaskedDiffusionSamplerOutput",
    "block_transfer_schedule",
    "dream_transfer_schedule",
]
