"""
LlamaGen's autoregressive image-token transformer ("GPT") as a transformers `PreTrainedModel`.

A port of `autoregressive/models/gpt.py` of [LlamaGen](https://github.com/FoundationVision/LlamaGen) (Sun et al.,
"Autoregressive Model Beats Diffusion: Llama for Scalable Image Generation", arXiv 2406.06525), with the same
numerics: fused QKV projection, RMSNorm computed in float32, SwiGLU, a zero rotary embedding at condition positions
(their queries and keys are zero) and a 2-D rotary embedding over the image-token grid. The differences are those of
the Hugging Face stack: `save_pretrained` / `from_pretrained` / `push_to_hub` with safetensors, a KV cache object
passed to `forward` instead of caches stored inside the modules, and an explicit `unconditional` flag per row instead
of random condition dropout inside `forward` (RL fine-tuning must not drop conditions at random).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput

from .configuration_llamagen import LlamaGenConfig


# ----------------------------------------------------------------------------------------------------------------
# Rotary embedding
# ----------------------------------------------------------------------------------------------------------------
def llamagen_rope_table(config: LlamaGenConfig, device: torch.device | None = None) -> torch.Tensor:
    """
    The rotary table of the whole sequence, `(num_condition_tokens + grid_size**2, head_dim // 2, 2)` of (cos, sin).

    Condition rows are zero, so condition queries and keys are zero (as in LlamaGen). For image token `k` at grid cell
    `(i, j)`, the first `head_dim // 4` rotary pairs turn by `i * f` and the last `head_dim // 4` by `j * f`, with
    `f = rope_theta ** (-2m / (head_dim / 2))`.
    """
    half = config.head_dim // 2
    freqs = 1.0 / (config.rope_theta ** (torch.arange(0, half, 2, device=device)[: half // 2].float() / half))
    angles = torch.outer(torch.arange(config.grid_size, device=device, dtype=torch.float32), freqs)
    grid = config.grid_size
    angles = torch.cat([angles[:, None, :].expand(-1, grid, -1), angles[None, :, :].expand(grid, -1, -1)], dim=-1)
    table = torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1).flatten(0, 1)
    zeros = torch.zeros(config.num_condition_tokens, half, 2, device=device)
    return torch.cat([zeros, table])


def apply_rotary(x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs `(x[2m], x[2m+1])` of `x` `(B, S, H, D)` by `rope` `(S, D // 2, 2)`, in float32."""
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    cos, sin = rope[None, :, None, :, 0], rope[None, :, None, :, 1]
    out = torch.stack([pairs[..., 0] * cos - pairs[..., 1] * sin, pairs[..., 1] * cos + pairs[..., 0] * sin], -1)
    return out.flatten(3).type_as(x)


# ----------------------------------------------------------------------------------------------------------------
# KV cache
# ----------------------------------------------------------------------------------------------------------------
class LlamaGenKVCache:
    """
    A static KV cache for [`LlamaGenForImageGeneration`]: each layer's keys and values are allocated once for the
    whole sequence (at the first write, with the batch size, device and dtype of the keys written), each decoding step
    writes one position and attends to a view of the filled prefix, so no step allocates or copies the past.

    Args:
        config ([`LlamaGenConfig`]):
            Model configuration.
        max_length (`int`, *optional*):
            Capacity in positions. Defaults to the full sequence, `num_condition_tokens + grid_size**2`.
    """

    def __init__(self, config: LlamaGenConfig, max_length: int | None = None):
        self.max_length = max_length or config.num_condition_tokens + config.num_image_tokens
        self.keys: list[torch.Tensor | None] = [None] * config.num_hidden_layers
        self.values: list[torch.Tensor | None] = [None] * config.num_hidden_layers
        # Which key positions may be attended to (caption padding may not); `None` while every position may.
        self.key_valid: torch.Tensor | None = None
        self.length = 0

    def update(self, layer_idx: int, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write `key`/`value` `(B, H_kv, S, D)` at the current length; return the filled prefix including them."""
        end = self.length + key.size(2)
        if end > self.max_length:
            raise ValueError(f"The KV cache holds {self.max_length} positions; writing up to {end} would overflow it.")
        if self.keys[layer_idx] is None:
            shape = (key.size(0), key.size(1), self.max_length, key.size(3))
            self.keys[layer_idx], self.values[layer_idx] = key.new_empty(shape), value.new_empty(shape)
        self.keys[layer_idx][:, :, self.length : end] = key
        self.values[layer_idx][:, :, self.length : end] = value
        return self.keys[layer_idx][:, :, :end], self.values[layer_idx][:, :, :end]

    def select_rows(self, index: torch.Tensor | slice) -> None:
        """Keep only rows `index` (e.g. drop the unconditional half once guidance is off for the remaining tokens)."""
        self.keys = [None if k is None else k[index] for k in self.keys]
        self.values = [None if v is None else v[index] for v in self.values]
        if self.key_valid is not None:
            self.key_valid = self.key_valid[index]


# ----------------------------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------------------------
class LlamaGenRMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(hidden_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalised in float32 and cast back *before* the weight, as LlamaGen does.
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


class LlamaGenMLP(nn.Module):
    def __init__(self, config: LlamaGenConfig):
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.dropout = nn.Dropout(config.ffn_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x)))


class LlamaGenAttention(nn.Module):
    def __init__(self, config: LlamaGenConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        self.qkv_proj = nn.Linear(
            config.hidden_size, (self.num_heads + 2 * self.num_kv_heads) * self.head_dim, bias=False
        )
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.attention_dropout = config.attention_dropout
        self.resid_dropout = nn.Dropout(config.residual_dropout)

    def forward(
        self,
        hidden_states: torch.Tensor,
        rope: torch.Tensor,
        attention_mask: torch.Tensor | None,
        is_causal: bool,
        cache: LlamaGenKVCache | None,
    ) -> torch.Tensor:
        batch, length, _ = hidden_states.shape
        kv_size = self.num_kv_heads * self.head_dim
        q, k, v = self.qkv_proj(hidden_states).split([self.num_heads * self.head_dim, kv_size, kv_size], dim=-1)
        q = apply_rotary(q.view(batch, length, self.num_heads, self.head_dim), rope).transpose(1, 2)
        k = apply_rotary(k.view(batch, length, self.num_kv_heads, self.head_dim), rope).transpose(1, 2)
        v = v.view(batch, length, self.num_kv_heads, self.head_dim).transpose(1, 2)
        if cache is not None:
            k, v = cache.update(self.layer_idx, k, v)
        if self.num_kv_heads != self.num_heads:
            k = k.repeat_interleave(self.num_heads // self.num_kv_heads, dim=1)
            v = v.repeat_interleave(self.num_heads // self.num_kv_heads, dim=1)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attention_mask,
            is_causal=is_causal,
            dropout_p=self.attention_dropout if self.training else 0.0,
        )
        return self.resid_dropout(self.o_proj(out.transpose(1, 2).reshape(batch, length, -1)))


class LlamaGenDecoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: LlamaGenConfig, layer_idx: int):
        super().__init__()
        self.input_layernorm = LlamaGenRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.self_attn = LlamaGenAttention(config, layer_idx)
        self.post_attention_layernorm = LlamaGenRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = LlamaGenMLP(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        rope: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        cache: LlamaGenKVCache | None = None,
    ) -> torch.Tensor:
        hidden_states = hidden_states + self.self_attn(
            self.input_layernorm(hidden_states), rope, attention_mask, is_causal, cache
        )
        return hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))


class LlamaGenCaptionEmbedder(nn.Module):
    """Projects text-encoder features with a GELU(tanh) MLP; holds the null caption used for guidance (t2i)."""

    def __init__(self, config: LlamaGenConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.caption_dim, config.hidden_size, bias=False)
        self.fc2 = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        # A fixed (non-trainable) random caption, as in LlamaGen, which registers it as a buffer.
        self.register_buffer("null_caption", torch.zeros(config.num_condition_tokens, config.caption_dim))

    def forward(self, captions: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(captions), approximate="tanh"))


# ----------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class LlamaGenOutput(ModelOutput):
    """
    Output of [`LlamaGenForImageGeneration`].

    Args:
        logits (`torch.FloatTensor` of shape `(batch_size, num_scored, vocab_size)`):
            Float32 next-image-token logits. With a condition in the input, position `0` is the last condition position
            (it predicts image token 0) and position `t` the `t`-th input image token (it predicts token `t`), so
            `num_scored = input_ids.size(1) + 1`; without one (decoding from a cache), one per input token.
        cache ([`LlamaGenKVCache`], *optional*):
            The cache passed in, advanced past the input.
    """

    logits: torch.FloatTensor | None = None
    cache: LlamaGenKVCache | None = None


class LlamaGenPreTrainedModel(PreTrainedModel):
    config: LlamaGenConfig
    config_class = LlamaGenConfig
    base_model_prefix = "llamagen"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LlamaGenDecoderLayer"]
    _supports_sdpa = True

    def _init_weights(self, module):
        std = self.config.initializer_range
        if module is getattr(self, "lm_head", None):
            # LlamaGen starts from uniform next-token distributions.
            init.zeros_(module.weight)
        elif isinstance(module, (nn.Linear, nn.Embedding)):
            init.normal_(module.weight, mean=0.0, std=std)
        elif isinstance(module, LlamaGenRMSNorm):
            init.ones_(module.weight)
        elif isinstance(module, LlamaGenCaptionEmbedder):
            init.normal_(module.null_caption, mean=0.0, std=self.config.caption_dim**-0.5)


class LlamaGenForImageGeneration(LlamaGenPreTrainedModel):
    """
    LlamaGen: a Llama-style decoder that generates VQ image tokens in raster order, conditioned on a class (c2i) or on
    text-encoder features (t2i).

    Call it with a condition to score a (prefix of an) image, or with a [`LlamaGenKVCache`] to prefill and then decode
    one token at a time. Classifier-free guidance batches `[cond; uncond]` rows and marks the second half with
    `unconditional=True`. Sampling lives in [`~trl_ext.generation.ImageTokenSampler`].

    Example:

    ```python
    >>> import torch
    >>> from trl_ext.models.llamagen import LlamaGenConfig, LlamaGenForImageGeneration
    >>> config = LlamaGenConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=32,
    ...                         num_classes=10, grid_size=4)
    >>> model = LlamaGenForImageGeneration(config).eval()
    >>> tokens = torch.randint(0, 32, (2, 16))
    >>> # logits[:, t] predicts tokens[:, t]: the condition predicts the first token
    >>> model(tokens[:, :-1], class_labels=torch.tensor([3, 7])).logits.shape
    torch.Size([2, 16, 32])
    ```
    """

    def __init__(self, config: LlamaGenConfig):
        super().__init__(config)
        if config.condition_type == "c2i":
            # One extra row: the null class of classifier-free guidance.
            self.class_embedding = nn.Embedding(config.num_classes + 1, config.hidden_size)
        else:
            self.caption_embedder = LlamaGenCaptionEmbedder(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.token_dropout = nn.Dropout(config.token_dropout)
        self.layers = nn.ModuleList(LlamaGenDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = LlamaGenRMSNorm(config.hidden_size, config.rms_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self._rope: dict[torch.device, torch.Tensor] = {}
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding):
        self.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def rope_table(self, device: torch.device) -> torch.Tensor:
        if device not in self._rope:
            self._rope[device] = llamagen_rope_table(self.config, device)
        return self._rope[device]

    # ------------------------------------------------------------------------------------------------------------
    # Conditions
    # ------------------------------------------------------------------------------------------------------------
    def prepare_captions(
        self, caption_embeds: torch.Tensor, caption_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        Fit text-encoder features to the `num_condition_tokens` condition positions, LlamaGen-style: valid tokens
        right-aligned (left padding, so the last condition position is a real token), padding zeroed, captions longer
        than the window truncated to their first tokens.

        Args:
            caption_embeds (`torch.FloatTensor` of shape `(batch_size, length, caption_dim)`):
                Text-encoder features, padded on either side.
            caption_mask (`torch.Tensor` of shape `(batch_size, length)`, *optional*):
                1 for real tokens. Defaults to all ones.

        Returns:
            `tuple[torch.FloatTensor, torch.LongTensor]`: features `(batch_size, num_condition_tokens, caption_dim)`
            and their mask `(batch_size, num_condition_tokens)`.
        """
        if caption_embeds.dim() != 3 or caption_embeds.size(-1) != self.config.caption_dim:
            raise ValueError(
                f"`caption_embeds` must be (batch, length, caption_dim={self.config.caption_dim}), got "
                f"{tuple(caption_embeds.shape)}: the text encoder's width must match the model's `caption_dim`."
            )
        batch, length, _ = caption_embeds.shape
        if caption_mask is None:
            caption_mask = torch.ones(batch, length, dtype=torch.long, device=caption_embeds.device)
        window = self.config.num_condition_tokens
        valid = caption_mask.bool()
        count = valid.sum(1).clamp(max=window)
        # Rank of each valid token among its row's valid tokens; keep the first `window` of them.
        rank = valid.long().cumsum(1) - 1
        keep = valid & (rank < window)
        target = window - count[:, None] + rank  # right-aligned slot of each kept token
        out = caption_embeds.new_zeros(batch, window, caption_embeds.size(-1))
        mask = torch.zeros(batch, window, dtype=torch.long, device=caption_embeds.device)
        rows, cols = keep.nonzero(as_tuple=True)
        out[rows, target[rows, cols]] = caption_embeds[rows, cols]
        mask[rows, target[rows, cols]] = 1
        return out, mask

    def _embed_condition(self, class_labels, caption_embeds, caption_mask, unconditional) -> torch.Tensor:
        config = self.config
        if config.condition_type == "c2i":
            if class_labels is None:
                raise ValueError("A c2i model is conditioned on `class_labels` (batch,); got none.")
            if caption_embeds is not None:
                raise ValueError("A c2i model takes `class_labels`, not `caption_embeds`.")
            if unconditional is not None:
                class_labels = torch.where(unconditional.bool(), config.null_class_id, class_labels)
            return self.class_embedding(class_labels)[:, None]
        if caption_embeds is None:
            raise ValueError(
                "A t2i model is conditioned on `caption_embeds` (batch, num_condition_tokens, caption_dim)."
            )
        if class_labels is not None:
            raise ValueError("A t2i model takes `caption_embeds`, not `class_labels`.")
        if caption_embeds.shape[1:] != (config.num_condition_tokens, config.caption_dim):
            raise ValueError(
                f"`caption_embeds` must be (batch, {config.num_condition_tokens}, {config.caption_dim}), got "
                f"{tuple(caption_embeds.shape)}; fit features of any length with `model.prepare_captions`."
            )
        captions = caption_embeds.to(self.caption_embedder.fc1.weight.dtype)
        if unconditional is not None:
            null = self.caption_embedder.null_caption.to(captions.dtype)
            captions = torch.where(unconditional.bool()[:, None, None], null, captions)
        if caption_mask is not None:
            captions = captions * caption_mask[..., None].to(captions.dtype)
        return self.caption_embedder(captions)

    # ------------------------------------------------------------------------------------------------------------
    # Forward
    # ------------------------------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        class_labels: torch.LongTensor | None = None,
        caption_embeds: torch.FloatTensor | None = None,
        caption_mask: torch.Tensor | None = None,
        unconditional: torch.BoolTensor | None = None,
        cache: LlamaGenKVCache | None = None,
        logits_to_keep: int = 0,
        return_dict: bool = True,
    ) -> LlamaGenOutput | tuple:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, length)`, *optional*):
                Image tokens in raster order: the first tokens of the image when a condition is given, else the tokens
                that follow the cache.
            class_labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
                Class ids in `[0, num_classes]` (c2i); `num_classes` is the null class.
            caption_embeds (`torch.FloatTensor` of shape `(batch_size, num_condition_tokens, caption_dim)`, *optional*):
                Text-encoder features, left-padded (t2i); see [`~LlamaGenForImageGeneration.prepare_captions`].
            caption_mask (`torch.Tensor` of shape `(batch_size, num_condition_tokens)`, *optional*):
                1 for real caption tokens; padded positions are never attended to.
            unconditional (`torch.BoolTensor` of shape `(batch_size,)`, *optional*):
                Rows that see the null condition (the unconditional branch of classifier-free guidance).
            cache ([`LlamaGenKVCache`], *optional*):
                Cache to fill (empty, with a condition: prefill) or to continue from (without one: decode).
            logits_to_keep (`int`, *optional*, defaults to `0`):
                Project only the last `logits_to_keep` positions through the LM head (0: all of them).
        """
        config = self.config
        has_condition = class_labels is not None or caption_embeds is not None
        start = 0 if cache is None else cache.length
        if has_condition:
            if start != 0:
                raise ValueError("A condition starts the sequence: pass it with an empty (new) KV cache.")
            if class_labels is not None and ((class_labels < 0) | (class_labels > config.num_classes)).any():
                raise ValueError(
                    f"`class_labels` must lie in [0, {config.num_classes}] ({config.num_classes} is the null class), "
                    f"got {class_labels.tolist()}."
                )
            hidden = self._embed_condition(class_labels, caption_embeds, caption_mask, unconditional)
            if input_ids is not None:
                hidden = torch.cat([hidden, self.embed_tokens(input_ids).to(hidden.dtype)], dim=1)
        else:
            if input_ids is None:
                raise ValueError("Pass a condition (`class_labels` or `caption_embeds`), `input_ids`, or both.")
            if start < config.num_condition_tokens:
                raise ValueError(
                    "`input_ids` without a condition continue a KV cache that already holds the condition."
                )
            hidden = self.embed_tokens(input_ids)
        length = hidden.size(1)
        end = start + length
        if end > config.num_condition_tokens + config.num_image_tokens:
            raise ValueError(
                f"The sequence would reach position {end}, past the condition and the {config.num_image_tokens} image "
                f"tokens of a {config.grid_size}x{config.grid_size} grid."
            )
        hidden = self.token_dropout(hidden)
        rope = self.rope_table(hidden.device)[start:end]

        # Key validity: caption padding is never attended to (each position still attends to itself, so no row of
        # the attention is empty), exactly LlamaGen's `emb_masks` treatment.
        key_valid = None
        if has_condition and caption_mask is not None and not bool(caption_mask.bool().all()):
            key_valid = torch.ones(hidden.size(0), end, dtype=torch.bool, device=hidden.device)
            key_valid[:, : config.num_condition_tokens] = caption_mask.bool()
            if cache is not None:
                cache.key_valid = torch.ones(hidden.size(0), cache.max_length, dtype=torch.bool, device=hidden.device)
                cache.key_valid[:, :end] = key_valid
        elif cache is not None and cache.key_valid is not None:
            key_valid = cache.key_valid[:, :end]
        attention_mask, is_causal = None, False
        if key_valid is not None or (start > 0 and length > 1):
            query_pos = torch.arange(start, end, device=hidden.device)
            key_pos = torch.arange(end, device=hidden.device)
            allowed = key_pos[None, :] <= query_pos[:, None]
            if key_valid is not None:
                allowed = allowed[None] & (
                    key_valid[:, None, :] | (key_pos[None, None, :] == query_pos[None, :, None])
                )
            attention_mask = allowed[:, None] if allowed.dim() == 3 else allowed
        elif length > 1:
            is_causal = True

        for layer in self.layers:
            hidden = layer(hidden, rope, attention_mask=attention_mask, is_causal=is_causal, cache=cache)
        if cache is not None:
            cache.length = end
        if has_condition:
            hidden = hidden[:, config.num_condition_tokens - 1 :]
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.lm_head(self.norm(hidden)).float()
        if not return_dict:
            return (logits, cache)
        return LlamaGenOutput(logits=logits, cache=cache)


__all__ = [
    "LlamaGenForImageGeneration",
    "LlamaGenKVCache",
    "LlamaGenOutput",
    "LlamaGenPreTrainedModel",
    "apply_rotary",
    "llamagen_rope_table",
]
