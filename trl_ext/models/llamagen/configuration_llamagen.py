"""Configuration of LlamaGen's autoregressive image-token transformer ("GPT") on the Hugging Face stack."""

from __future__ import annotations

from types import MappingProxyType

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

# LlamaGen's named GPT sizes (autoregressive/models/gpt.py): (num_hidden_layers, num_attention_heads, hidden_size).
# B to 3B are the sizes with public checkpoints (c2i: B, L, XL, XXL, 3B; t2i: XL).
LLAMAGEN_SIZES: dict[str, tuple[int, int, int]] = {
    "B": (12, 12, 768),
    "L": (24, 16, 1024),
    "XL": (36, 20, 1280),
    "XXL": (48, 24, 1536),
    "3B": (24, 32, 3200),
}


def llamagen_intermediate_size(
    hidden_size: int, ffn_dim_multiplier: float | None = None, multiple_of: int = 256
) -> int:
    """LlamaGen's SwiGLU width: `2/3 * 4 * hidden_size` (times `ffn_dim_multiplier`), rounded up to `multiple_of`."""
    width = int(2 * 4 * hidden_size / 3)
    if ffn_dim_multiplier is not None:
        width = int(ffn_dim_multiplier * width)
    return -(-width // multiple_of) * multiple_of


@strict
class LlamaGenConfig(PreTrainedConfig):
    r"""
    Configuration of [`LlamaGenForImageGeneration`], LlamaGen's class- or text-conditional autoregressive transformer
    over VQ image tokens ([paper](https://huggingface.co/papers/2406.06525)).

    The sequence is `num_condition_tokens` condition positions followed by `grid_size**2` image tokens in raster order.
    Condition positions get a zero rotary embedding; image token `k` gets a 2-D rotary embedding of its grid cell
    `(k // grid_size, k % grid_size)`: half of each head's rotary pairs encode the row, the other half the column.

    Args:
        vocab_size (`int`, *optional*, defaults to `16384`):
            Number of image tokens, i.e. the codebook size of the VQ tokenizer.
        hidden_size (`int`, *optional*, defaults to `1280`):
            Width of the transformer.
        intermediate_size (`int`, *optional*):
            SwiGLU width. Defaults to LlamaGen's rule, [`llamagen_intermediate_size`].
        num_hidden_layers (`int`, *optional*, defaults to `36`):
            Number of decoder layers.
        num_attention_heads (`int`, *optional*, defaults to `20`):
            Number of query heads.
        num_key_value_heads (`int`, *optional*):
            Number of key/value heads (grouped-query attention). Defaults to `num_attention_heads`.
        rms_norm_eps (`float`, *optional*, defaults to `1e-5`):
            Epsilon of the RMS norms.
        rope_theta (`float`, *optional*, defaults to `10000.0`):
            Base of the rotary frequencies.
        initializer_range (`float`, *optional*, defaults to `0.02`):
            Standard deviation of the normal initialisation (the LM head starts at zero, as in LlamaGen).
        condition_type (`str`, *optional*, defaults to `"c2i"`):
            `"c2i"` (class-to-image: a class embedding table with an extra null row at index `num_classes`) or
            `"t2i"` (text-to-image: an MLP over text-encoder features, plus a null caption for guidance).
        num_classes (`int`, *optional*, defaults to `1000`):
            Number of classes (c2i).
        caption_dim (`int`, *optional*, defaults to `2048`):
            Width of the text-encoder features (t2i; FLAN-T5-XL: 2048).
        num_condition_tokens (`int`, *optional*):
            Number of condition positions: 1 for c2i, the caption length (LlamaGen: 120 T5 tokens) for t2i.
        grid_size (`int`, *optional*, defaults to `24`):
            Image tokens per side (image size / VQ downsampling: 384 / 16 = 24).
        token_dropout (`float`, *optional*, defaults to `0.0`), residual_dropout (`float`, *optional*, defaults to
        `0.0`), ffn_dropout (`float`, *optional*, defaults to `0.0`), attention_dropout (`float`, *optional*,
        defaults to `0.0`):
            Dropout probabilities (LlamaGen pre-trains with 0.1 on the first three; RL fine-tuning disables them).

    Example:

    ```python
    >>> from trl_ext.models.llamagen import LlamaGenConfig
    >>> config = LlamaGenConfig.from_size("XL", image_size=384)
    >>> config.hidden_size, config.grid_size, config.intermediate_size
    (1280, 24, 3584)
    ```
    """

    model_type = "llamagen"
    # Not remote code, but transformers' and TRL's loaders read `config.auto_map`: an empty, read-only class
    # attribute (not a field, so it is not serialised).
    auto_map = MappingProxyType({})

    vocab_size: int = 16384
    hidden_size: int = 1280
    intermediate_size: int | None = None
    num_hidden_layers: int = 36
    num_attention_heads: int = 20
    num_key_value_heads: int | None = None
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    initializer_range: float = 0.02
    condition_type: str = "c2i"
    num_classes: int = 1000
    caption_dim: int = 2048
    num_condition_tokens: int | None = None
    grid_size: int = 24
    token_dropout: float = 0.0
    residual_dropout: float = 0.0
    ffn_dropout: float = 0.0
    attention_dropout: float = 0.0
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        if self.intermediate_size is None:
            self.intermediate_size = llamagen_intermediate_size(self.hidden_size)
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.num_condition_tokens is None:
            self.num_condition_tokens = 1 if self.condition_type == "c2i" else 120
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        """Checked on construction and on load: every error names the field to fix."""
        if self.condition_type not in ("c2i", "t2i"):
            raise ValueError(f"`condition_type` must be 'c2i' or 't2i', got {self.condition_type!r}.")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be a multiple of `num_attention_heads` "
                f"({self.num_attention_heads})."
            )
        if self.num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError(
                f"`num_attention_heads` ({self.num_attention_heads}) must be a multiple of `num_key_value_heads` "
                f"({self.num_key_value_heads})."
            )
        if self.head_dim % 4 != 0:
            raise ValueError(
                f"The head size `hidden_size / num_attention_heads` = {self.head_dim} must be a multiple of 4: the 2-D "
                "rotary embedding splits each head into row and column halves of rotary pairs."
            )
        if self.grid_size < 1:
            raise ValueError(f"`grid_size` must be >= 1, got {self.grid_size}.")
        if self.condition_type == "c2i" and self.num_condition_tokens != 1:
            raise ValueError(
                f"A c2i model has one condition token; got `num_condition_tokens={self.num_condition_tokens}`."
            )
        if self.num_condition_tokens < 1:
            raise ValueError(f"`num_condition_tokens` must be >= 1, got {self.num_condition_tokens}.")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def num_image_tokens(self) -> int:
        return self.grid_size * self.grid_size

    @property
    def null_class_id(self) -> int:
        """Index of the class-embedding row used for the unconditional branch of classifier-free guidance (c2i)."""
        return self.num_classes

    @classmethod
    def from_size(
        cls,
        size: str,
        condition_type: str = "c2i",
        image_size: int = 256,
        downsample_ratio: int = 16,
        **kwargs,
    ) -> LlamaGenConfig:
        """
        The configuration of one of LlamaGen's named sizes.

        Args:
            size (`str`):
                One of `"B"`, `"L"`, `"XL"`, `"XXL"`, `"3B"` (also accepted with LlamaGen's `"GPT-"` prefix).
            condition_type (`str`, *optional*, defaults to `"c2i"`):
                `"c2i"` or `"t2i"`.
            image_size (`int`, *optional*, defaults to `256`):
                Side of the generated images in pixels; must be a multiple of `downsample_ratio`.
            downsample_ratio (`int`, *optional*, defaults to `16`):
                Spatial downsampling of the VQ tokenizer (VQ-16: 16).
            kwargs:
                Any other [`LlamaGenConfig`] field.
        """
        key = size.removeprefix("GPT-")
        if key not in LLAMAGEN_SIZES:
            raise ValueError(f"Unknown LlamaGen size {size!r}; available: {sorted(LLAMAGEN_SIZES)}.")
        if image_size % downsample_ratio != 0:
            raise ValueError(
                f"`image_size` ({image_size}) must be a multiple of the VQ stride `downsample_ratio` "
                f"({downsample_ratio}), e.g. {image_size // downsample_ratio * downsample_ratio or downsample_ratio}."
            )
        layers, heads, width = LLAMAGEN_SIZES[key]
        return cls(
            num_hidden_layers=layers,
            num_attention_heads=heads,
            hidden_size=width,
            condition_type=condition_type,
            grid_size=image_size // downsample_ratio,
            **kwargs,
        )


__all__ = ["LLAMAGEN_SIZES", "LlamaGenConfig", "llamagen_intermediate_size"]
