"""
Rollout samplers for masked-diffusion language models.

The canvas is `prompt + max_new_tokens` mask tokens. Each step runs the model once, proposes a token for every
masked position of the active region and reveals some of them; revealed tokens are never re-masked. Three ways to
decide how many to reveal:

- **Whole canvas** (Dream/DiffuCoder): a time grid of `steps + 1` points from 1 to `eps`; at step `i` a fraction
  `1 - s/t` of the still-masked tokens is revealed (all of them at the last step).
- **Semi-autoregressive blocks** (LLaDA/d1): the completion is split into blocks of `block_length` decoded left to
  right, each with `steps / num_blocks` steps and an even share of its tokens per step.
- **Confidence threshold** (Fast-dLLM): every masked token of the active region whose sampled token has probability
  above `confidence_threshold` is revealed, at least one per step, so easy spans decode several tokens per forward.

Which tokens are revealed follows the order `alg`: `origin` (each masked token independently with probability
`1 - s/t`), `maskgit_plus` (probability of the sampled token), `topk_margin` (top-1 minus top-2 probability) or
`entropy` (negative entropy). With `alg_temp > 0` the positions are sampled (without replacement) from a softmax of
the confidences instead of taken top-k.

The sampler records the step at which each position was revealed, from which it reports *AR-ness*: the fraction of
revealed tokens that were among the leftmost still-masked positions when they were revealed (1.0 for strictly
left-to-right decoding).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.diffusion_lm import MaskedDiffusionAdapter, _unwrap

ALGORITHMS = ("origin", "maskgit_plus", "topk_margin", "entropy")


@dataclass
class MaskedDiffusionSamplerOutput:
    """
    Output of [`MaskedDiffusionSampler.sample`].

    Args:
        completion_ids (`torch.LongTensor` of shape `(batch_size, max_new_tokens)`):
            The decoded canvas after the prompt. Positions after a row's first EOS that were never revealed hold the
            pad token.
        completion_mask (`torch.LongTensor` of shape `(batch_size, max_new_tokens)`):
            1 up to and including the first EOS token (everything when there is none), 0 after.
        reveal_step (`torch.LongTensor` of shape `(batch_size, max_new_tokens)`):
            The forward pass (0-based) at which each position was revealed, -1 if it never was.
        ar_ness (`torch.FloatTensor` of shape `(batch_size,)`):
            Fraction of revealed tokens that were among the leftmost masked positions when revealed.
        num_forwards (`int`):
            Number of model forward passes.
    """

    completion_ids: torch.LongTensor
    completion_mask: torch.LongTensor
    reveal_step: torch.LongTensor
    ar_ness: torch.FloatTensor
    num_forwards: int

    @property
    def tokens_per_forward(self) -> float:
        return float(self.completion_mask.sum()) / max(self.num_forwards, 1) / self.completion_mask.size(0)


def dream_transfer_schedule(num_tokens: int, steps: int, eps: float = 1e-3) -> list[int]:
    """
    How many tokens the whole-canvas sampler reveals at each step: with the grid `t_i = linspace(1, eps, steps + 1)`,
    `floor(m * (1 - t_{i+1} / t_i))` of the `m` still-masked tokens, and all that remain at the last step. Computed in
    float32, as Dream's `diffusion_generate` does, so that the counts (and so greedy outputs) agree with it exactly.
    """
    grid = torch.linspace(1.0, eps, steps + 1, dtype=torch.float32)
    remaining, counts = num_tokens, []
    for i in range(steps):
        if i == steps - 1:
            count = remaining
        else:
            count = int(torch.tensor(float(remaining), dtype=torch.float32) * (1 - grid[i + 1] / grid[i]))
        counts.append(count)
        remaining -= count
    return counts


def block_transfer_schedule(block_length: int, steps: int) -> list[int]:
    """An even split of `block_length` tokens over `steps` steps, the remainder going to the first steps."""
    base, remainder = divmod(block_length, steps)
    return [base + (1 if i < remainder else 0) for i in range(steps)]


class MaskedDiffusionSampler:
    """
    Diffusion sampler for masked-diffusion LMs (Dream/DiffuCoder whole-canvas, LLaDA semi-AR blocks, Fast-dLLM
    confidence-threshold parallel decoding).

    Args:
        adapter ([`MaskedDiffusionAdapter`]):
            How to call the model (mask token, logit shift, bidirectional attention).
        max_new_tokens (`int`, *optional*, defaults to `256`):
            Completion canvas length.
        steps (`int`, *optional*):
            Number of denoising steps (defaults to `max_new_tokens`: one token per step). Ignored by threshold
            decoding, which takes as many steps as it needs.
        alg (`str`, *optional*, defaults to `"entropy"`):
            Reveal order: `"origin"`, `"maskgit_plus"`, `"topk_margin"` or `"entropy"`.
        temperature (`float`, *optional*, defaults to `0.0`):
            Token sampling temperature; 0 is greedy.
        top_p (`float`, *optional*):
            Nucleus sampling cutoff.
        top_k (`int`, *optional*):
            Top-k sampling cutoff.
        alg_temp (`float`, *optional*):
            If > 0, positions are sampled from `softmax(confidence / alg_temp)` instead of taken top-k.
        eps (`float`, *optional*, defaults to `1e-3`):
            End of the time grid of the whole-canvas schedule.
        block_length (`int`, *optional*):
            Decode semi-autoregressively in blocks of this many tokens; must divide `max_new_tokens`.
        confidence_threshold (`float`, *optional*):
            Reveal every token whose sampled-token probability exceeds this (at least one per step).
        eos_token_ids (`list[int]`, *optional*):
            Tokens that end a completion. A row stops once its first EOS and everything before it are revealed.
        pad_token_id (`int`, *optional*):
            Fills the positions of a stopped row that were never revealed (defaults to the first EOS id).
        suppress_token_ids (`list[int]`, *optional*):
            Ids never proposed for a masked position, in addition to the mask token (which is always excluded: a
            "revealed" mask token would leave its position masked forever).

    Every forward reveals at least one token (the mask token is never proposed, and the last step of each schedule
    reveals what remains), so a call makes at most `max(steps, max_new_tokens)` forwards; a loop that ever exceeded
    that bound raises instead of spinning.

    Example:

    ```python
    >>> import torch
    >>> from trl_ext.generation import MaskedDiffusionSampler
    >>> from trl_ext.models import MaskedDiffusionAdapter
    >>> from trl_ext.testing import make_tokenizer, make_tiny_dream_lm
    >>> tokenizer = make_tokenizer()
    >>> model = make_tiny_dream_lm(tokenizer)
    >>> sampler = MaskedDiffusionSampler(MaskedDiffusionAdapter.from_model(model, tokenizer), max_new_tokens=8)
    >>> prompt = tokenizer(["hi", "hello"], return_tensors="pt", padding=True)
    >>> out = sampler.sample(model, prompt.input_ids, prompt.attention_mask)
    >>> out.completion_ids.shape, out.num_forwards  # Dream's grid reveals 0 tokens at the first of 8 steps: no forward
    (torch.Size([2, 8]), 7)
    ```
    """

    def __init__(
        self,
        adapter: MaskedDiffusionAdapter,
        max_new_tokens: int = 256,
        steps: int | None = None,
        alg: str = "entropy",
        temperature: float = 0.0,
        top_p: float | None = None,
        top_k: int | None = None,
        alg_temp: float | None = None,
        eps: float = 1e-3,
        block_length: int | None = None,
        confidence_threshold: float | None = None,
        eos_token_ids: list[int] | None = None,
        pad_token_id: int | None = None,
        suppress_token_ids: list[int] | None = None,
    ):
        steps = max_new_tokens if steps is None else steps
        if max_new_tokens < 1:
            raise ValueError(f"`max_new_tokens` must be >= 1, got {max_new_tokens}.")
        if steps < 1:
            raise ValueError(f"`steps` (diffusion_steps) must be >= 1, got {steps}.")
        if alg not in ALGORITHMS:
            raise ValueError(f"`alg` must be one of {ALGORITHMS}, got {alg!r}.")
        if temperature < 0:
            raise ValueError(f"`temperature` must be >= 0, got {temperature}.")
        if top_p is not None and not 0 < top_p <= 1:
            raise ValueError(f"`top_p` must be in (0, 1], got {top_p}.")
        if top_k is not None and top_k < 1:
            raise ValueError(f"`top_k` must be >= 1, got {top_k}.")
        if not 0 < eps < 1:
            raise ValueError(f"`eps` must be in (0, 1), got {eps}.")
        if block_length is not None:
            if block_length < 1 or max_new_tokens % block_length:
                raise ValueError(f"`block_length` ({block_length}) must divide `max_new_tokens` ({max_new_tokens}).")
            num_blocks = max_new_tokens // block_length
            if confidence_threshold is None and steps % num_blocks:
                raise ValueError(
                    f"`steps` ({steps}) must be a multiple of the number of blocks ({num_blocks} = "
                    f"{max_new_tokens} / {block_length})."
                )
        if confidence_threshold is not None and not 0 < confidence_threshold <= 1:
            raise ValueError(f"`confidence_threshold` must be in (0, 1], got {confidence_threshold}.")
        if alg == "origin" and (block_length is not None or confidence_threshold is not None):
            raise ValueError("`alg='origin'` reveals at random and only supports whole-canvas decoding.")
        self.adapter = adapter
        self.max_new_tokens = max_new_tokens
        self.steps = steps
        self.alg = alg
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.alg_temp = alg_temp
        self.eps = eps
        self.block_length = block_length
        self.confidence_threshold = confidence_threshold
        self.eos_token_ids = list(eos_token_ids or [])
        self.pad_token_id = pad_token_id if pad_token_id is not None else (self.eos_token_ids or [0])[0]
        self.suppress_token_ids = sorted({adapter.mask_token_id, *(suppress_token_ids or [])})
        if set(self.suppress_token_ids) & set(self.eos_token_ids):
            raise ValueError(
                f"`suppress_token_ids` {self.suppress_token_ids} include an EOS id ({self.eos_token_ids}): completions "
                "could never end."
            )

    @classmethod
    def from_model(cls, model, tokenizer=None, adapter: MaskedDiffusionAdapter | None = None, **kwargs):
        """
        A sampler for `model` with the sampling defaults of its checkpoint (`generation_config.json`'s `steps`,
        `alg`, `temperature`, `top_p`, `top_k`, `alg_temp`, `eps`, as Dream/DiffuCoder checkpoints and models trained
        with [`CoupledGRPOTrainer`] write them), its stop tokens (see [`diffusion_stop_token_ids`]) and its
        tokenizer's padding. Keyword arguments override everything.

        Example:

        ```python
        >>> from trl_ext.generation import MaskedDiffusionSampler
        >>> from trl_ext.testing import make_tokenizer, make_tiny_dream_lm
        >>> tokenizer = make_tokenizer()
        >>> model = make_tiny_dream_lm(tokenizer)
        >>> model.generation_config.steps, model.generation_config.alg = 4, "maskgit_plus"
        >>> sampler = MaskedDiffusionSampler.from_model(model, tokenizer, max_new_tokens=8)
        >>> sampler.steps, sampler.alg
        (4, 'maskgit_plus')
        ```
        """
        from ..models.diffusion_lm import diffusion_stop_token_ids

        adapter = adapter or MaskedDiffusionAdapter.from_model(model, tokenizer)
        generation_config = getattr(_unwrap(model), "generation_config", None)
        options = sampling_defaults(generation_config)
        options["eos_token_ids"] = diffusion_stop_token_ids(tokenizer, generation_config)
        if tokenizer is not None and tokenizer.pad_token_id is not None:
            options["pad_token_id"] = tokenizer.pad_token_id
        options.update(kwargs)
        return cls(adapter, **options)

    # ------------------------------------------------------------------------------------------------------------
    def schedule(self) -> list[list[int]]:
        """Per block, the number of tokens revealed at each step (for the count-scheduled modes)."""
        if self.block_length is None:
            return [dream_transfer_schedule(self.max_new_tokens, self.steps, self.eps)]
        num_blocks = self.max_new_tokens // self.block_length
        return [block_transfer_schedule(self.block_length, self.steps // num_blocks)] * num_blocks

    def _propose(
        self, logits: torch.Tensor, generator, suppressed: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Sample a token per row of `logits` `(N, V)`; return `(tokens, confidence, token_probability)`. Follows Dream's
        `sample_tokens`: temperature, then top-p (the token that crosses `top_p` is kept), then top-k; the suppressed
        ids `suppressed` (the mask token first; built once per call by `sample`) get no probability at all.
        """
        logits = logits.float()
        if suppressed is None:
            suppressed = self._suppressed_index(logits.size(-1), logits.device)
        if suppressed.numel():
            logits = logits.index_fill(-1, suppressed, float("-inf"))
        if self.temperature > 0:
            logits = logits / self.temperature
        if self.top_p is not None and self.top_p < 1:
            sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
            cumulative = sorted_logits.softmax(-1).cumsum(-1)
            drop_sorted = cumulative > self.top_p
            drop_sorted[..., 1:] = drop_sorted[..., :-1].clone()
            drop_sorted[..., 0] = False
            drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
            logits = logits.masked_fill(drop, float("-inf"))
        if self.top_k is not None:
            kth = torch.topk(logits, min(self.top_k, logits.size(-1)), dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = logits.softmax(-1)
        if self.temperature > 0:
            tokens = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        else:
            tokens = probs.argmax(-1)
        token_prob = probs.gather(-1, tokens[:, None]).squeeze(-1)
        if self.alg == "topk_margin":
            top2 = probs.topk(2, dim=-1).values
            confidence = top2[:, 0] - top2[:, 1]
        elif self.alg == "entropy":
            confidence = (probs * torch.log(probs + 1e-10)).sum(-1)  # Dream's negative entropy, epsilon included
        else:
            confidence = token_prob
        return tokens, confidence, token_prob

    def _suppressed_index(self, vocab_size: int, device) -> torch.Tensor:
        ids = [i for i in self.suppress_token_ids if i < vocab_size]
        return torch.tensor(ids, dtype=torch.long, device=device)

    def _select(self, confidence: torch.Tensor, counts: torch.Tensor, generator) -> torch.Tensor:
        """Pick `counts[b]` positions per row from `confidence` `(B, C)` (-inf = not eligible)."""
        keys = confidence
        if self.alg_temp is not None and self.alg_temp > 0:
            # Gumbel-top-k is sampling without replacement from softmax(confidence / alg_temp).
            uniform = torch.rand(confidence.shape, generator=generator, device=confidence.device)
            keys = confidence / self.alg_temp - torch.log(-torch.log(uniform.clamp_min(1e-20)))
        ranks = keys.argsort(dim=-1, descending=True).argsort(dim=-1)
        return (ranks < counts[:, None]) & torch.isfinite(confidence)

    @torch.no_grad()
    def sample(
        self,
        model,
        prompt_ids: torch.LongTensor,
        prompt_mask: torch.LongTensor,
        generator: torch.Generator | None = None,
    ) -> MaskedDiffusionSamplerOutput:
        """
        Decode completions for left-padded prompts.

        Args:
            model: the masked-diffusion LM.
            prompt_ids (`torch.LongTensor` of shape `(batch_size, prompt_length)`): left-padded prompt ids.
            prompt_mask (`torch.LongTensor` of shape `(batch_size, prompt_length)`): 1 for real prompt tokens.
            generator (`torch.Generator`, *optional*): private RNG (on the model's device) for reproducible rollouts.
        """
        device = prompt_ids.device
        batch, prompt_len, length = prompt_ids.size(0), prompt_ids.size(1), self.max_new_tokens
        mask_id = self.adapter.mask_token_id
        canvas = torch.cat([prompt_ids, prompt_ids.new_full((batch, length), mask_id)], dim=1)
        attention_mask = torch.cat([prompt_mask, prompt_mask.new_ones(batch, length)], dim=1)
        completion = canvas[:, prompt_len:]  # a view: writes land in `canvas`
        reveal_step = torch.full((batch, length), -1, dtype=torch.long, device=device)
        ar_hits = torch.zeros(batch, device=device)
        done = torch.zeros(batch, dtype=torch.bool, device=device)
        eos = torch.tensor(self.eos_token_ids, device=device, dtype=torch.long)
        positions = torch.arange(length, device=device)
        num_blocks = 1 if self.block_length is None else length // self.block_length
        block_size = length // num_blocks
        schedule = self.schedule() if self.confidence_threshold is None else None
        grid = torch.linspace(1.0, self.eps, self.steps + 1, device=device)  # `origin`'s time grid
        step = 0
        # Every forward reveals at least one token except `origin`'s (which runs exactly `steps` per call): this bound
        # can only be passed by a bug, and then we stop rather than spin.
        max_forwards = max(self.steps, length)
        suppressed = None  # the suppressed ids as an index tensor, once the vocabulary size is known

        for block in range(num_blocks):
            in_block = (positions >= block * block_size) & (positions < (block + 1) * block_size)
            block_step = 0
            while True:
                masked = (completion == mask_id) & ~done[:, None]
                region = masked & in_block
                if not region.any():
                    break
                count = None
                if schedule is not None and self.alg != "origin":
                    count = schedule[block][block_step] if block_step < len(schedule[block]) else length
                    if count == 0:  # the grid rounds some early steps to zero tokens: skip their forward
                        block_step += 1
                        continue
                if step >= max_forwards:
                    raise RuntimeError(
                        f"MaskedDiffusionSampler made {step} forwards without finishing {int(region.sum())} masked "
                        f"positions (bound: max(steps, max_new_tokens) = {max_forwards}). This is a bug: please report "
                        "it with the sampler's settings."
                    )
                logits = self.adapter.completion_logits(model, canvas, attention_mask, length)
                if suppressed is None:
                    suppressed = self._suppressed_index(logits.size(-1), device)
                tokens, confidence, token_prob = self._propose(logits[region], generator, suppressed)
                if self.alg == "origin":
                    last = block_step >= self.steps - 1
                    p_reveal = 1.0 if last else float(1 - grid[block_step + 1] / grid[block_step])
                    reveal = torch.zeros_like(region)
                    draws = torch.rand(int(region.sum()), generator=generator, device=device) < p_reveal
                    reveal[region] = draws
                else:
                    full_conf = torch.full(region.shape, float("-inf"), device=device)
                    full_conf[region] = confidence
                    if self.confidence_threshold is not None:
                        full_prob = torch.zeros(region.shape, device=device)
                        full_prob[region] = token_prob
                        counts = torch.ones(batch, dtype=torch.long, device=device)
                        reveal = self._select(full_conf, counts, generator)
                        reveal |= region & (full_prob > self.confidence_threshold)
                    else:
                        counts = torch.minimum(region.sum(-1), torch.tensor(count, device=device))
                        reveal = self._select(full_conf, counts, generator)
                proposal = torch.full_like(completion, mask_id)
                proposal[region] = tokens
                # AR-ness: a revealed token counts when it is among the n leftmost masked positions (n = tokens
                # revealed in that row this step).
                masked_rank = masked.long().cumsum(-1) - 1
                n_revealed = reveal.sum(-1, keepdim=True)
                ar_hits += (reveal & (masked_rank < n_revealed)).sum(-1)
                completion[reveal] = proposal[reveal]
                reveal_step[reveal] = step
                step += 1
                block_step += 1
                if eos.numel():
                    done |= _finished_at_eos(completion, mask_id, eos)
        if eos.numel():
            completion.masked_fill_(completion == mask_id, self.pad_token_id)
        completion_mask = _mask_through_first_eos(completion, eos)
        revealed = (reveal_step >= 0).sum(-1).clamp(min=1)
        return MaskedDiffusionSamplerOutput(
            completion_ids=completion.clone(),
            completion_mask=completion_mask,
            reveal_step=reveal_step,
            ar_ness=ar_hits / revealed,
            num_forwards=step,
        )


def sampling_defaults(generation_config) -> dict:
    """
    The sampler arguments a checkpoint's generation config sets explicitly (Dream/DiffuCoder's `steps`, `alg`,
    `alg_temp`, `eps`; the `block_length` and `confidence_threshold` a trained model was rolled out with; and
    `temperature`, `top_p`, `top_k` where they differ from transformers' defaults).
    """
    if generation_config is None:
        return {}
    from transformers import GenerationConfig

    plain = GenerationConfig()
    options = {}
    for key in ("steps", "alg", "alg_temp", "eps", "block_length", "confidence_threshold"):
        value = getattr(generation_config, key, None)
        if value is not None:
            options[key] = value
    for key in ("temperature", "top_p", "top_k"):
        value = getattr(generation_config, key, None)
        if value is not None and value != getattr(plain, key, None):
            options[key] = value
    return options


def _finished_at_eos(completion: torch.Tensor, mask_id: int, eos: torch.Tensor) -> torch.Tensor:
    """Rows whose first EOS is revealed and preceded only by revealed tokens: nothing after it can matter."""
    is_eos = torch.isin(completion, eos)
    is_mask = completion == mask_id
    # Index of the first EOS and of the first mask (length if none).
    length = completion.size(1)
    idx = torch.arange(length, device=completion.device)
    first_eos = torch.where(is_eos, idx, length).min(-1).values
    first_mask = torch.where(is_mask, idx, length).min(-1).values
    return (first_eos < length) & (first_mask > first_eos)


def _mask_through_first_eos(completion: torch.Tensor, eos: torch.Tensor) -> torch.LongTensor:
    length = completion.size(1)
    idx = torch.arange(length, device=completion.device)
    if eos.numel() == 0:
        return torch.ones_like(completion)
    first_eos = torch.where(torch.isin(completion, eos), idx, length).min(-1).values
    return (idx[None, :] <= first_eos[:, None]).long()


__all__ = [
    "ALGORITHMS",
    "MaskedDiffusionSampler",
    "MaskedDiffusionSamplerOutput",
    "block_transfer_schedule",
    "dream_transfer_schedule",
    "sampling_defaults",
]
