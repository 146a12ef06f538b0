from .aescoder_grpo_config import AesCoderGRPOConfig
from .aescoder_grpo_trainer import AesCoderGRPOTrainer, build_aesthetic_reward
from .ar_image_grpo_config import ARImageGRPOConfig
from .ar_image_grpo_trainer import ARImageGRPOTrainer
from .coupled_estimator import ESTIMATORS, MaskPlan, draw_mask_plan, estimate_log_likelihood
from .coupled_grpo_config import CoupledGRPOConfig
from .coupled_grpo_trainer import CoupledGRPOTrainer

__all__ = [
    "ARImageGRPOConfig",
    "ARImageGRPOTrainer",
    "AesCoderGRPOConfig",
    "AesCoderGRPOTrainer",
    "ESTIMATORS",
    "CoupledGRPOConfig",
    "CoupledGRPOTrainer",
    "MaskPlan",
    "build_aesthetic_reward",
    "draw_mask_plan",
    "estimate_log_likelihood",
]

# AesCoder's SFT stage (before AesCoderGRPOTrainer).
from .aescoder_sft_trainer import AesCoderSFTTrainer  # noqa: E402

__all__ += ["AesCoderSFTTrainer"]
