"""
LlamaGen's VQ image tokenizer (VQ-16 / VQ-8) through transformers' [`~transformers.JanusVQVAE`].

Why `JanusVQVAE` and not diffusers' `VQModel`: Janus's image tokenizer *is* LlamaGen's VQ model, so transformers'
class has the same modules, with the same 1x1-convolution attention, the same asymmetric-padding downsampling and the
same L2-normalised codebook lookup when decoding; LlamaGen weights load with a renaming of module paths only, and the
decoded pixels are identical. diffusers' `VQModel` would need its attention weights reshaped from convolutions to
linear layers, its block layout (attention inside the lowest-resolution blocks) expressed through block types, and
its quantizer has no L2 normalisation. The one difference: LlamaGen also normalises the *encoder output* before the
nearest-codebook search. With the codebook rows stored pre-normalised (the converter does this), the nearest row by
Euclidean distance is the one of highest cosine similarity in both, so encoding yields the same indices too.

`JanusVQVAE.decode` expects a square grid of `config.num_patches` per side; [`decode_image_tokens`] decodes any
`(h, w)` grid with the same modules, in one batched call on the model's device.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers import JanusVQVAE, JanusVQVAEConfig

# LlamaGen's tokenizers (tokenizer/tokenizer_image/vq_model.py): channel multipliers per resolution level.
LLAMAGEN_VQ_CHANNEL_MULTIPLIERS = {16: [1, 1, 2, 2, 4], 8: [1, 2, 2, 4]}


def llamagen_vq_config(
    downsample_ratio: int = 16,
    codebook_size: int = 16384,
    codebook_embed_dim: int = 8,
    image_size: int = 256,
    **kwargs,
) -> JanusVQVAEConfig:
    """
    The [`~transformers.JanusVQVAEConfig`] of LlamaGen's VQ-16 (`downsample_ratio=16`) or VQ-8 tokenizer.

    Args:
        downsample_ratio (`int`, *optional*, defaults to `16`):
            16 (VQ-16) or 8 (VQ-8); any power of two with an explicit `channel_multiplier`.
        codebook_size (`int`, *optional*, defaults to `16384`):
            Number of codebook entries (the GPT's `vocab_size`).
        codebook_embed_dim (`int`, *optional*, defaults to `8`):
            Width of a codebook entry.
        image_size (`int`, *optional*, defaults to `256`):
            Image side, used for `num_patches` (the grid of `JanusVQVAE.decode`); must be a multiple of
            `downsample_ratio`.
        kwargs:
            Any other `JanusVQVAEConfig` field.
    """
    if "channel_multiplier" not in kwargs:
        if downsample_ratio not in LLAMAGEN_VQ_CHANNEL_MULTIPLIERS:
            raise ValueError(
                f"LlamaGen ships VQ tokenizers with `downsample_ratio` 8 or 16, got {downsample_ratio}; pass "
                "`channel_multiplier` (one entry per resolution level) for another layout."
            )
        kwargs["channel_multiplier"] = LLAMAGEN_VQ_CHANNEL_MULTIPLIERS[downsample_ratio]
    elif 2 ** (len(kwargs["channel_multiplier"]) - 1) != downsample_ratio:
        raise ValueError(
            f"`channel_multiplier` {kwargs['channel_multiplier']} has {len(kwargs['channel_multiplier'])} levels, i.e. "
            f"stride {2 ** (len(kwargs['channel_multiplier']) - 1)}, not `downsample_ratio={downsample_ratio}`."
        )
    if image_size % downsample_ratio != 0:
        raise ValueError(
            f"`image_size` ({image_size}) must be a multiple of the VQ stride `downsample_ratio` ({downsample_ratio})."
        )
    return JanusVQVAEConfig(
        num_embeddings=codebook_size,
        embed_dim=codebook_embed_dim,
        num_patches=image_size // downsample_ratio,
        **{"base_channels": 128, "latent_channels": 256, "num_res_blocks": 2, "dropout": 0.0, **kwargs},
    )


def vq_downsample_ratio(vq: JanusVQVAE) -> int:
    """Pixels per image token along each side: `2 ** (number of resolution levels - 1)`."""
    return 2 ** (len(vq.config.channel_multiplier) - 1)


def check_image_tokenizer(vq: JanusVQVAE, vocab_size: int, grid_size: int, image_size: int | None = None) -> int:
    """
    Check that a VQ tokenizer fits a generator with `vocab_size` tokens over a `grid_size` x `grid_size` grid, and
    return the image side in pixels.

    Raises:
        `ValueError`: naming the field at fault: the codebook size (`num_embeddings` vs the GPT's `vocab_size`), or an
        `image_size` that is not a multiple of the VQ stride or does not match the grid.
    """
    if vq.config.num_embeddings != vocab_size:
        raise ValueError(
            f"Codebook size mismatch: the VQ tokenizer has `num_embeddings={vq.config.num_embeddings}` codes but the "
            f"generator's `vocab_size` is {vocab_size}. Pair the GPT with the tokenizer it was trained on."
        )
    stride = vq_downsample_ratio(vq)
    if image_size is None:
        return grid_size * stride
    if image_size % stride != 0:
        raise ValueError(
            f"`image_size` ({image_size}) must be a multiple of the VQ stride ({stride}), e.g. "
            f"{max(image_size // stride, 1) * stride}."
        )
    if image_size // stride != grid_size:
        raise ValueError(
            f"`image_size` ({image_size}) gives a {image_size // stride}x{image_size // stride} token grid, but the "
            f"generator was built for {grid_size}x{grid_size} (image_size={grid_size * stride})."
        )
    return image_size


def decode_image_tokens(
    vq: JanusVQVAE, image_token_ids: torch.LongTensor, grid: tuple[int, int] | None = None
) -> torch.FloatTensor:
    """
    Decode image-token ids to pixels, batched, on the tokenizer's device.

    Args:
        vq ([`~transformers.JanusVQVAE`]):
            The image tokenizer.
        image_token_ids (`torch.LongTensor` of shape `(batch_size, h * w)`):
            Codebook indices in raster order.
        grid (`tuple[int, int]`, *optional*):
            `(h, w)`. Defaults to a square grid.

    Returns:
        `torch.FloatTensor` of shape `(batch_size, 3, h * stride, w * stride)`: pixels in `[-1, 1]`.
    """
    batch, length = image_token_ids.shape
    if grid is None:
        side = int(round(length**0.5))
        if side * side != length:
            raise ValueError(f"{length} image tokens do not form a square grid; pass `grid=(h, w)`.")
        grid = (side, side)
    if grid[0] * grid[1] != length:
        raise ValueError(f"`grid` {grid} holds {grid[0] * grid[1]} tokens, got {length}.")
    codebook = vq.quantize.embedding.weight
    if int(image_token_ids.min()) < 0 or int(image_token_ids.max()) >= codebook.size(0):
        raise ValueError(f"Image-token ids must lie in [0, {codebook.size(0)}) (the codebook size).")
    latents = F.normalize(codebook[image_token_ids.to(codebook.device)], p=2, dim=-1)
    latents = latents.view(batch, grid[0], grid[1], -1).permute(0, 3, 1, 2).contiguous()
    pixels = vq.decoder(vq.post_quant_conv(latents))
    return pixels.clamp(-1.0, 1.0)


def encode_images(vq: JanusVQVAE, pixel_values: torch.FloatTensor) -> torch.LongTensor:
    """Image-token ids `(batch_size, h * w)` of images `(batch_size, 3, H, W)` in `[-1, 1]`."""
    indices = vq.encode(pixel_values.to(vq.quant_conv.weight.dtype)).image_tokens
    return indices.view(pixel_values.size(0), -1)


def pixels_to_pil(pixels: torch.FloatTensor) -> list[Image.Image]:
    """Convert `(batch_size, 3, H, W)` pixels in `[-1, 1]` to RGB PIL images (quantised on device, copied once)."""
    data = ((pixels.float() + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    array = data.permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(np.ascontiguousarray(a)) for a in array]


__all__ = [
    "LLAMAGEN_VQ_CHANNEL_MULTIPLIERS",
    "check_image_tokenizer",
    "decode_image_tokens",
    "encode_images",
    "llamagen_vq_config",
    "pixels_to_pil",
    "vq_downsample_ratio",
]
