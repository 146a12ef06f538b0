from .diffusion_lm import MaskedDiffusionAdapter, add_diffusion_scoring

__all__ = ["MaskedDiffusionAdapter", "add_diffusion_scoring"]
