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

from ..models.diffusion_lm import MaskedDiffusionAdapter, _backbone_and_head, _unwrap

ALGORITHMS = ("origin", "maskgit_plus", "topk_margin", "entropy")
KV_CACHE_MODES = (None, "prefix", "dual")


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
        cache_hit_fraction (`float`):
            Fraction of the sequence positions of all forwards whose keys and values came from the KV cache instead
            of being computed (0 without `kv_cache`).
    """

    completion_ids: torch.LongTensor
    completion_mask: torch.LongTensor
    reveal_step: torch.LongTensor
    ar_ness: torch.FloatTensor
    num_forwards: int
    cache_hit_fraction: float = 0.0

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
        threshold_factor (`float`, *optional*):
            Fast-dLLM's factor rule for parallel decoding: reveal the `n` most confident tokens of a row for the
            largest `n` with `(n + 1) * (1 - c_n) < threshold_factor`, `c_n` the `n`-th highest sampled-token
            probability (at least one per step). Exclusive with `confidence_threshold`.
        kv_cache (`str`, *optional*):
            Fast-dLLM's approximate KV cache. `"prefix"`: the keys and values of everything before the current block
            (the prompt and the finished blocks) are computed once per block and reused while the block is refined;
            `"dual"`: those of the masked suffix after the block too, so a step runs only the block's tokens.
            Without `block_length` the block is the whole completion (only the prompt is cached). Needs a model with
            a native backbone that takes an HF `Cache` (trl_ext's Dream and LLaDA classes).
        cache_refresh (`int`, *optional*):
            Recompute the cache with a full forward every `cache_refresh` steps inside a block (besides each block's
            first step). `1` makes the cached sampler equal the uncached one token for token; larger is faster and
            more approximate. Defaults to once per block.

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
        threshold_factor: float | None = None,
        kv_cache: str | None = None,
        cache_refresh: int | None = None,
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
            if confidence_threshold is None and threshold_factor is None and steps % num_blocks:
                raise ValueError(
                    f"`steps` ({steps}) must be a multiple of the number of blocks ({num_blocks} = "
                    f"{max_new_tokens} / {block_length})."
                )
        if confidence_threshold is not None and not 0 < confidence_threshold <= 1:
            raise ValueError(f"`confidence_threshold` must be in (0, 1], got {confidence_threshold}.")
        if threshold_factor is not None:
            if not threshold_factor > 0:
                raise ValueError(f"`threshold_factor` must be > 0, got {threshold_factor}.")
            if confidence_threshold is not None:
                raise ValueError("Set `confidence_threshold` or `threshold_factor`, not both: each picks the tokens.")
        parallel = confidence_threshold is not None or threshold_factor is not None
        if alg == "origin" and (block_length is not None or parallel):
            raise ValueError("`alg='origin'` reveals at random and only supports whole-canvas decoding.")
        if kv_cache not in KV_CACHE_MODES:
            raise ValueError(f"`kv_cache` must be one of {KV_CACHE_MODES}, got {kv_cache!r}.")
        if cache_refresh is not None and (not isinstance(cache_refresh, int) or cache_refresh < 1):
            raise ValueError(f"`cache_refresh` must be an integer >= 1 (steps between refreshes), got {cache_refresh}.")
        if kv_cache is not None and alg == "origin":
            raise ValueError("`kv_cache` needs a confidence-ordered `alg` (not 'origin').")
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
        self.threshold_factor = threshold_factor
        self.kv_cache = kv_cache
        self.cache_refresh = cache_refresh
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

        if self.kv_cache is not None:
            self._check_cache_support(model)
        computed = total = 0  # sequence positions run through the model / in all forwards (cache hit fraction)
        for block in range(num_blocks):
            in_block = (positions >= block * block_size) & (positions < (block + 1) * block_size)
            block_step = 0
            window = None
            if self.kv_cache is not None:
                window = _CachedWindow(
                    self, attention_mask, prompt_len, block * block_size, (block + 1) * block_size, length
                )
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
                if window is None:
                    logits = self.adapter.completion_logits(model, canvas, attention_mask, length)
                    region_logits = logits[region]
                    computed += canvas.size(1)
                else:
                    logits = window.logits(model, canvas)
                    region_logits = logits[region[:, window.start : window.end]]
                    computed += window.computed
                if suppressed is None:
                    suppressed = self._suppressed_index(logits.size(-1), device)
                tokens, confidence, token_prob = self._propose(region_logits, generator, suppressed)
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
                    elif self.threshold_factor is not None:
                        full_prob = torch.full(region.shape, float("-inf"), device=device)
                        full_prob[region] = token_prob
                        counts = factor_rule_counts(full_prob, self.threshold_factor)
                        reveal = self._select_plain(full_prob, counts)
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
                total += canvas.size(1)
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
            cache_hit_fraction=1.0 - computed / total if total else 0.0,
        )

    def _check_cache_support(self, model) -> None:
        backbone, _ = _backbone_and_head(model)
        if backbone is None or not (self.adapter.native and self.adapter.pass_attention_mask):
            raise ValueError(
                f"`kv_cache={self.kv_cache!r}` needs a model whose backbone takes an HF `Cache` with a 2-D padding mask "
                f"(trl_ext's native Dream/DiffuCoder and LLaDA classes), got {type(_unwrap(model)).__name__}. Load "
                "the checkpoint without `trust_remote_code` (trl_ext registers the native classes) or set "
                "`kv_cache=None`."
            )

    @staticmethod
    def _select_plain(scores: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """The `counts[b]` highest `scores` of each row (-inf = not eligible)."""
        ranks = scores.argsort(dim=-1, descending=True).argsort(dim=-1)
        return (ranks < counts[:, None]) & torch.isfinite(scores)


def factor_rule_counts(token_prob: torch.Tensor, factor: float) -> torch.LongTensor:
    """
    Fast-dLLM's factor rule: per row of `token_prob` `(B, C)` (-inf where not eligible), the largest `n` such that
    `(n + 1) * (1 - c_n) < factor`, `c_n` the row's `n`-th highest probability; at least 1 and at most the number of
    eligible positions. As `c_n` falls with `n`, the condition holds for a prefix of `n = 1, 2, ...`.
    """
    eligible = torch.isfinite(token_prob).sum(-1)
    ordered = token_prob.sort(dim=-1, descending=True).values
    n = torch.arange(1, token_prob.size(-1) + 1, device=token_prob.device, dtype=ordered.dtype)
    holds = ((n + 1) * (1 - ordered) < factor) & torch.isfinite(ordered)
    counts = holds.long().cumprod(-1).sum(-1)
    return torch.minimum(counts.clamp(min=1), eligible.clamp(min=1))


class _CachedWindow:
    """
    Fast-dLLM's approximate KV cache for one block. At a refresh (the block's first step, then every `cache_refresh`
    steps) the whole canvas runs once and the keys/values of the positions outside the window are kept; the other
    steps run only the window (the block and, for `"prefix"`, everything after it) against them. With a logit shift
    (Dream) the window starts one position early, since the logit at `i - 1` scores token `i`.

    The cache's key order is `[outside..., window...]`; attention is bidirectional and the keys carry their rotary
    positions, so only the padding mask has to follow the same order.
    """

    def __init__(self, sampler, attention_mask, prompt_len: int, start: int, end: int, length: int):
        self.sampler, self.start, self.end, self.length = sampler, start, end, length
        total = attention_mask.size(1)
        shift = 1 if sampler.adapter.shift_logits else 0
        self.q_start = prompt_len + start - shift
        self.q_end = prompt_len + end if sampler.kv_cache == "dual" else total
        device = attention_mask.device
        self.outside = torch.cat(
            [torch.arange(0, self.q_start, device=device), torch.arange(self.q_end, total, device=device)]
        )
        self.attention_mask = attention_mask
        self.position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        self.window_mask = torch.cat(
            [attention_mask[:, self.outside], attention_mask[:, self.q_start : self.q_end]], dim=1
        )
        self.cache = None
        self.since_refresh = 0
        self.computed = total

    def logits(self, model, canvas: torch.Tensor) -> torch.Tensor:
        """Logits scoring the block's tokens, `(B, end - start, V)`."""
        from transformers import DynamicCache

        backbone, head = _backbone_and_head(model)
        refresh = self.sampler.cache_refresh
        if self.cache is None or (refresh is not None and self.since_refresh >= refresh):
            # The full forward of the uncached sampler (same inputs, same head rows), keeping the keys and values.
            cache = DynamicCache()
            hidden = backbone(
                input_ids=canvas,
                attention_mask=self.attention_mask,
                position_ids=self.position_ids,
                cache=cache,
                use_cache=True,
            ).last_hidden_state
            keep = self.length + 1 if self.sampler.adapter.shift_logits else self.length
            logits = head(hidden[:, -keep:])
            logits = logits[:, :-1] if self.sampler.adapter.shift_logits else logits
            for layer in cache.layers:
                layer.keys = layer.keys[:, :, self.outside]
                layer.values = layer.values[:, :, self.outside]
            self.cache, self.since_refresh, self.computed = cache, 1, canvas.size(1)
            return logits[:, self.start : self.end]
        window = self.q_end - self.q_start
        hidden = backbone(
            input_ids=canvas[:, self.q_start : self.q_end],
            attention_mask=self.window_mask,
            position_ids=self.position_ids[:, self.q_start : self.q_end],
            cache=self.cache,
            use_cache=True,
        ).last_hidden_state
        self.cache.crop(-window)  # drop the window's keys again: the next step recomputes them
        self.since_refresh += 1
        self.computed = window
        return head(hidden[:, : self.end - self.start])


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
    for key in (
        "steps", "alg", "alg_temp", "eps", "block_length", "confidence_threshold", "threshold_factor", "kv_cache",
        "cache_refresh",
    ):  # fmt: skip
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
    "KV_CACHE_MODES",
    "MaskedDiffusionSampler",
    "MaskedDiffusionSamplerOutput",
    "block_transfer_schedule",
    "dream_transfer_schedule",
    "sampling_defaults",
]
