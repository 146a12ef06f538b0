"""
Tiny, seeded, random-weight image generators, image tokenizers and text encoders for tests, demos and CI; and
synthetic state dicts laid out exactly like LlamaGen's public `.pt` checkpoints (for the converters).

Nothing here touches the Hugging Face Hub.

Example:

```python
>>> from trl_ext.testing_image import make_tiny_llamagen, make_tiny_vq
>>> model, vq = make_tiny_llamagen(), make_tiny_vq()
>>> model.config.vocab_size == vq.config.num_embeddings, model.config.grid_size
(True, 4)
```
"""

from __future__ import annotations

import os

import torch
from transformers import JanusVQVAE, T5Config, T5EncoderModel

from .models.llamagen import LlamaGenConfig, LlamaGenForImageGeneration, llamagen_vq_config


def make_tiny_llamagen(
    condition_type: str = "c2i",
    vocab_size: int = 32,
    grid_size: int = 4,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    num_classes: int = 10,
    caption_dim: int = 16,
    num_condition_tokens: int = 8,
    lm_head_std: float = 0.5,
    seed: int = 0,
) -> LlamaGenForImageGeneration:
    """
    A tiny random [`LlamaGenForImageGeneration`] (c2i or t2i). LlamaGen zero-initialises the LM head (uniform
    next-token distributions); here it is drawn with `lm_head_std` so that sampling, guidance and log-probs have
    something non-trivial to work on.
    """
    torch.manual_seed(seed)
    config = LlamaGenConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        condition_type=condition_type,
        num_classes=num_classes,
        caption_dim=caption_dim,
        num_condition_tokens=1 if condition_type == "c2i" else num_condition_tokens,
        grid_size=grid_size,
        intermediate_size=2 * hidden_size,
    )
    model = LlamaGenForImageGeneration(config)
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, lm_head_std)
    return model.eval()


def make_tiny_vq(
    codebook_size: int = 32, downsample_ratio: int = 2, grid_size: int = 4, channels: int = 32, seed: int = 0
) -> JanusVQVAE:
    """
    A tiny random LlamaGen-style VQ tokenizer ([`~transformers.JanusVQVAE`], one residual block per level, group norms
    of 32 groups, so `channels` must be a multiple of 32) with `downsample_ratio` = 2 ** (levels - 1).
    """
    torch.manual_seed(seed)
    levels = downsample_ratio.bit_length()
    config = llamagen_vq_config(
        downsample_ratio=downsample_ratio,
        codebook_size=codebook_size,
        codebook_embed_dim=8,
        image_size=grid_size * downsample_ratio,
        channel_multiplier=[1] * levels,
        base_channels=channels,
        latent_channels=channels,
        num_res_blocks=1,
    )
    vq = JanusVQVAE(config)
    with torch.no_grad():
        # Spread-out codes and unit-scale convolutions, so that different tokens decode to visibly different pixels.
        vq.quantize.embedding.weight.normal_()
        for module in vq.modules():
            if isinstance(module, torch.nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.normal_(0.0, fan_in**-0.5)
    return vq.eval()


def make_tiny_t5_encoder(vocab_size: int, d_model: int = 16, seed: int = 0) -> T5EncoderModel:
    """A tiny random T5 encoder (the text encoder of LlamaGen's t2i, FLAN-T5-XL, in miniature)."""
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=8,
        d_ff=2 * d_model,
        num_layers=1,
        num_heads=2,
        relative_attention_num_buckets=8,
        feed_forward_proj="gated-gelu",
        is_encoder_decoder=False,
        use_cache=False,
        decoder_start_token_id=0,
    )
    return T5EncoderModel(config).eval()


def save_tiny_image_models(model, vq, path: str | os.PathLike) -> tuple[str, str]:
    """Save a generator and its VQ tokenizer to `path/gpt` and `path/vq`; return both folders."""
    path = os.fspath(path)
    gpt_path, vq_path = os.path.join(path, "gpt"), os.path.join(path, "vq")
    model.save_pretrained(gpt_path)
    vq.save_pretrained(vq_path)
    return gpt_path, vq_path


# ----------------------------------------------------------------------------------------------------------------
# Synthetic LlamaGen checkpoints
# ----------------------------------------------------------------------------------------------------------------
def make_llamagen_gpt_state_dict(
    condition_type: str = "c2i",
    dim: int = 32,
    n_layer: int = 2,
    n_head: int = 4,
    n_kv_head: int | None = None,
    vocab_size: int = 32,
    num_classes: int = 10,
    caption_dim: int = 16,
    ffn_hidden: int = 64,
    kv_cache_length: int | None = None,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """
    A random state dict with the keys and shapes of LlamaGen's GPT (`autoregressive/models/gpt.py`, `Transformer`):
    `cls_embedding.embedding_table` with a null row (c2i) or `cls_embedding.cap_proj.fc{1,2}` and the 120-row
    `cls_embedding.uncond_embedding` (t2i), `tok_embeddings`, `layers.{i}.attention.{wqkv,wo}`,
    `layers.{i}.feed_forward.w{1,2,3}`, `layers.{i}.{attention,ffn}_norm`, `norm`, `output`. With
    `kv_cache_length`, also the persistent KV-cache buffers `setup_caches` registers.
    """
    generator = torch.Generator().manual_seed(seed)
    n_kv_head = n_kv_head or n_head
    head_dim = dim // n_head

    def randn(*shape, std=None):
        # Linear weights (out, in) at unit gain, so activations keep their scale through deep stacks.
        return torch.randn(*shape, generator=generator) * (shape[-1] ** -0.5 if std is None else std)

    state = {}
    if condition_type == "c2i":
        state["cls_embedding.embedding_table.weight"] = randn(num_classes + 1, dim, std=1.0)
    else:
        state["cls_embedding.cap_proj.fc1.weight"] = randn(dim, caption_dim)
        state["cls_embedding.cap_proj.fc2.weight"] = randn(dim, dim)
        # LlamaGen's CaptionEmbedder is built with its default token_num=120, whatever cls_token_num is.
        state["cls_embedding.uncond_embedding"] = randn(120, caption_dim, std=caption_dim**-0.5)
    state["tok_embeddings.weight"] = randn(vocab_size, dim, std=1.0)
    for i in range(n_layer):
        state[f"layers.{i}.attention.wqkv.weight"] = randn((n_head + 2 * n_kv_head) * head_dim, dim)
        state[f"layers.{i}.attention.wo.weight"] = randn(dim, dim)
        state[f"layers.{i}.feed_forward.w1.weight"] = randn(ffn_hidden, dim)
        state[f"layers.{i}.feed_forward.w3.weight"] = randn(ffn_hidden, dim)
        state[f"layers.{i}.feed_forward.w2.weight"] = randn(dim, ffn_hidden)
        state[f"layers.{i}.attention_norm.weight"] = 1 + randn(dim, std=0.1)
        state[f"layers.{i}.ffn_norm.weight"] = 1 + randn(dim, std=0.1)
        if kv_cache_length is not None:
            state[f"layers.{i}.attention.kv_cache.k_cache"] = torch.zeros(1, n_head, kv_cache_length, head_dim)
            state[f"layers.{i}.attention.kv_cache.v_cache"] = torch.zeros(1, n_head, kv_cache_length, head_dim)
    state["norm.weight"] = 1 + randn(dim, std=0.1)
    state["output.weight"] = randn(vocab_size, dim) * 3  # peaked next-token distributions
    return state


def make_llamagen_vq_state_dict(
    ch_mult: tuple[int, ...] = (1, 1),
    ch: int = 32,
    z_channels: int = 32,
    codebook_size: int = 32,
    codebook_embed_dim: int = 8,
    num_res_blocks: int = 2,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """
    A random state dict with the keys and shapes of LlamaGen's `VQModel` (`tokenizer/tokenizer_image/vq_model.py`):
    `encoder.conv_blocks.{i}.{res,attn,downsample}`, `encoder.mid.{0,1,2}`, `decoder.conv_blocks.{i}.{res,attn,
    upsample}` (levels in reverse), `quantize.embedding` (and the `quantize.codebook_used` usage buffer),
    `quant_conv`, `post_quant_conv`. LlamaGen's defaults are `ch=128`, `z_channels=256`, `num_res_blocks=2`.
    """
    generator = torch.Generator().manual_seed(seed)
    state = {}

    def conv(name, cin, cout, k):
        state[f"{name}.weight"] = torch.randn(cout, cin, k, k, generator=generator) * (cin * k * k) ** -0.5
        state[f"{name}.bias"] = torch.randn(cout, generator=generator) * 0.05

    def norm(name, c):
        state[f"{name}.weight"] = 1 + torch.randn(c, generator=generator) * 0.1
        state[f"{name}.bias"] = torch.randn(c, generator=generator) * 0.1

    def res(name, cin, cout):
        norm(f"{name}.norm1", cin)
        conv(f"{name}.conv1", cin, cout, 3)
        norm(f"{name}.norm2", cout)
        conv(f"{name}.conv2", cout, cout, 3)
        if cin != cout:
            conv(f"{name}.nin_shortcut", cin, cout, 1)

    def attn(name, c):
        norm(f"{name}.norm", c)
        for part in ("q", "k", "v", "proj_out"):
            conv(f"{name}.{part}", c, c, 1)

    levels = len(ch_mult)
    # Encoder
    conv("encoder.conv_in", 3, ch, 3)
    in_mult = (1, *ch_mult)
    for i in range(levels):
        block_in, block_out = ch * in_mult[i], ch * ch_mult[i]
        for j in range(num_res_blocks):
            res(f"encoder.conv_blocks.{i}.res.{j}", block_in, block_out)
            block_in = block_out
            if i == levels - 1:
                attn(f"encoder.conv_blocks.{i}.attn.{j}", block_in)
        if i != levels - 1:
            conv(f"encoder.conv_blocks.{i}.downsample.conv", block_in, block_in, 3)
    res("encoder.mid.0", block_in, block_in)
    attn("encoder.mid.1", block_in)
    res("encoder.mid.2", block_in, block_in)
    norm("encoder.norm_out", block_in)
    conv("encoder.conv_out", block_in, z_channels, 3)
    # Decoder
    block_in = ch * ch_mult[-1]
    conv("decoder.conv_in", z_channels, block_in, 3)
    res("decoder.mid.0", block_in, block_in)
    attn("decoder.mid.1", block_in)
    res("decoder.mid.2", block_in, block_in)
    for n, i in enumerate(reversed(range(levels))):
        block_out = ch * ch_mult[i]
        for j in range(num_res_blocks + 1):
            res(f"decoder.conv_blocks.{n}.res.{j}", block_in, block_out)
            block_in = block_out
            if i == levels - 1:
                attn(f"decoder.conv_blocks.{n}.attn.{j}", block_in)
        if i != 0:
            conv(f"decoder.conv_blocks.{n}.upsample.conv", block_in, block_in, 3)
    norm("decoder.norm_out", block_in)
    conv("decoder.conv_out", block_in, 3, 3)
    # Quantizer
    state["quantize.embedding.weight"] = torch.randn(codebook_size, codebook_embed_dim, generator=generator)
    state["quantize.codebook_used"] = torch.zeros(65536)
    conv("quant_conv", z_channels, codebook_embed_dim, 1)
    conv("post_quant_conv", codebook_embed_dim, z_channels, 1)
    return state


# ----------------------------------------------------------------------------------------------------------------
# Inception for FID/IS tests
# ----------------------------------------------------------------------------------------------------------------
def save_random_inception_weights(path: str | os.PathLike, seed: int = 0, logit_std: float = 0.1) -> str:
    """
    Save a random-weight InceptionV3 state dict in exactly the layout torch-fidelity loads with
    `feature_extractor_weights_path` (its `FeatureExtractorInceptionV3`: the TF-converted "pt_inception-2015-12-05"
    module names, a 1008-way `fc`), and return `path`. Nothing is downloaded: the package's own module is built with
    its weight loading skipped, re-initialised (He-normal convolutions, identity batch norms, so that activations keep
    their scale through the 94 layers), and saved; torch-fidelity's strict `load_state_dict` then checks the layout
    when the file is read back. Needs the `eval` extra (torch-fidelity).
    """
    from unittest import mock

    from torch_fidelity import feature_extractor_inceptionv3 as inception

    class _Unloaded(inception.FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):
            return None  # keep the module's own initialisation; re-drawn below

    with mock.patch.object(inception, "load_state_dict_from_url", lambda *args, **kwargs: {}):
        model = _Unloaded("inception-v3-compat", ["2048"])
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
            elif isinstance(module, torch.nn.BatchNorm2d):
                module.weight.fill_(1.0)
                module.bias.zero_()
                module.running_mean.zero_()
                module.running_var.fill_(1.0)
        model.fc.weight.copy_(torch.randn(model.fc.weight.shape, generator=generator) * logit_std)
        model.fc.bias.copy_(torch.randn(model.fc.bias.shape, generator=generator) * logit_std)
    path = os.fspath(path)
    torch.save(model.state_dict(), path)
    return path


__all__ = [
    "make_llamagen_gpt_state_dict",
    "make_llamagen_vq_state_dict",
    "make_tiny_llamagen",
    "make_tiny_t5_encoder",
    "make_tiny_vq",
    "save_random_inception_weights",
    "save_tiny_image_models",
]
