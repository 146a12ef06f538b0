"""
Masked log-likelihood estimators for masked-diffusion LMs (DiffuCoder's coupled sampling and its ablations).

A masked-diffusion LM has no tractable sequence log-probability; GRPO instead uses, per completion token `k`, a
surrogate built from the log-probabilities the model gives the clean token at positions where it was masked. An
estimate is a *plan* of `P` forward passes over the same sequence, each with its own set of masked completion tokens,
and per-token coefficients: `est_k = sum_p coef[p, k] * log p_p(token_k)`, with `coef = 0` where pass `p` does not
score token `k`.

- `coupled` (paper, default): t ~ U(t_min, t_max), R ~ U(0, 1) per token; pass F masks every completion token
  (coef 1/2), pass A masks `R < t` (coef 1/(2t)), pass B masks the complement `R >= t` (coef 1/(2(1-t))). A and B
  mask each completion token exactly once: `est_k = 0.5 * (logp_F(k) + w * logp_{pass masking k}(k))`.
- `coupled_no_full`: A and B alone (coef 1/t and 1/(1-t)).
- `independent`: F plus two *independent* masks with their own ratios (the uncoupled ablation: same expectation,
  more variance).
- `d1`: one pass with every completion token masked and each prompt token masked with probability `p` (d1's
  diffu-GRPO), coef 1.

The prompt is never masked except by `d1`. Padding is never masked, scored or attended to.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

ESTIMATORS = ("coupled", "coupled_no_full", "independent", "d1")


@dataclass
class MaskPlan:
    """
    The masks and coefficients of one likelihood estimate for a batch.

    Args:
        completion_masks (`torch.BoolTensor` of shape `(batch_size, num_passes, completion_length)`):
            Which completion tokens each pass masks.
        coef (`torch.FloatTensor` of shape `(batch_size, num_passes, completion_length)`):
            Weight of each pass's log-probability of each token in the estimate (0 = not scored).
        prompt_masks (`torch.BoolTensor` of shape `(batch_size, num_passes, prompt_length)`, *optional*):
            Which prompt tokens each pass masks (`d1` only).
    """

    completion_masks: torch.BoolTensor
    coef: torch.FloatTensor
    prompt_masks: torch.BoolTensor | None = None

    def __getitem__(self, rows) -> MaskPlan:
        prompt_masks = None if self.prompt_masks is None else self.prompt_masks[rows]
        return MaskPlan(self.completion_masks[rows], self.coef[rows], prompt_masks)


def _ratio(batch: int, t_min: float, t_max: float, generator, device) -> torch.Tensor:
    return t_min + (t_max - t_min) * torch.rand(batch, 1, generator=generator, device=device)


def draw_mask_plan(
    completion_mask: torch.Tensor,
    estimator: str = "coupled",
    t_min: float = 0.2,
    t_max: float = 0.8,
    generator: torch.Generator | None = None,
    prompt_mask: torch.Tensor | None = None,
    prompt_mask_prob: float = 0.15,
    scored_mask: torch.Tensor | None = None,
) -> MaskPlan:
    """
    Draw the masks of one estimate.

    Args:
        completion_mask (`torch.Tensor` of shape `(batch_size, completion_length)`):
            1 for completion tokens that the passes mask (and score, unless `scored_mask` says otherwise), 0 for
            padding.
        estimator (`str`, *optional*, defaults to `"coupled"`):
            One of `"coupled"`, `"coupled_no_full"`, `"independent"`, `"d1"`.
        t_min (`float`, *optional*, defaults to `0.2`), t_max (`float`, *optional*, defaults to `0.8`):
            Range of the mask ratio t; must satisfy `0 < t_min <= t_max < 1`.
        generator (`torch.Generator`, *optional*):
            A private RNG (never the global one), on the device of `completion_mask`.
        prompt_mask (`torch.Tensor` of shape `(batch_size, prompt_length)`, *optional*):
            Real prompt tokens; required for `"d1"`.
        prompt_mask_prob (`float`, *optional*, defaults to `0.15`):
            `d1`'s probability of masking each prompt token.
        scored_mask (`torch.Tensor` of shape `(batch_size, completion_length)`, *optional*):
            The tokens whose estimate is computed (coefficient kept); defaults to `completion_mask`. DiffuCoder's
            setting masks the whole sampled canvas (`completion_mask` all ones) but scores only the tokens up to the
            first EOS.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"`likelihood_estimator` must be one of {ESTIMATORS}, got {estimator!r}.")
    if not 0 < t_min <= t_max < 1:
        raise ValueError(f"The mask ratio range must satisfy 0 < mask_t_min <= mask_t_max < 1, got ({t_min}, {t_max}).")
    device = completion_mask.device
    valid = completion_mask.bool()
    batch, length = valid.shape

    def uniform():
        return torch.rand(batch, length, generator=generator, device=device)

    if estimator == "d1":
        if prompt_mask is None:
            raise ValueError("The `d1` estimator masks prompt tokens and needs `prompt_mask`.")
        noise = torch.rand(prompt_mask.shape, generator=generator, device=device)
        prompt_masks = (noise < prompt_mask_prob) & prompt_mask.bool()
        return _scored(MaskPlan(valid[:, None], valid[:, None].float(), prompt_masks[:, None]), scored_mask)

    full = valid
    if estimator == "independent":
        t_a, t_b = (_ratio(batch, t_min, t_max, generator, device) for _ in range(2))
        mask_a = (uniform() < t_a) & valid
        mask_b = (uniform() < t_b) & valid
        weight_a, weight_b = 1 / t_a, 1 / t_b
    else:
        t = _ratio(batch, t_min, t_max, generator, device)
        r = uniform()
        mask_a = (r < t) & valid
        mask_b = (r >= t) & valid
        weight_a, weight_b = 1 / t, 1 / (1 - t)
    coef_a = mask_a * weight_a
    coef_b = mask_b * weight_b
    if estimator == "coupled_no_full":
        return _scored(MaskPlan(torch.stack([mask_a, mask_b], 1), torch.stack([coef_a, coef_b], 1).float()), scored_mask)
    masks = torch.stack([full, mask_a, mask_b], 1)
    coef = 0.5 * torch.stack([full.float(), coef_a, coef_b], 1)
    return _scored(MaskPlan(masks, coef.float()), scored_mask)


def _scored(plan: MaskPlan, scored_mask: torch.Tensor | None) -> MaskPlan:
    if scored_mask is None:
        return plan
    return MaskPlan(plan.completion_masks, plan.coef * scored_mask[:, None].float(), plan.prompt_masks)


def build_noisy_inputs(
    prompt_ids: torch.Tensor,
    completion_ids: torch.Tensor,
    plan: MaskPlan,
    mask_token_id: int,
) -> torch.Tensor:
    """The `(num_passes * batch_size, prompt_length + completion_length)` inputs, pass-major (row = p * B + b)."""
    batch, num_passes = plan.coef.shape[:2]
    prompts = prompt_ids[None].expand(num_passes, -1, -1)
    if plan.prompt_masks is not None:
        prompts = prompts.masked_fill(plan.prompt_masks.transpose(0, 1), mask_token_id)
    completions = completion_ids[None].expand(num_passes, -1, -1)
    completions = completions.masked_fill(plan.completion_masks.transpose(0, 1), mask_token_id)
    return torch.cat([prompts, completions], dim=-1).reshape(num_passes * batch, -1)


def estimate_log_likelihood(
    score_fn,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    plan: MaskPlan,
    mask_token_id: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    The estimate for every completion token, from *one* batched forward over all passes that projects through the
    LM head only the positions with a non-zero coefficient.

    Args:
        score_fn (`Callable`):
            `score_fn(input_ids, attention_mask, rows, positions, targets) -> (logps, entropies)`, e.g.
            [`~trl_ext.models.MaskedDiffusionAdapter.score_tokens`] bound to a model.
        prompt_ids, prompt_mask (`torch.Tensor` of shape `(batch_size, prompt_length)`): left-padded prompts.
        completion_ids, completion_mask (`torch.Tensor` of shape `(batch_size, completion_length)`): completions.
        plan ([`MaskPlan`]): masks and coefficients.
        mask_token_id (`int`): the mask token.

    Returns:
        `tuple[torch.Tensor, torch.Tensor]`: the per-token estimates `(batch_size, completion_length)` (float32) and
        the mean entropy of the predictive distributions that were scored at each token (for logging).
    """
    batch, num_passes, length = plan.coef.shape
    prompt_len = prompt_ids.size(1)
    input_ids = build_noisy_inputs(prompt_ids, completion_ids, plan, mask_token_id)
    attention_mask = torch.cat([prompt_mask, completion_mask], dim=1).repeat(num_passes, 1)
    pass_idx, row_idx, tok_idx = (plan.coef.transpose(0, 1) != 0).nonzero(as_tuple=True)
    rows = pass_idx * batch + row_idx
    targets = completion_ids[row_idx, tok_idx]
    logps, entropies = score_fn(input_ids, attention_mask, rows, prompt_len + tok_idx, targets)
    coef = plan.coef[row_idx, pass_idx, tok_idx]
    estimate = torch.zeros(batch, length, dtype=torch.float32, device=completion_ids.device)
    estimate = estimate.index_put((row_idx, tok_idx), coef * logps.float(), accumulate=True)
    entropy_sum = torch.zeros_like(estimate).index_put((row_idx, tok_idx), entropies.detach().float(), accumulate=True)
    counts = torch.zeros_like(estimate).index_put((row_idx, tok_idx), torch.ones_like(coef), accumulate=True)
    return estimate, entropy_sum / counts.clamp(min=1)
