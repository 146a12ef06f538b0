from .image_tokens import (
    ImageTokenSampler,
    ImageTokenSamplerOutput,
    cfg_scale_schedule,
    filter_logits,
    sample_categorical,
)
from .masked_diffusion import (
    MaskedDiffusionSampler,
    MaskedDiffusionSamplerOutput,
    block_transfer_schedule,
    dream_transfer_schedule,
)

__all__ = [
    "ImageTokenSampler",
    "ImageTokenSamplerOutput",
    "MaskedDiffusionSampler",
    "MaskedDiffusionSamplerOutput",
    "block_transfer_schedule",
    "cfg_scale_schedule",
    "dream_transfer_schedule",
    "filter_logits",
    "sample_categorical",
]
