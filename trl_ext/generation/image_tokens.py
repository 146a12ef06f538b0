"""
Image-token sampling for autoregressive image generators (LlamaGen), scheduler-like and separate from any trainer.

A rollout is a prefill of the condition followed by one token per forward, reading keys and values from a
[`~trl_ext.models.llamagen.LlamaGenKVCache`]. Classifier-free guidance (CFG) batches the conditional and the
unconditional branch in the same forward, `[cond; uncond]`, and mixes their logits per token:

    logits_t = u_t + s_t * (c_t - u_t)

where `s_t` comes from the guidance schedule (constant, or a linear ramp from 1 to the scale) and is 1 outside the
guidance interval. Once every remaining token has `s_t = 1`, the unconditional half of the cache is dropped and
decoding continues at half the batch. Then temperature, top-k and top-p, and a draw from the filtered distribution.

The same class scores tokens for training: [`ImageTokenSampler.score`] runs one full forward and returns, per token,
the log-probability under the conditional branch (`guided=False`, what AR-GRPO trains) or under the guided
distribution the sampler drew from (`guided=True`), so that sampling and training agree token for token.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models.llamagen.modeling_llamagen import LlamaGenKVCache

CFG_SCHEDULES = ("constant", "linear")


def cfg_scale_schedule(
    num_tokens: int,
    scale: float,
    schedule: str = "constant",
    interval: int | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """
    The guidance scale of every image token, `(num_tokens,)`.

    Args:
        num_tokens (`int`):
            Number of image tokens (`h * w`).
        scale (`float`):
            Guidance scale `s >= 1` (1 disables guidance).
        schedule (`str`, *optional*, defaults to `"constant"`):
            `"constant"` (`s` everywhere) or `"linear"` (`1 + (s - 1) * (t + 1) / num_tokens`, rising to `s` at the
            last token).
        interval (`int`, *optional*):
            Guide only the first `interval` tokens (scale 1 after). LlamaGen's `cfg_interval=k` guides the first
            `k + 2` tokens; `None` guides all of them.
    """
    if scale < 1:
        raise ValueError(f"`cfg_scale` must be >= 1 (1 disables guidance), got {scale}.")
    if schedule not in CFG_SCHEDULES:
        raise ValueError(f"`cfg_schedule` must be one of {CFG_SCHEDULES}, got {schedule!r}.")
    if schedule == "constant":
        scales = torch.full((num_tokens,), float(scale), device=device)
    else:
        scales = 1 + (scale - 1) * torch.arange(1, num_tokens + 1, device=device, dtype=torch.float32) / num_tokens
    if interval is not None:
        if interval < 0:
            raise ValueError(f"`cfg_interval` must be >= 0 (tokens to guide) or None, got {interval}.")
        scales[interval:] = 1.0
    return scales


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set logits outside the top-k and outside the smallest nucleus of mass >= `top_p` to `-inf` (top token kept)."""
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        mass_before = sorted_logits.softmax(-1).cumsum(-1) - sorted_logits.softmax(-1)
        remove_sorted = mass_before >= top_p  # a token is kept while the mass before it is below top_p
        remove = torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)
        logits = logits.masked_fill(remove, float("-inf"))
    return logits


def sample_categorical(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.LongTensor:
    """
    One draw per row of `probs` `(batch, vocab)` by inverting the CDF with a single uniform per row. `torch.multinomial`
    draws exponential noise over the whole vocabulary instead, which dominates a decoding step on CPUs.
    """
    cdf = probs.cumsum(-1)
    u = torch.rand(probs.size(0), 1, device=probs.device, dtype=cdf.dtype, generator=generator) * cdf[:, -1:]
    # `right=True` skips zero-probability tokens (flat stretches of the CDF), even for u = 0.
    return torch.searchsorted(cdf, u, right=True).clamp_(max=probs.size(-1) - 1)[:, 0]


@torch.no_grad()
def encode_captions(
    model, text_encoder, tokenizer, captions: list[str], device, max_length: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """
    The t2i condition of `captions`: tokenized to `max_length` (default: the model's `num_condition_tokens`), encoded
    by `text_encoder`, fitted to the condition window with `model.prepare_captions`, on `device`.

    Returns:
        `(caption_embeds, caption_mask, tokens)`: the condition tensors and the tokenizer's output (on the CPU).
    """
    tokens = tokenizer(
        list(captions),
        padding="max_length",
        truncation=True,
        max_length=max_length or model.config.num_condition_tokens,
        return_tensors="pt",
    )
    encoder_device = text_encoder.device
    features = text_encoder(
        input_ids=tokens["input_ids"].to(encoder_device), attention_mask=tokens["attention_mask"].to(encoder_device)
    )
    embeds, mask = model.prepare_captions(
        features.last_hidden_state.float().to(device), tokens["attention_mask"].to(device)
    )
    return embeds, mask, tokens


@dataclass
class ImageTokenSamplerOutput:
    """
    Output of [`ImageTokenSampler.sample`].

    Args:
        image_token_ids (`torch.LongTensor` of shape `(batch_size, num_image_tokens)`):
            Codebook indices in raster order, in `[0, vocab_size)`.
        logprobs (`torch.FloatTensor` of shape `(batch_size, num_image_tokens)`, *optional*):
            Log-probability of each sampled token under the guided, temperature-scaled distribution *before* top-k /
            top-p truncation (the distribution [`ImageTokenSampler.score`] computes with `guided=True`).
        num_forwards (`int`):
            Model forward passes (prefill included).
    """

    image_token_ids: torch.LongTensor
    logprobs: torch.FloatTensor | None
    num_forwards: int


class ImageTokenSampler:
    """
    Samples image tokens from a LlamaGen-style generator with a KV cache and batched classifier-free guidance.

    Args:
        cfg_scale (`float`, *optional*, defaults to `1.0`):
            Guidance scale `s >= 1`; 1 samples from the conditional model alone (one branch, half the compute).
        cfg_schedule (`str`, *optional*, defaults to `"constant"`):
            `"constant"` or `"linear"`, see [`cfg_scale_schedule`].
        cfg_interval (`int`, *optional*):
            Guide only the first `cfg_interval` tokens.
        temperature (`float`, *optional*, defaults to `1.0`):
            Divides the guided logits.
        top_k (`int`, *optional*):
            Keep the `top_k` most likely tokens (LlamaGen's demos use 1000 or 2000; AR-GRPO rollouts use none).
        top_p (`float`, *optional*):
            Keep the smallest set of tokens with probability mass >= `top_p`.

    Example:

    ```python
    >>> import torch
    >>> from trl_ext.generation import ImageTokenSampler
    >>> from trl_ext.testing_image import make_tiny_llamagen
    >>> model = make_tiny_llamagen()  # c2i, 4x4 tokens, 32 codes
    >>> sampler = ImageTokenSampler(cfg_scale=2.0, top_k=16)
    >>> out = sampler.sample(model, class_labels=torch.tensor([1, 2]), generator=torch.Generator().manual_seed(0))
    >>> out.image_token_ids.shape, out.num_forwards
    (torch.Size([2, 16]), 16)
    ```
    """

    def __init__(
        self,
        cfg_scale: float = 1.0,
        cfg_schedule: str = "constant",
        cfg_interval: int | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
    ):
        cfg_scale_schedule(1, cfg_scale, cfg_schedule, cfg_interval)  # validates the three
        if temperature <= 0:
            raise ValueError(f"`temperature` must be > 0, got {temperature}.")
        if top_k is not None and top_k < 1:
            raise ValueError(f"`top_k` must be >= 1 or None, got {top_k}.")
        if top_p is not None and not 0 < top_p <= 1:
            raise ValueError(f"`top_p` must be in (0, 1] or None, got {top_p}.")
        self.cfg_scale = cfg_scale
        self.cfg_schedule = cfg_schedule
        self.cfg_interval = cfg_interval
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p

    def guidance_scales(self, num_tokens: int, device: torch.device | str | None = None) -> torch.Tensor:
        """Per-token guidance scales `(num_tokens,)` of this sampler."""
        return cfg_scale_schedule(num_tokens, self.cfg_scale, self.cfg_schedule, self.cfg_interval, device)

    @staticmethod
    def _condition(model, class_labels, caption_embeds, caption_mask) -> dict:
        if (class_labels is None) == (caption_embeds is None):
            raise ValueError("Pass exactly one condition: `class_labels` (c2i) or `caption_embeds` (t2i).")
        if class_labels is not None:
            num_classes = model.config.num_classes
            if bool(((class_labels < 0) | (class_labels >= num_classes)).any()):
                raise ValueError(
                    f"`class_labels` must lie in [0, {num_classes}) (num_classes={num_classes}), got "
                    f"{sorted(set(class_labels.tolist()))}."
                )
            return {"class_labels": class_labels}
        if caption_embeds.size(1) != model.config.num_condition_tokens or caption_mask is None:
            caption_embeds, caption_mask = model.prepare_captions(caption_embeds, caption_mask)
        return {"caption_embeds": caption_embeds, "caption_mask": caption_mask}

    @staticmethod
    def _double(condition: dict, batch: int, device) -> dict:
        doubled = {k: torch.cat([v, v]) for k, v in condition.items()}
        doubled["unconditional"] = torch.arange(2 * batch, device=device) >= batch
        return doubled

    @torch.no_grad()
    def sample(
        self,
        model,
        class_labels: torch.LongTensor | None = None,
        caption_embeds: torch.FloatTensor | None = None,
        caption_mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        return_logprobs: bool = False,
    ) -> ImageTokenSamplerOutput:
        """
        Sample one image per condition row.

        Args:
            model ([`~trl_ext.models.llamagen.LlamaGenForImageGeneration`]):
                The generator (unwrapped: its `config` is read).
            class_labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
                Class ids in `[0, num_classes)` (c2i).
            caption_embeds (`torch.FloatTensor` of shape `(batch_size, length, caption_dim)`, *optional*):
                Text-encoder features (t2i); fitted to the model's condition window with `prepare_captions`.
            caption_mask (`torch.Tensor` of shape `(batch_size, length)`, *optional*):
                1 for real caption tokens.
            generator (`torch.Generator`, *optional*):
                RNG of the draws (on the model's device).
            return_logprobs (`bool`, *optional*, defaults to `False`):
                Also return the log-probability of every sampled token.
        """
        condition = self._condition(model, class_labels, caption_embeds, caption_mask)
        batch = next(iter(condition.values())).size(0)
        device = next(iter(condition.values())).device
        num_tokens = model.config.num_image_tokens
        scales = self.guidance_scales(num_tokens, device)
        guided_until = int((scales != 1).nonzero().max()) + 1 if bool((scales != 1).any()) else 0
        guided = guided_until > 0
        inputs = self._double(condition, batch, device) if guided else condition
        cache = LlamaGenKVCache(model.config)
        logits = model(**inputs, cache=cache).logits[:, -1]
        num_forwards = 1
        tokens = torch.empty(batch, num_tokens, dtype=torch.long, device=device)
        logprobs = torch.empty(batch, num_tokens, device=device) if return_logprobs else None
        for t in range(num_tokens):
            if guided:
                cond, uncond = logits[:batch], logits[batch:]
                logits = uncond + scales[t] * (cond - uncond)
            logits = logits / self.temperature
            filtered = filter_logits(logits, self.top_k, self.top_p)
            token = sample_categorical(filtered.softmax(-1), generator)
            tokens[:, t] = token
            if return_logprobs:
                logprobs[:, t] = logits.log_softmax(-1).gather(-1, token[:, None])[:, 0]
            if t == num_tokens - 1:
                break
            if guided and t + 1 >= guided_until:
                cache.select_rows(slice(0, batch))
                guided = False
            step = torch.cat([token, token]) if guided else token
            logits = model(step[:, None], cache=cache).logits[:, -1]
            num_forwards += 1
        return ImageTokenSamplerOutput(image_token_ids=tokens, logprobs=logprobs, num_forwards=num_forwards)

    def score(
        self,
        model,
        image_token_ids: torch.LongTensor,
        class_labels: torch.LongTensor | None = None,
        caption_embeds: torch.FloatTensor | None = None,
        caption_mask: torch.Tensor | None = None,
        guided: bool = False,
        compute_entropy: bool = False,
    ) -> tuple[torch.FloatTensor, torch.FloatTensor | None]:
        """
        Per-token log-probabilities (and entropies) of given images, in one differentiable forward.

        Args:
            model:
                The generator, possibly wrapped (DDP, PEFT): only its forward is called.
            image_token_ids (`torch.LongTensor` of shape `(batch_size, num_image_tokens)`):
                The tokens to score.
            class_labels, caption_embeds, caption_mask:
                The condition, as in [`~ImageTokenSampler.sample`]; captions already fitted to the condition window.
            guided (`bool`, *optional*, defaults to `False`):
                `False`: the conditional branch alone, `log_softmax(c_t / T)` (AR-GRPO). `True`: the guided
                distribution of the sampler, `log_softmax((u_t + s_t (c_t - u_t)) / T)`, both branches in one batch.
            compute_entropy (`bool`, *optional*, defaults to `False`):
                Also return the entropy of each token's distribution.

        Returns:
            `tuple[torch.FloatTensor, torch.FloatTensor | None]`: log-probabilities and entropies, `(batch_size,
            num_image_tokens)`, in float32.
        """
        condition = {"class_labels": class_labels} if class_labels is not None else {"caption_embeds": caption_embeds}
        if caption_embeds is not None and caption_mask is not None:
            condition["caption_mask"] = caption_mask
        batch = image_token_ids.size(0)
        scales = self.guidance_scales(image_token_ids.size(1), image_token_ids.device)
        guided = guided and bool((scales != 1).any())
        inputs = image_token_ids[:, :-1]
        if guided:
            condition = self._double(condition, batch, image_token_ids.device)
            inputs = torch.cat([inputs, inputs])
        logits = model(inputs, **condition).logits.float()
        if guided:
            cond, uncond = logits[:batch], logits[batch:]
            logits = uncond + scales[None, :, None] * (cond - uncond)
        logp = F.log_softmax(logits / self.temperature, dim=-1)
        token_logps = logp.gather(-1, image_token_ids[..., None])[..., 0]
        entropies = -(logp.exp() * logp).sum(-1) if compute_entropy else None
        return token_logps, entropies


__all__ = [
    "CFG_SCHEDULES",
    "ImageTokenSampler",
    "ImageTokenSamplerOutput",
    "cfg_scale_schedule",
    "filter_logits",
    "sample_categorical",
]
