"""
LlamaGen (arXiv 2406.06525) on the Hugging Face stack: the GPT, its KV cache, the VQ tokenizer and converters.

Importing this package registers `model_type="llamagen"` with transformers' `AutoConfig`, `AutoModel` and
`AutoModelForCausalLM` (the GPT is a causal transformer over image tokens), so converted folders load by path
wherever transformers or TRL resolve models through the auto classes (e.g. TRL's reference model).
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .configuration_llamagen import LLAMAGEN_SIZES, LlamaGenConfig, llamagen_intermediate_size
from .modeling_llamagen import (
    LlamaGenForImageGeneration,
    LlamaGenKVCache,
    LlamaGenOutput,
    LlamaGenPreTrainedModel,
    apply_rotary,
    llamagen_rope_table,
)
from .vq import (
    check_image_tokenizer,
    decode_image_tokens,
    encode_images,
    llamagen_vq_config,
    pixels_to_pil,
    vq_downsample_ratio,
)

__all__ = [
    "LLAMAGEN_SIZES",
    "LlamaGenConfig",
    "LlamaGenForImageGeneration",
    "LlamaGenKVCache",
    "LlamaGenOutput",
    "LlamaGenPreTrainedModel",
    "apply_rotary",
    "check_image_tokenizer",
    "decode_image_tokens",
    "encode_images",
    "llamagen_intermediate_size",
    "llamagen_rope_table",
    "llamagen_vq_config",
    "pixels_to_pil",
    "vq_downsample_ratio",
]

AutoConfig.register(LlamaGenConfig.model_type, LlamaGenConfig, exist_ok=True)
AutoModel.register(LlamaGenConfig, LlamaGenForImageGeneration, exist_ok=True)
AutoModelForCausalLM.register(LlamaGenConfig, LlamaGenForImageGeneration, exist_ok=True)
