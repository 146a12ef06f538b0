from .coupled_estimator import ESTIMATORS, MaskPlan, draw_mask_plan, estimate_log_likelihood
from .coupled_grpo_config import CoupledGRPOConfig
from .coupled_grpo_trainer import CoupledGRPOTrainer

__all__ = [
    "ESTIMATORS",
    "CoupledGRPOConfig",
    "CoupledGRPOTrainer",
    "MaskPlan",
    "draw_mask_plan",
    "estimate_log_likelihood",
]
