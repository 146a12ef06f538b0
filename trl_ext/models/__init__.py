from .diffusion_lm import MaskedDiffusionAdapter, add_diffusion_scoring
from .llamagen import LlamaGenConfig, LlamaGenForImageGeneration, LlamaGenKVCache

__all__ = [
    "LlamaGenConfig",
    "LlamaGenForImageGeneration",
    "LlamaGenKVCache",
    "MaskedDiffusionAdapter",
    "add_diffusion_scoring",
]
