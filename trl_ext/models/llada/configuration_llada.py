"""Configuration of the LLaDA family (`GSAI-ML/LLaDA-8B-*`), read from the checkpoints' OLMo-style `config.json`."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from .._native import RemoteCodeFreeConfigMixin


@strict
class LLaDAConfig(RemoteCodeFreeConfigMixin, PreTrainedConfig):
    r"""
    Configuration of a LLaDA masked-diffusion LM: an OLMo-style "llama" block stack run with bidirectional attention,
    logits *not* shifted (the logit at position `i` scores token `i`).

    The fields and their defaults are those of the checkpoints' own configuration (OLMo's `ModelConfig`), spelt as in
    the published `config.json` (`d_model`, `n_heads`, `n_kv_heads`, `n_layers`, `mlp_hidden_size`, `mlp_ratio`,
    `rope_theta`, `weight_tying`, `embedding_size`, `mask_token_id`, ...). The usual transformers names
    (`hidden_size`, `num_attention_heads`, `num_key_value_heads`, `num_hidden_layers`, `intermediate_size`,
    `tie_word_embeddings`) read them.

    Only what the LLaDA checkpoints use is implemented: `block_type="llama"`, RMS layer norm, RoPE, `silu` gating,
    `block_group_size=1`, no ALiBi, no attention layer norm, no QKV clipping. Any other value is an error naming the
    field, raised when the model is built.

    Args:
        mask_token_id (`int`, *optional*):
            Id of the mask token (`<|mdm_mask|>`, 126336 in LLaDA-8B).
        embedding_size (`int`, *optional*):
            Rows of the embedding table and of the output layer (LLaDA-8B: 126464, padded above `vocab_size`).
    """

    model_type = "llada"
    attribute_map = {
        "hidden_size": "d_model",
        "num_attention_heads": "n_heads",
        "num_hidden_layers": "n_layers",
        "max_position_embeddings": "max_sequence_length",
        "tie_word_embeddings": "weight_tying",
    }

    d_model: int = 768
    n_heads: int = 12
    n_kv_heads: int | None = None
    n_layers: int = 12
    mlp_ratio: int = 4
    mlp_hidden_size: int | None = None
    activation_type: str = "swiglu"
    block_type: str = "sequential"
    block_group_size: int = 1
    alibi: bool = False
    alibi_bias_max: float = 8.0
    rope: bool = False
    rope_full_precision: bool = True
    rope_theta: float = 10000.0
    flash_attention: bool = False
    attention_dropout: float = 0.1
    multi_query_attention: bool | None = None
    attention_layer_norm: bool = False
    attention_layer_norm_with_affine: bool = True
    residual_dropout: float = 0.1
    embedding_dropout: float = 0.1
    input_emb_norm: bool = False
    layer_norm_type: str = "default"
    layer_norm_with_affine: bool = True
    bias_for_layer_norm: bool | None = None
    rms_norm_eps: float = 1e-05
    clip_qkv: float | None = None
    max_sequence_length: int = 1024
    include_qkv_bias: bool | None = False
    include_bias: bool = False
    scale_logits: bool = False
    vocab_size: int = 50257
    embedding_size: int | None = 50304
    weight_tying: bool = True
    eos_token_id: int | list[int] | None = 50256
    pad_token_id: int | None = 50256
    bos_token_id: int | None = None
    mask_token_id: int | None = 50256
    init_device: str | None = None
    init_fn: str = "normal"
    init_std: float = 0.02
    init_cutoff_factor: float | None = None
    precision: str | None = None
    use_cache: bool = False

    def __post_init__(self, **kwargs):
        kwargs.pop("auto_map", None)  # the checkpoints' transformers-4 remote code; the native class serves llada
        super().__post_init__(**kwargs)
        self._forget_remote_code()

    @property
    def diffusion_type(self) -> str:
        return "llada"

    @property
    def num_key_value_heads(self) -> int:
        if self.multi_query_attention:
            return 1
        return self.n_kv_heads if self.n_kv_heads is not None else self.n_heads

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def intermediate_size(self) -> int:
        return self.mlp_hidden_size if self.mlp_hidden_size is not None else self.mlp_ratio * self.d_model

    @property
    def padded_vocab_size(self) -> int:
        """Rows of the embedding table and of the output layer."""
        return self.embedding_size if self.embedding_size is not None else self.vocab_size

    def check_supported(self) -> None:
        """Raise a `ValueError` naming the first setting the native implementation does not cover."""
        unsupported = {
            "block_type": (self.block_type, self.block_type == "llama", "'llama'"),
            "layer_norm_type": (self.layer_norm_type, self.layer_norm_type in ("rms", "gemma_rms"), "'rms'"),
            "rope": (self.rope, self.rope, "true"),
            "alibi": (self.alibi, not self.alibi, "false"),
            "activation_type": (self.activation_type, self.activation_type == "silu", "'silu'"),
            "attention_layer_norm": (self.attention_layer_norm, not self.attention_layer_norm, "false"),
            "clip_qkv": (self.clip_qkv, self.clip_qkv is None, "null"),
            "block_group_size": (self.block_group_size, self.block_group_size == 1, "1"),
            "layer_norm_with_affine": (self.layer_norm_with_affine, self.layer_norm_with_affine, "true"),
        }
        for field, (value, ok, expected) in unsupported.items():
            if not ok:
                raise ValueError(
                    f"LLaDAConfig.{field}={value!r} is not supported by trl_ext's native LLaDA implementation, which "
                    f"covers the published LLaDA checkpoints ({field}={expected})."
                )
        if self.d_model % self.n_heads or self.n_heads % self.num_key_value_heads:
            raise ValueError(
                f"`d_model` ({self.d_model}) must be divisible by `n_heads` ({self.n_heads}), and `n_heads` by "
                f"`n_kv_heads` ({self.num_key_value_heads})."
            )


__all__ = ["LLaDAConfig"]
