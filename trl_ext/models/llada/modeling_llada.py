"""
Native transformers-5 implementation of the LLaDA family (`GSAI-ML/LLaDA-8B-Base`, `GSAI-ML/LLaDA-8B-Instruct`).

LLaDA is an OLMo-style stack of "llama" blocks run bidirectionally, with its own weight names, kept here so that the
published safetensors load strictly and a saved model has the checkpoints' layout:

    model.transformer.wte.weight                         token embeddings (embedding_size rows)
    model.transformer.blocks.N.attn_norm.weight          RMSNorm before attention
    model.transformer.blocks.N.{q,k,v}_proj.weight       attention projections
    model.transformer.blocks.N.attn_out.weight           attention output projection
    model.transformer.blocks.N.ff_norm.weight            RMSNorm before the MLP
    model.transformer.blocks.N.{ff_proj,up_proj}.weight  gate (silu) and up projections
    model.transformer.blocks.N.ff_out.weight             MLP output projection
    model.transformer.ln_f.weight                        final RMSNorm
    model.transformer.ff_out.weight                      output layer (absent with weight tying)

Unlike the checkpoints' own code, attention honours the padding mask and positions count real tokens only, so a
left-padded prompt gives the logits of the unpadded one; on unpadded input the two agree. RoPE is applied in float32
(`rope_full_precision`, as the checkpoints do) whatever the model's dtype. Logits are not shifted.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.cache_utils import Cache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.llama.modeling_llama import eager_attention_forward

from .._native import DiffusionLMMixin, StrictLoadingMixin, backbone_inputs
from .configuration_llada import LLaDAConfig


class LLaDARMSNorm(nn.Module):
    """RMSNorm computed in float32 and cast back before the weight, as LLaDA's `RMSLayerNorm` does."""

    def __init__(self, size: int, eps: float, bias: bool = False):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(size))
        self.bias = nn.Parameter(torch.zeros(size)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        x = self.weight * x.to(dtype)
        return x + self.bias if self.bias is not None else x


class LLaDARotaryEmbedding(nn.Module):
    """RoPE with `inv_freq = 1 / theta^(2i/d)`, computed (never loaded) and applied in float32."""

    def __init__(self, config: LLaDAConfig):
        super().__init__()
        self.config = config
        self.rope_type = "default"
        inv_freq, _ = self.compute_default_rope_parameters(config)
        self.inv_freq = nn.Buffer(inv_freq, persistent=False)
        self.original_inv_freq = nn.Buffer(inv_freq.clone(), persistent=False)

    @staticmethod
    def compute_default_rope_parameters(config: LLaDAConfig, device=None, **kwargs) -> tuple[torch.Tensor, float]:
        dim = config.head_dim
        exponent = torch.arange(0, dim, 2, dtype=torch.float, device=device) / dim
        return 1.0 / (config.rope_theta**exponent), 1.0

    def forward(self, position_ids: torch.LongTensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = position_ids[..., None].float() * self.inv_freq.float()
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, full_precision: bool) -> torch.Tensor:
    """`x` `(B, H, T, D)`; `cos`, `sin` `(B, T, D)` in float32."""
    dtype = x.dtype
    if full_precision:
        x = x.float()
    cos, sin = cos[:, None].to(x.dtype), sin[:, None].to(x.dtype)
    return ((x * cos) + (_rotate_half(x) * sin)).to(dtype)


class LLaDALlamaBlock(GradientCheckpointingLayer):
    """One LLaDA "llama" block: pre-norm bidirectional attention, then a pre-norm silu-gated MLP."""

    def __init__(self, config: LLaDAConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.is_causal = False
        self.head_dim = config.head_dim
        self.num_heads = config.n_heads
        self.num_kv_heads = config.num_key_value_heads
        self.num_key_value_groups = self.num_heads // self.num_kv_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        qkv_bias = bool(config.include_bias or config.include_qkv_bias)
        norm_bias = bool(config.include_bias if config.bias_for_layer_norm is None else config.bias_for_layer_norm)
        d, hidden = config.d_model, config.intermediate_size
        self.attn_norm = LLaDARMSNorm(d, config.rms_norm_eps, norm_bias)
        self.ff_norm = LLaDARMSNorm(d, config.rms_norm_eps, norm_bias)
        self.q_proj = nn.Linear(d, self.num_heads * self.head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(d, self.num_kv_heads * self.head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(d, self.num_kv_heads * self.head_dim, bias=qkv_bias)
        self.attn_out = nn.Linear(d, d, bias=config.include_bias)
        self.ff_proj = nn.Linear(d, hidden, bias=config.include_bias)
        self.up_proj = nn.Linear(d, hidden, bias=config.include_bias)
        self.ff_out = nn.Linear(hidden, d, bias=config.include_bias)
        self.dropout = nn.Dropout(config.residual_dropout)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: Cache | None = None,
        **kwargs,
    ) -> torch.Tensor:
        batch, length, _ = hidden_states.shape
        x = self.attn_norm(hidden_states)
        q = self.q_proj(x).view(batch, length, -1, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(batch, length, -1, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(batch, length, -1, self.head_dim).transpose(1, 2)
        cos, sin = position_embeddings
        q = apply_rotary(q, cos, sin, self.config.rope_full_precision)
        k = apply_rotary(k, cos, sin, self.config.rope_full_precision)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)
        attention = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
        att, _ = attention(
            self,
            q,
            k,
            v,
            attention_mask,
            dropout=self.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        hidden_states = hidden_states + self.dropout(self.attn_out(att.reshape(batch, length, -1).contiguous()))
        x = self.ff_norm(hidden_states)
        x = F.silu(self.ff_proj(x)) * self.up_proj(x)
        return hidden_states + self.dropout(self.ff_out(x))


class LLaDAPreTrainedModel(StrictLoadingMixin, PreTrainedModel):
    config_class = LLaDAConfig
    config: LLaDAConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LLaDALlamaBlock"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, LLaDARotaryEmbedding):
            with torch.no_grad():
                inv_freq, _ = module.compute_default_rope_parameters(self.config, device=module.inv_freq.device)
                module.inv_freq.copy_(inv_freq)
                module.original_inv_freq.copy_(inv_freq)


class LLaDAModel(LLaDAPreTrainedModel):
    """The LLaDA backbone (`transformer.{wte, blocks, ln_f, ff_out}`); returns the hidden states after `ln_f`."""

    def __init__(self, config: LLaDAConfig):
        super().__init__(config)
        config.check_supported()
        layers = {
            "wte": nn.Embedding(config.padded_vocab_size, config.d_model),
            "emb_drop": nn.Dropout(config.embedding_dropout),
            "blocks": nn.ModuleList([LLaDALlamaBlock(config, i) for i in range(config.n_layers)]),
            "ln_f": LLaDARMSNorm(config.d_model, config.rms_norm_eps, bool(config.bias_for_layer_norm)),
        }
        if not config.weight_tying:
            layers["ff_out"] = nn.Linear(config.d_model, config.padded_vocab_size, bias=config.include_bias)
        self.transformer = nn.ModuleDict(layers)
        self.rotary_emb = LLaDARotaryEmbedding(config)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.transformer.wte

    def set_input_embeddings(self, value):
        self.transformer.wte = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        """Same arguments as [`~trl_ext.models.dream.DreamBaseModel.forward`]."""
        cache = cache if cache is not None else past_key_values
        inputs_embeds, position_ids, mask = backbone_inputs(
            self.config, self.transformer.wte, input_ids, inputs_embeds, attention_mask, position_ids, cache
        )
        if self.config.input_emb_norm:
            inputs_embeds = inputs_embeds * (self.config.d_model**0.5)
        hidden = self.transformer.emb_drop(inputs_embeds)
        position_embeddings = self.rotary_emb(position_ids.to(hidden.device))
        for block in self.transformer.blocks:
            hidden = block(hidden, attention_mask=mask, position_embeddings=position_embeddings, cache=cache, **kwargs)
        hidden = self.transformer.ln_f(hidden)
        return BaseModelOutputWithPast(last_hidden_state=hidden, cache=cache if use_cache else None)


class _TiedOutput(nn.Module):
    """The output layer of a weight-tied LLaDA: a projection on the embedding table (no weights of its own)."""

    def __init__(self, embedding: nn.Embedding):
        super().__init__()
        self.embedding = [embedding]  # a list keeps it out of the module tree (and the state dict)

    @property
    def weight(self) -> torch.Tensor:
        return self.embedding[0].weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)


class LLaDAModelLM(DiffusionLMMixin, LLaDAPreTrainedModel):
    """
    A LLaDA masked-diffusion LM, named like the checkpoints' own class and registered for `AutoModel` and
    `AutoModelForCausalLM` (so TRL's model factory and reference-model creation build it without remote code).

    LoRA: the attention projections are `q_proj`, `k_proj`, `v_proj`, `attn_out`; the MLP's `ff_proj`, `up_proj` and
    `ff_out`. The output layer is also named `ff_out` (`model.transformer.ff_out`), so target the MLP with a regex
    such as `r".*blocks\\.\\d+\\.(q_proj|k_proj|v_proj|attn_out|ff_proj|up_proj|ff_out)"` rather than the bare name.

    Example:

    ```python
    >>> import torch
    >>> from trl_ext.models.llada import LLaDAConfig, LLaDAModelLM
    >>> config = LLaDAConfig(d_model=32, n_heads=4, n_layers=2, mlp_hidden_size=64, vocab_size=64, embedding_size=64,
    ...                      block_type="llama", activation_type="silu", layer_norm_type="rms", rope=True,
    ...                      weight_tying=False, mask_token_id=63)
    >>> LLaDAModelLM(config)(input_ids=torch.tensor([[1, 2, 63]])).logits.shape
    torch.Size([1, 3, 64])
    ```
    """

    def __init__(self, config: LLaDAConfig):
        super().__init__(config)
        self.model = LLaDAModel(config)
        self.post_init()

    def get_input_embeddings(self):
        return self.model.transformer.wte

    def set_input_embeddings(self, value):
        self.model.transformer.wte = value

    def get_output_embeddings(self):
        if self.config.weight_tying:
            return _TiedOutput(self.model.transformer.wte)
        return self.model.transformer.ff_out

    def set_output_embeddings(self, value):
        if self.config.weight_tying:
            raise ValueError("A weight-tied LLaDA has no output layer of its own to replace.")
        self.model.transformer.ff_out = value

    def _project(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.get_output_embeddings()(hidden)
        if self.config.scale_logits:
            logits = logits * (1 / math.sqrt(self.config.d_model))
        return logits


__all__ = ["LLaDAModel", "LLaDAModelLM", "LLaDAPreTrainedModel"]
