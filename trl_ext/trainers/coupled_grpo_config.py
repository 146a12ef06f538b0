from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig

from ..generation.masked_diffusion import ALGORITHMS
from .coupled_estimator import ESTIMATORS


@dataclass
class CoupledGRPOConfig(GRPOConfig):
    r"""
    Configuration for [`CoupledGRPOTrainer`]: GRPO for masked-diffusion LMs with DiffuCoder's coupled log-likelihood
    estimate ([paper](https://huggingface.co/papers/2506.20639)).

    Defaults follow the paper: rollout temperature 1.2 and top-p 0.95, entropy-ordered whole-canvas decoding with one
    token per step, clip `epsilon=0.5` (the estimate is a scaled surrogate, not a log-probability), `beta=0.01`,
    `num_iterations=2` with a fresh mask per iteration, no reward scaling, and a token-mean loss over the
    micro-batch (`loss_type="bnpo"`). Every [`~trl.GRPOConfig`] parameter is available too.

    > Parameters that control the diffusion model

    Parameters:
        diffusion_type (`str`, *optional*, defaults to `"auto"`):
            `"dream"` (Dream/DiffuCoder: logits shifted by one), `"llada"` (not shifted) or `"auto"` (read from the
            model config's `model_type` or `diffusion_type`).
        mask_token_id (`int`, *optional*):
            Mask token id. Defaults to the tokenizer's `mask_token_id`, then the model config's.

    > Parameters that control diffusion sampling (rollouts)

    Parameters:
        diffusion_steps (`int`, *optional*):
            Denoising steps per completion. Defaults to `max_completion_length` (one token per step).
        diffusion_alg (`str`, *optional*, defaults to `"entropy"`):
            Reveal order: `"origin"`, `"maskgit_plus"`, `"topk_margin"` or `"entropy"`.
        diffusion_alg_temp (`float`, *optional*):
            If > 0, positions to reveal are sampled from `softmax(confidence / alg_temp)` rather than taken top-k.
        diffusion_eps (`float`, *optional*, defaults to `1e-3`):
            End of the time grid of the whole-canvas schedule.
        block_length (`int`, *optional*):
            Decode semi-autoregressively (LLaDA/d1) in blocks of this many tokens; `None` decodes the whole canvas.
        confidence_threshold (`float`, *optional*):
            Fast-dLLM parallel decoding: reveal every token whose probability exceeds this threshold.

    > Parameters that control the likelihood estimate

    Parameters:
        likelihood_estimator (`str`, *optional*, defaults to `"coupled"`):
            `"coupled"` (paper), `"coupled_no_full"` (without the fully masked pass), `"independent"` (uncoupled
            masks, the ablation) or `"d1"` (one fully masked pass plus random prompt masking).
        mask_t_min (`float`, *optional*, defaults to `0.2`), mask_t_max (`float`, *optional*, defaults to `0.8`):
            Range of the mask ratio t; the paper avoids extreme `1/t` weights.
        d1_prompt_mask_prob (`float`, *optional*, defaults to `0.15`):
            Probability of masking each prompt token with `likelihood_estimator="d1"`.
        advantage_baseline (`str`, *optional*, defaults to `"mean"`):
            `"mean"` (paper's headline row) or `"leave_one_out"` (the shipped code: `G/(G-1)` times the mean-baseline
            advantage).
    """

    # Diffusion model
    diffusion_type: str = field(
        default="auto",
        metadata={"help": "'dream' (shifted logits), 'llada' (unshifted) or 'auto'.", "choices": ["auto", "dream", "llada"]},
    )
    mask_token_id: int | None = field(
        default=None, metadata={"help": "Mask token id; defaults to the tokenizer's, then the model config's."}
    )

    # Sampling
    diffusion_steps: int | None = field(
        default=None, metadata={"help": "Denoising steps per completion; defaults to `max_completion_length`."}
    )
    diffusion_alg: str = field(
        default="entropy", metadata={"help": "Reveal order.", "choices": list(ALGORITHMS)}
    )
    diffusion_alg_temp: float | None = field(
        default=None, metadata={"help": "If > 0, sample the positions to reveal from softmax(confidence / alg_temp)."}
    )
    diffusion_eps: float = field(default=1e-3, metadata={"help": "End of the whole-canvas time grid."})
    block_length: int | None = field(
        default=None, metadata={"help": "Semi-autoregressive block length; None decodes the whole canvas at once."}
    )
    confidence_threshold: float | None = field(
        default=None, metadata={"help": "Reveal every token whose probability exceeds this (Fast-dLLM)."}
    )

    # Likelihood estimate
    likelihood_estimator: str = field(
        default="coupled", metadata={"help": "Masked log-likelihood estimator.", "choices": list(ESTIMATORS)}
    )
    mask_t_min: float = field(default=0.2, metadata={"help": "Lower end of the mask ratio range."})
    mask_t_max: float = field(default=0.8, metadata={"help": "Upper end of the mask ratio range."})
    d1_prompt_mask_prob: float = field(
        default=0.15, metadata={"help": "Prompt masking probability of the 'd1' estimator."}
    )
    advantage_baseline: str = field(
        default="mean",
        metadata={"help": "'mean' or 'leave_one_out' baseline.", "choices": ["mean", "leave_one_out"]},
    )

    # Paper defaults for inherited parameters
    temperature: float = field(default=1.2, metadata={"help": "Rollout sampling temperature (paper: 1.2)."})
    top_p: float = field(default=0.95, metadata={"help": "Rollout nucleus sampling cutoff."})
    epsilon: float = field(default=0.5, metadata={"help": "Clip range of the surrogate ratio (paper: 0.5)."})
    beta: float = field(default=0.01, metadata={"help": "KL coefficient (paper: 0.01)."})
    num_iterations: int = field(
        default=2, metadata={"help": "PPO iterations per rollout batch; each gets a fresh mask (paper: 2)."}
    )
    scale_rewards: str = field(default="none", metadata={"help": "Reward scaling (paper: none)."})
    loss_type: str = field(default="bnpo", metadata={"help": "Token-mean over the micro-batch (paper)."})
    max_completion_length: int | None = field(default=256, metadata={"help": "Completion canvas length."})

    def __post_init__(self):
        if self.diffusion_type not in ("auto", "dream", "llada"):
            raise ValueError(f"`diffusion_type` must be 'auto', 'dream' or 'llada', got {self.diffusion_type!r}.")
        if self.diffusion_alg not in ALGORITHMS:
            raise ValueError(f"`diffusion_alg` must be one of {ALGORITHMS}, got {self.diffusion_alg!r}.")
        if self.likelihood_estimator not in ESTIMATORS:
            raise ValueError(
                f"`likelihood_estimator` must be one of {ESTIMATORS}, got {self.likelihood_estimator!r}."
            )
        if not 0 < self.mask_t_min <= self.mask_t_max < 1:
            raise ValueError(
                "The mask ratio range must lie inside (0, 1) with mask_t_min <= mask_t_max, got "
                f"mask_t_min={self.mask_t_min}, mask_t_max={self.mask_t_max}. The paper uses (0.2, 0.8)."
            )
        if not 0 <= self.d1_prompt_mask_prob < 1:
            raise ValueError(f"`d1_prompt_mask_prob` must be in [0, 1), got {self.d1_prompt_mask_prob}.")
        if self.advantage_baseline not in ("mean", "leave_one_out"):
            raise ValueError(
                f"`advantage_baseline` must be 'mean' or 'leave_one_out', got {self.advantage_baseline!r}."
            )
        if self.diffusion_steps is not None and self.diffusion_steps < 1:
            raise ValueError(f"`diffusion_steps` must be >= 1, got {self.diffusion_steps}.")
        if self.use_vllm:
            raise ValueError("`use_vllm=True` is not supported: vLLM does not serve masked-diffusion LMs.")
        super().__post_init__()
