from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig

from ..generation.masked_diffusion import ALGORITHMS
from .coupled_estimator import ESTIMATORS

PAPER_TEMPERATURE = 1.2
PAPER_TOP_P = 0.95
PAPER_ALG = "entropy"


@dataclass
class CoupledGRPOConfig(GRPOConfig):
    r"""
    Configuration for [`CoupledGRPOTrainer`]: GRPO for masked-diffusion LMs with DiffuCoder's coupled log-likelihood
    estimate ([paper](https://huggingface.co/papers/2506.20639)).

    Defaults follow the paper: rollout temperature 1.2 and top-p 0.95, entropy-ordered whole-canvas decoding with one
    token per step, likelihood passes over the whole sampled canvas, clip `epsilon=0.5` (the estimate is a scaled
    surrogate, not a log-probability), `beta=0.01`, `num_iterations=2` with a fresh mask per iteration, no reward
    scaling, and a token-mean loss over the micro-batch (`loss_type="bnpo"`). Every [`~trl.GRPOConfig`] parameter is
    available too.

    Sampling parameters left unset (`None`: `diffusion_steps`, `diffusion_alg`, `diffusion_alg_temp`, `temperature`,
    `top_p`) take the checkpoint's own defaults from its `generation_config.json` (`steps`, `alg`, `alg_temp`,
    `temperature`, `top_p`) when it sets them, else the paper's values. The values a run samples with are written to
    the trained model's `generation_config.json`, so
    [`MaskedDiffusionSampler.from_model`](trl_ext.generation.MaskedDiffusionSampler.from_model) samples a saved or
    pushed model the way it was trained.

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
            Denoising steps per completion. Defaults to the checkpoint's `steps`, else `max_completion_length` (one
            token per step).
        diffusion_alg (`str`, *optional*):
            Reveal order: `"origin"`, `"maskgit_plus"`, `"topk_margin"` or `"entropy"`. Defaults to the checkpoint's
            `alg`, else `"entropy"` (the paper).
        diffusion_alg_temp (`float`, *optional*):
            If > 0, positions to reveal are sampled from `softmax(confidence / alg_temp)` rather than taken top-k.
            Defaults to the checkpoint's `alg_temp`.
        diffusion_eps (`float`, *optional*, defaults to `1e-3`):
            End of the time grid of the whole-canvas schedule.
        block_length (`int`, *optional*):
            Decode semi-autoregressively (LLaDA/d1) in blocks of this many tokens; `None` decodes the whole canvas.
        confidence_threshold (`float`, *optional*):
            Fast-dLLM parallel decoding: reveal every token whose probability exceeds this threshold.
        threshold_factor (`float`, *optional*):
            Fast-dLLM's factor rule instead: reveal the `n` most confident tokens for the largest `n` with
            `(n + 1) * (1 - c_n) < threshold_factor`. Exclusive with `confidence_threshold`.
        kv_cache (`str`, *optional*):
            Fast-dLLM's approximate KV cache for rollouts: `"prefix"` (prompt and finished blocks) or `"dual"` (the
            masked suffix too). The likelihoods are always recomputed without a cache, so a cache changes only which
            completions are drawn. Needs trl_ext's native Dream/LLaDA classes.
        cache_refresh (`int`, *optional*):
            Recompute the KV cache every this many steps inside a block (`1`: exact, as without a cache); by default
            once per block.

    > Parameters that control the likelihood estimate

    Parameters:
        likelihood_context (`str`, *optional*, defaults to `"canvas"`):
            What the likelihood passes see after the prompt. `"canvas"` (DiffuCoder's code): the whole sampled canvas
            of `max_completion_length` tokens, the part after the first EOS included and masked like the rest, while
            only the tokens up to and including the first EOS are scored. `"completion"`: the context ends at the first
            EOS. Canvas positions a rollout never decoded (a row stops once its answer is complete) hold the pad
            token.
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
        metadata={
            "help": "'dream' (shifted logits), 'llada' (unshifted) or 'auto'.",
            "choices": ["auto", "dream", "llada"],
        },
    )
    mask_token_id: int | None = field(
        default=None, metadata={"help": "Mask token id; defaults to the tokenizer's, then the model config's."}
    )

    # Sampling
    diffusion_steps: int | None = field(
        default=None, metadata={"help": "Denoising steps per completion; defaults to `max_completion_length`."}
    )
    diffusion_alg: str | None = field(
        default=None,
        metadata={
            "help": "Reveal order; defaults to the checkpoint's generation_config `alg`, else 'entropy' (paper).",
            "choices": [*ALGORITHMS, None],
        },
    )
    diffusion_alg_temp: float | None = field(
        default=None,
        metadata={
            "help": "If > 0, sample the positions to reveal from softmax(confidence / alg_temp); defaults to the "
            "checkpoint's `alg_temp`."
        },
    )
    diffusion_eps: float = field(default=1e-3, metadata={"help": "End of the whole-canvas time grid."})
    block_length: int | None = field(
        default=None, metadata={"help": "Semi-autoregressive block length; None decodes the whole canvas at once."}
    )
    confidence_threshold: float | None = field(
        default=None, metadata={"help": "Reveal every token whose probability exceeds this (Fast-dLLM)."}
    )
    threshold_factor: float | None = field(
        default=None,
        metadata={
            "help": "Fast-dLLM's factor rule: reveal the n most confident tokens for the largest n with "
            "(n + 1) * (1 - c_n) < threshold_factor. Exclusive with confidence_threshold."
        },
    )
    kv_cache: str | None = field(
        default=None,
        metadata={
            "help": "Approximate KV cache for rollouts (Fast-dLLM): 'prefix' (prompt and finished blocks) or 'dual' "
            "(the masked suffix too). Likelihoods are always computed without it.",
            "choices": ["prefix", "dual"],
        },
    )
    cache_refresh: int | None = field(
        default=None,
        metadata={
            "help": "Refresh the KV cache every this many steps within a block (1 = exact); default once per block."
        },
    )

    # Likelihood estimate
    likelihood_context: str = field(
        default="canvas",
        metadata={
            "help": "'canvas' (paper's code: the whole sampled canvas, post-EOS part included and masked, is the "
            "context; tokens up to the first EOS are scored) or 'completion' (context cut at the first EOS).",
            "choices": ["canvas", "completion"],
        },
    )
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
    temperature: float | None = field(
        default=None,
        metadata={
            "help": "Rollout sampling temperature; defaults to the checkpoint's generation_config `temperature`, "
            "else 1.2 (paper)."
        },
    )
    top_p: float | None = field(
        default=None,
        metadata={
            "help": "Rollout nucleus sampling cutoff; defaults to the checkpoint's generation_config `top_p`, else "
            "0.95 (paper)."
        },
    )
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
        if self.diffusion_alg is not None and self.diffusion_alg not in ALGORITHMS:
            raise ValueError(f"`diffusion_alg` must be one of {ALGORITHMS}, got {self.diffusion_alg!r}.")
        if self.likelihood_context not in ("canvas", "completion"):
            raise ValueError(
                f"`likelihood_context` must be 'canvas' or 'completion', got {self.likelihood_context!r}."
            )
        if self.temperature is not None and self.temperature < 0:
            raise ValueError(f"`temperature` must be >= 0, got {self.temperature}.")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"`top_p` must be in (0, 1], got {self.top_p}.")
        if self.likelihood_estimator not in ESTIMATORS:
            raise ValueError(f"`likelihood_estimator` must be one of {ESTIMATORS}, got {self.likelihood_estimator!r}.")
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
        if self.confidence_threshold is not None and not 0 < self.confidence_threshold <= 1:
            raise ValueError(
                f"`confidence_threshold` must be in (0, 1] (a token probability), got {self.confidence_threshold}."
            )
        if self.threshold_factor is not None:
            if not self.threshold_factor > 0:
                raise ValueError(f"`threshold_factor` must be > 0, got {self.threshold_factor}.")
            if self.confidence_threshold is not None:
                raise ValueError(
                    "Set `confidence_threshold` or `threshold_factor`, not both: each decides how many tokens a step "
                    "reveals."
                )
        if self.kv_cache not in (None, "prefix", "dual"):
            raise ValueError(f"`kv_cache` must be 'prefix', 'dual' or None, got {self.kv_cache!r}.")
        if self.cache_refresh is not None:
            if self.kv_cache is None:
                raise ValueError("`cache_refresh` is set but `kv_cache` is not: set `kv_cache: prefix` (or dual).")
            if not isinstance(self.cache_refresh, int) or self.cache_refresh < 1:
                raise ValueError(f"`cache_refresh` must be an integer >= 1 (steps), got {self.cache_refresh!r}.")
        if self.kv_cache is not None and self.diffusion_alg == "origin":
            raise ValueError("`kv_cache` needs a confidence-ordered `diffusion_alg` (not 'origin').")
        if self.block_length is not None and (
            self.block_length < 1
            or (self.max_completion_length is not None and self.max_completion_length % self.block_length)
        ):
            raise ValueError(
                f"`block_length` ({self.block_length}) must be >= 1 and divide `max_completion_length` "
                f"({self.max_completion_length})."
            )
        if not 0 < self.diffusion_eps < 1:
            raise ValueError(f"`diffusion_eps` must be in (0, 1), got {self.diffusion_eps}.")
        if self.diffusion_steps is not None and self.diffusion_steps < 1:
            raise ValueError(f"`diffusion_steps` must be >= 1, got {self.diffusion_steps}.")
        if self.use_vllm:
            raise ValueError("`use_vllm=True` is not supported: vLLM does not serve masked-diffusion LMs.")
        # GRPOConfig reads these as numbers; the trainer resolves them against the checkpoint's generation config
        # and remembers which ones the user left unset.
        self.unset_sampling_fields = [
            name
            for name in ("diffusion_steps", "diffusion_alg", "diffusion_alg_temp", "temperature", "top_p")
            if getattr(self, name) is None
        ]
        temperature, top_p = self.temperature, self.top_p
        self.temperature = PAPER_TEMPERATURE if temperature is None else temperature
        self.top_p = PAPER_TOP_P if top_p is None else top_p
        super().__post_init__()
