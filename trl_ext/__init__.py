"""trl_ext: GRPO for generators TRL does not cover, built on TRL's own trainer seams."""

import os

# TRL sends telemetry on import unless told not to; training clusters are often offline.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0.dev0"

from .generation import ImageTokenSampler, MaskedDiffusionSampler  # noqa: E402
from .models import LlamaGenConfig, LlamaGenForImageGeneration, MaskedDiffusionAdapter  # noqa: E402
from .trainers import (  # noqa: E402
    AesCoderGRPOConfig,
    AesCoderGRPOTrainer,
    AesCoderSFTTrainer,
    ARImageGRPOConfig,
    ARImageGRPOTrainer,
    CoupledGRPOConfig,
    CoupledGRPOTrainer,
)

__all__ = [
    "ARImageGRPOConfig",
    "ARImageGRPOTrainer",
    "AesCoderGRPOConfig",
    "AesCoderGRPOTrainer",
    "AesCoderSFTTrainer",
    "CoupledGRPOConfig",
    "CoupledGRPOTrainer",
    "ImageTokenSampler",
    "LlamaGenConfig",
    "LlamaGenForImageGeneration",
    "MaskedDiffusionAdapter",
    "MaskedDiffusionSampler",
]
