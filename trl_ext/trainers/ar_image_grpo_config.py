from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig

from ..generation.image_tokens import CFG_SCHEDULES


@dataclass
class ARImageGRPOConfig(GRPOConfig):
    r"""
    Configuration for [`ARImageGRPOTrainer`]: GRPO for autoregressive image-token generators (LlamaGen), following
    AR-GRPO ([paper](https://huggingface.co/papers/2508.06924)).

    Defaults follow the paper's class-to-image run: rollouts at temperature 1 without top-k/top-p and with
    classifier-free guidance 2.0, log-probabilities from the conditional branch only, `num_generations=8`,
    `beta=0.1`, `learning_rate=1e-5` at a constant schedule, `epsilon=0.2`, group-normalised advantages and a
    token-mean loss over the micro-batch (`loss_type="bnpo"`, TRL 0.19's default, which the reference used). Its
    text-to-image run differs in `beta=1.0` and 600 steps. Every [`~trl.GRPOConfig`] parameter is available too;
    `max_completion_length` is ignored (an image is always `h * w` tokens, with no EOS).

    > Parameters that control image sampling (rollouts)

    Parameters:
        cfg_scale (`float`, *optional*, defaults to `2.0`):
            Classifier-free guidance scale `s >= 1`: rollouts sample from `u + s (c - u)`; 1 disables guidance.
        cfg_schedule (`str`, *optional*, defaults to `"constant"`):
            `"constant"` or `"linear"` (the scale rises from 1 to `cfg_scale` over the tokens).
        cfg_interval (`int`, *optional*):
            Guide only the first `cfg_interval` tokens; `None` guides them all.
        image_size (`int`, *optional*):
            Image side in pixels, checked against the generator's grid and the VQ stride. Defaults to
            `grid_size * stride`.

    > Parameters that control the log-probabilities

    Parameters:
        cfg_in_logprobs (`bool`, *optional*, defaults to `False`):
            `False`: score tokens under the conditional branch alone (the paper, and T2I-R1), although rollouts were
            sampled with guidance. `True`: score them under the same guided distribution the sampler drew from (both
            branches in one batched forward; twice the training compute), so that the policy ratio and KL refer to
            the distribution that generated the images, as in Flow-GRPO. Beyond the paper.

    > Parameters that control text conditioning (t2i)

    Parameters:
        max_caption_length (`int`, *optional*):
            Tokens per caption fed to the text encoder. Defaults to the generator's `num_condition_tokens` (120).

    > Parameters that control image logging

    Parameters:
        log_images_steps (`int`, *optional*, defaults to `50`):
            Log a grid of rollout images (TensorBoard) or a gallery (Weights & Biases) with their prompts and rewards
            every this many optimizer steps; 0 disables it.
        num_images_to_log (`int`, *optional*, defaults to `16`):
            Images per log (from the main process's share of the rollout).
    """

    # Sampling
    cfg_scale: float = field(default=2.0, metadata={"help": "Classifier-free guidance scale (>= 1; paper: 2.0)."})
    cfg_schedule: str = field(
        default="constant", metadata={"help": "Guidance schedule over tokens.", "choices": list(CFG_SCHEDULES)}
    )
    cfg_interval: int | None = field(
        default=None, metadata={"help": "Guide only the first this many tokens; None guides all."}
    )
    image_size: int | None = field(
        default=None, metadata={"help": "Image side in pixels; defaults to the generator grid times the VQ stride."}
    )

    # Log-probabilities
    cfg_in_logprobs: bool = field(
        default=False,
        metadata={
            "help": "Score tokens under the guided distribution the sampler used (True) or the conditional branch "
            "only (False, the paper)."
        },
    )

    # Text conditioning
    max_caption_length: int | None = field(
        default=None, metadata={"help": "Caption tokens fed to the text encoder; defaults to num_condition_tokens."}
    )

    # Image logging
    log_images_steps: int = field(
        default=50, metadata={"help": "Log rollout images every this many steps (0: never)."}
    )
    num_images_to_log: int = field(default=16, metadata={"help": "Images per image log."})

    # Paper defaults for inherited parameters
    num_generations: int | None = field(default=8, metadata={"help": "Images per prompt, G (paper: 8)."})
    beta: float = field(default=0.1, metadata={"help": "KL coefficient (paper: 0.1 for c2i, 1.0 for t2i)."})
    learning_rate: float = field(default=1e-5, metadata={"help": "Learning rate (paper: 1e-5)."})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "Learning-rate schedule (paper: constant)."})
    epsilon: float = field(default=0.2, metadata={"help": "Clip range of the policy ratio (paper: 0.2)."})
    loss_type: str = field(default="bnpo", metadata={"help": "Token-mean over the micro-batch (TRL 0.19, paper)."})
    disable_dropout: bool = field(default=True, metadata={"help": "Disable dropout in the generator."})

    def __post_init__(self):
        if self.cfg_scale < 1:
            raise ValueError(
                f"`cfg_scale` must be >= 1 (1 disables guidance), got {self.cfg_scale}. The paper samples with 2.0."
            )
        if self.cfg_schedule not in CFG_SCHEDULES:
            raise ValueError(f"`cfg_schedule` must be one of {CFG_SCHEDULES}, got {self.cfg_schedule!r}.")
        if self.cfg_interval is not None and self.cfg_interval < 0:
            raise ValueError(f"`cfg_interval` must be >= 0 or None, got {self.cfg_interval}.")
        if self.image_size is not None and self.image_size < 1:
            raise ValueError(f"`image_size` must be a positive number of pixels, got {self.image_size}.")
        if self.max_caption_length is not None and self.max_caption_length < 1:
            raise ValueError(f"`max_caption_length` must be >= 1, got {self.max_caption_length}.")
        if self.log_images_steps < 0 or self.num_images_to_log < 1:
            raise ValueError(
                f"`log_images_steps` must be >= 0 and `num_images_to_log` >= 1, got {self.log_images_steps} and "
                f"{self.num_images_to_log}."
            )
        if self.min_p is not None or self.repetition_penalty != 1.0:
            raise ValueError(
                "`min_p` and `repetition_penalty` are not supported for image tokens; use `top_k`/`top_p`/`temperature`."
            )
        if self.use_vllm:
            raise ValueError(
                "`use_vllm=True` is not supported: vLLM does not serve LlamaGen; rollouts run in-process."
            )
        if self.mask_truncated_completions:
            raise ValueError(
                "`mask_truncated_completions=True` would mask every image: an image is a fixed number of tokens with no "
                "EOS, so TRL counts each one as truncated. Leave it False."
            )
        super().__post_init__()
