"""
Convert LlamaGen's public `.pt` checkpoints to Hugging Face folders (config + safetensors).

```bash
# class-to-image GPT-XL at 384 px (c2i_XL_384.pt), and the VQ-16 tokenizer (vq_ds16_c2i.pt)
python -m trl_ext.models.llamagen.convert gpt c2i_XL_384.pt llamagen-c2i-xl-384 --image-size 384
python -m trl_ext.models.llamagen.convert vq vq_ds16_c2i.pt llamagen-vq16 --image-size 384
# text-to-image GPT-XL at 256 px (t2i_XL_stage1_256.pt)
python -m trl_ext.models.llamagen.convert gpt t2i_XL_stage1_256.pt llamagen-t2i-xl-256 --image-size 256
```

The conversion is strict: every tensor of the checkpoint must map to a parameter of the new model (the only
tensors dropped are LlamaGen's own non-weight buffers: the KV caches `setup_caches` allocates and the VQ codebook
usage counter), every parameter must be filled, and every shape must match the configuration; anything else is an
error that lists the offending keys. Sizes, class count, codebook size and caption width are read from the tensors;
the image size is not stored in LlamaGen checkpoints and must be given.

The GPT loads with [`LlamaGenForImageGeneration.from_pretrained`] and the tokenizer with
`transformers.JanusVQVAE.from_pretrained`.
"""

from __future__ import annotations

import argparse
import os
import re

import torch
import torch.nn.functional as F
from huggingface_hub import save_torch_state_dict
from transformers import JanusVQVAE, JanusVQVAEConfig

from .configuration_llamagen import LLAMAGEN_SIZES, LlamaGenConfig
from .modeling_llamagen import LlamaGenForImageGeneration
from .vq import llamagen_vq_config

# (LlamaGen key pattern, our key template) for autoregressive/models/gpt.py's `Transformer`.
GPT_KEY_MAP: list[tuple[str, str]] = [
    (r"cls_embedding\.embedding_table\.weight", "class_embedding.weight"),
    (r"cls_embedding\.cap_proj\.fc1\.weight", "caption_embedder.fc1.weight"),
    (r"cls_embedding\.cap_proj\.fc2\.weight", "caption_embedder.fc2.weight"),
    (r"cls_embedding\.uncond_embedding", "caption_embedder.null_caption"),
    (r"tok_embeddings\.weight", "embed_tokens.weight"),
    (r"layers\.(\d+)\.attention\.wqkv\.weight", r"layers.\1.self_attn.qkv_proj.weight"),
    (r"layers\.(\d+)\.attention\.wo\.weight", r"layers.\1.self_attn.o_proj.weight"),
    (r"layers\.(\d+)\.feed_forward\.w1\.weight", r"layers.\1.mlp.gate_proj.weight"),
    (r"layers\.(\d+)\.feed_forward\.w3\.weight", r"layers.\1.mlp.up_proj.weight"),
    (r"layers\.(\d+)\.feed_forward\.w2\.weight", r"layers.\1.mlp.down_proj.weight"),
    (r"layers\.(\d+)\.attention_norm\.weight", r"layers.\1.input_layernorm.weight"),
    (r"layers\.(\d+)\.ffn_norm\.weight", r"layers.\1.post_attention_layernorm.weight"),
    (r"norm\.weight", "norm.weight"),
    (r"output\.weight", "lm_head.weight"),
]
# Buffers LlamaGen's code may have saved that are not weights: `setup_caches` registers persistent KV caches.
GPT_DROPPED_KEYS = [r"layers\.\d+\.attention\.kv_cache\.[kv]_cache"]

_PARAM = r"(weight|bias)"
# (LlamaGen key pattern, transformers JanusVQVAE key template) for tokenizer/tokenizer_image/vq_model.py's `VQModel`.
VQ_KEY_MAP: list[tuple[str, str]] = [
    (rf"(encoder|decoder)\.conv_in\.{_PARAM}", r"\1.conv_in.\2"),
    (rf"(encoder|decoder)\.norm_out\.{_PARAM}", r"\1.norm_out.\2"),
    (rf"(encoder|decoder)\.conv_out\.{_PARAM}", r"\1.conv_out.\2"),
    (rf"(encoder|decoder)\.mid\.0\.(\w+)\.{_PARAM}", r"\1.mid.block_1.\2.\3"),
    (rf"(encoder|decoder)\.mid\.1\.(\w+)\.{_PARAM}", r"\1.mid.attn_1.\2.\3"),
    (rf"(encoder|decoder)\.mid\.2\.(\w+)\.{_PARAM}", r"\1.mid.block_2.\2.\3"),
    (rf"encoder\.conv_blocks\.(\d+)\.res\.(\d+)\.(\w+)\.{_PARAM}", r"encoder.down.\1.block.\2.\3.\4"),
    (rf"encoder\.conv_blocks\.(\d+)\.attn\.(\d+)\.(\w+)\.{_PARAM}", r"encoder.down.\1.attn.\2.\3.\4"),
    (rf"encoder\.conv_blocks\.(\d+)\.downsample\.conv\.{_PARAM}", r"encoder.down.\1.downsample.conv.\2"),
    (rf"decoder\.conv_blocks\.(\d+)\.res\.(\d+)\.(\w+)\.{_PARAM}", r"decoder.up.\1.block.\2.\3.\4"),
    (rf"decoder\.conv_blocks\.(\d+)\.attn\.(\d+)\.(\w+)\.{_PARAM}", r"decoder.up.\1.attn.\2.\3.\4"),
    (rf"decoder\.conv_blocks\.(\d+)\.upsample\.conv\.{_PARAM}", r"decoder.up.\1.upsample.conv.\2"),
    (rf"(quant_conv|post_quant_conv)\.{_PARAM}", r"\1.\2"),
    (r"quantize\.embedding\.weight", "quantize.embedding.weight"),
]
# The codebook-usage statistics buffer of LlamaGen's `VectorQuantizer` (training monitoring only).
VQ_DROPPED_KEYS = [r"quantize\.codebook_used"]


# ----------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------
def load_llamagen_checkpoint(path: str | os.PathLike, state_dict_key: str = "auto") -> dict[str, torch.Tensor]:
    """
    Read a LlamaGen `.pt` file and return its model state dict.

    DDP checkpoints hold `{"model", "optimizer", "steps", "args", ("ema")}`, DeepSpeed ones `{"module", ...}`,
    FSDP-consolidated ones the bare state dict. The file is read with `weights_only=True` (no code runs), allowing
    the `argparse.Namespace` LlamaGen stores under `"args"`.

    Args:
        path (`str` or `os.PathLike`):
            The `.pt` file.
        state_dict_key (`str`, *optional*, defaults to `"auto"`):
            Which entry holds the weights: `"auto"` (`"model"`, then `"module"`, then `"state_dict"`, else the file
            itself), or an explicit key such as `"ema"`.
    """
    with torch.serialization.safe_globals([argparse.Namespace]):
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict):
        raise ValueError(f"{path} does not hold a dict but a {type(checkpoint).__name__}.")
    if state_dict_key != "auto":
        if state_dict_key not in checkpoint:
            raise ValueError(f"{path} has no {state_dict_key!r} entry; its keys are {sorted(checkpoint)[:10]}.")
        return checkpoint[state_dict_key]
    for key in ("model", "module", "state_dict"):
        if isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    if not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ValueError(
            f"{path} is neither a state dict nor a checkpoint with a 'model', 'module' or 'state_dict' entry; pass "
            "`state_dict_key`."
        )
    return checkpoint


# ----------------------------------------------------------------------------------------------------------------
# Strict renaming
# ----------------------------------------------------------------------------------------------------------------
def _rename(
    state_dict: dict[str, torch.Tensor], key_map: list[tuple[str, str]], dropped: list[str], what: str
) -> dict[str, torch.Tensor]:
    patterns = [(re.compile(source), target) for source, target in key_map]
    dropped_patterns = [re.compile(p) for p in dropped]
    renamed, unknown = {}, []
    for key, tensor in state_dict.items():
        for pattern, target in patterns:
            if pattern.fullmatch(key):
                renamed[pattern.sub(target, key)] = tensor
                break
        else:
            if not any(p.fullmatch(key) for p in dropped_patterns):
                unknown.append(key)
    if unknown:
        raise ValueError(
            f"The {what} checkpoint has {len(unknown)} key(s) that LlamaGen's {what} does not define (is it the right "
            f"file?): {sorted(unknown)[:20]}"
        )
    return renamed


def _check_against(renamed: dict[str, torch.Tensor], model: torch.nn.Module, what: str) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(expected) - set(renamed))
    extra = sorted(set(renamed) - set(expected))
    if missing or extra:
        raise ValueError(
            f"The converted {what} does not match the configuration: missing {missing[:20]}, unexpected {extra[:20]}."
        )
    wrong = [
        f"{k}: {tuple(renamed[k].shape)} vs {expected[k]}" for k in expected if tuple(renamed[k].shape) != expected[k]
    ]
    if wrong:
        raise ValueError(f"Shape mismatch between the {what} checkpoint and the configuration: {wrong[:20]}")


# ----------------------------------------------------------------------------------------------------------------
# GPT
# ----------------------------------------------------------------------------------------------------------------
def llamagen_gpt_config_from_state_dict(
    state_dict: dict[str, torch.Tensor],
    image_size: int,
    downsample_ratio: int = 16,
    size: str | None = None,
    num_attention_heads: int | None = None,
) -> LlamaGenConfig:
    """
    Read a [`LlamaGenConfig`] from a LlamaGen GPT state dict: width, depth, vocabulary, class count or caption width
    and length from the tensors; the head count from `num_attention_heads` (any checkpoint, named size or not) or
    LlamaGen's named sizes (`size`, or the size with this width and depth); the grid from
    `image_size / downsample_ratio`.
    """
    if "tok_embeddings.weight" not in state_dict:
        raise ValueError("Not a LlamaGen GPT state dict: `tok_embeddings.weight` is missing.")
    vocab_size, hidden_size = state_dict["tok_embeddings.weight"].shape
    layer_ids = {int(m.group(1)) for k in state_dict if (m := re.match(r"layers\.(\d+)\.", k))}
    num_layers = max(layer_ids) + 1 if layer_ids else 0
    if num_attention_heads is not None:
        if size is not None:
            raise ValueError("Pass `size` or `num_attention_heads`, not both.")
        if num_attention_heads < 1 or hidden_size % num_attention_heads:
            raise ValueError(
                f"`num_attention_heads` ({num_attention_heads}) must divide the checkpoint's width ({hidden_size})."
            )
        base = LlamaGenConfig(
            num_hidden_layers=num_layers,
            hidden_size=hidden_size,
            num_attention_heads=num_attention_heads,
            grid_size=_grid_size(image_size, downsample_ratio),
        )
    elif size is None:
        matches = [
            name for name, (layers, _, width) in LLAMAGEN_SIZES.items() if (layers, width) == (num_layers, hidden_size)
        ]
        if not matches:
            raise ValueError(
                f"No LlamaGen size has {num_layers} layers of width {hidden_size}; pass `size` explicitly "
                f"(one of {sorted(LLAMAGEN_SIZES)})."
            )
        size = matches[0]
    if num_attention_heads is None:
        base = LlamaGenConfig.from_size(size, image_size=image_size, downsample_ratio=downsample_ratio)
    if (base.num_hidden_layers, base.hidden_size) != (num_layers, hidden_size):
        raise ValueError(
            f"`size={size!r}` has {base.num_hidden_layers} layers of width {base.hidden_size}, but the checkpoint has "
            f"{num_layers} of width {hidden_size}."
        )
    fields = {
        "num_hidden_layers": num_layers,
        "num_attention_heads": base.num_attention_heads,
        "hidden_size": hidden_size,
        "vocab_size": vocab_size,
        "grid_size": base.grid_size,
        "intermediate_size": state_dict["layers.0.feed_forward.w1.weight"].shape[0],
    }
    qkv_rows = state_dict["layers.0.attention.wqkv.weight"].shape[0]
    fields["num_key_value_heads"] = (qkv_rows // base.head_dim - base.num_attention_heads) // 2
    if "cls_embedding.embedding_table.weight" in state_dict:
        rows = state_dict["cls_embedding.embedding_table.weight"].shape[0]
        fields.update(condition_type="c2i", num_classes=rows - 1)
    elif "cls_embedding.cap_proj.fc1.weight" in state_dict:
        tokens, caption_dim = state_dict["cls_embedding.uncond_embedding"].shape
        fields.update(condition_type="t2i", caption_dim=caption_dim, num_condition_tokens=tokens)
    else:
        raise ValueError("The checkpoint has neither a class embedding (c2i) nor a caption projection (t2i).")
    return LlamaGenConfig(**fields)


def _grid_size(image_size: int, downsample_ratio: int) -> int:
    if image_size % downsample_ratio:
        raise ValueError(f"`image_size` ({image_size}) must be a multiple of `downsample_ratio` ({downsample_ratio}).")
    return image_size // downsample_ratio


def convert_llamagen_gpt_state_dict(
    state_dict: dict[str, torch.Tensor], config: LlamaGenConfig
) -> dict[str, torch.Tensor]:
    """Rename a LlamaGen GPT state dict to [`LlamaGenForImageGeneration`]'s keys, strictly (see the module doc)."""
    renamed = _rename(state_dict, GPT_KEY_MAP, GPT_DROPPED_KEYS, "GPT")
    with torch.device("meta"):
        reference = LlamaGenForImageGeneration(config)
    _check_against(renamed, reference, "GPT")
    return {k: v.contiguous() for k, v in renamed.items()}


# ----------------------------------------------------------------------------------------------------------------
# VQ
# ----------------------------------------------------------------------------------------------------------------
def llamagen_vq_config_from_state_dict(state_dict: dict[str, torch.Tensor], image_size: int = 256) -> JanusVQVAEConfig:
    """Read the `JanusVQVAEConfig` of a LlamaGen VQ state dict (levels, channels, codebook) from its tensors."""
    if "quantize.embedding.weight" not in state_dict:
        raise ValueError("Not a LlamaGen VQ state dict: `quantize.embedding.weight` is missing.")
    codebook_size, embed_dim = state_dict["quantize.embedding.weight"].shape
    levels = 1 + max(int(m.group(1)) for k in state_dict if (m := re.match(r"encoder\.conv_blocks\.(\d+)\.", k)))
    res_blocks = 1 + max(
        int(m.group(1)) for k in state_dict if (m := re.match(r"encoder\.conv_blocks\.0\.res\.(\d+)\.", k))
    )
    base_channels = state_dict["encoder.conv_in.weight"].shape[0]
    multipliers = [
        state_dict[f"encoder.conv_blocks.{i}.res.0.conv1.weight"].shape[0] // base_channels for i in range(levels)
    ]
    return llamagen_vq_config(
        downsample_ratio=2 ** (levels - 1),
        codebook_size=codebook_size,
        codebook_embed_dim=embed_dim,
        image_size=image_size,
        channel_multiplier=multipliers,
        base_channels=base_channels,
        latent_channels=state_dict["post_quant_conv.weight"].shape[0],
        num_res_blocks=res_blocks,
    )


def convert_llamagen_vq_state_dict(
    state_dict: dict[str, torch.Tensor], config: JanusVQVAEConfig
) -> dict[str, torch.Tensor]:
    """
    Rename a LlamaGen VQ state dict to `JanusVQVAE`'s keys, strictly, with the codebook rows L2-normalised (LlamaGen
    normalises them at every lookup; stored normalised, `JanusVQVAE`'s unnormalised encoder search finds the same
    codes).
    """
    renamed = _rename(state_dict, VQ_KEY_MAP, VQ_DROPPED_KEYS, "VQ")
    with torch.device("meta"):
        reference = JanusVQVAE(config)
    _check_against(renamed, reference, "VQ")
    codebook = renamed["quantize.embedding.weight"]
    renamed["quantize.embedding.weight"] = F.normalize(codebook.float(), p=2, dim=-1).to(codebook.dtype)
    return {k: v.contiguous() for k, v in renamed.items()}


# ----------------------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------------------
def _save(state_dict: dict[str, torch.Tensor], config, output_dir: str, dtype: torch.dtype | None) -> None:
    if dtype is not None:
        state_dict = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state_dict.items()}
        config.dtype = dtype
    os.makedirs(output_dir, exist_ok=True)
    config.save_pretrained(output_dir)
    save_torch_state_dict(state_dict, output_dir, max_shard_size="5GB")


def convert_gpt_checkpoint(
    checkpoint: str | os.PathLike,
    output_dir: str,
    image_size: int,
    size: str | None = None,
    downsample_ratio: int = 16,
    state_dict_key: str = "auto",
    dtype: torch.dtype | None = None,
    num_attention_heads: int | None = None,
) -> LlamaGenConfig:
    """Convert a LlamaGen GPT `.pt` file into a [`LlamaGenForImageGeneration`] folder; return its config."""
    state_dict = load_llamagen_checkpoint(checkpoint, state_dict_key)
    config = llamagen_gpt_config_from_state_dict(state_dict, image_size, downsample_ratio, size, num_attention_heads)
    config.architectures = [LlamaGenForImageGeneration.__name__]
    _save(convert_llamagen_gpt_state_dict(state_dict, config), config, output_dir, dtype)
    return config


def convert_vq_checkpoint(
    checkpoint: str | os.PathLike,
    output_dir: str,
    image_size: int = 256,
    state_dict_key: str = "auto",
    dtype: torch.dtype | None = None,
) -> JanusVQVAEConfig:
    """Convert a LlamaGen VQ `.pt` file into a `JanusVQVAE` folder; return its config."""
    state_dict = load_llamagen_checkpoint(checkpoint, state_dict_key)
    config = llamagen_vq_config_from_state_dict(state_dict, image_size)
    config.architectures = [JanusVQVAE.__name__]
    _save(convert_llamagen_vq_state_dict(state_dict, config), config, output_dir, dtype)
    return config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m trl_ext.models.llamagen.convert", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("kind", choices=["gpt", "vq"], help="What the checkpoint holds.")
    parser.add_argument("checkpoint", help="LlamaGen .pt file.")
    parser.add_argument("output_dir", help="Folder for config.json and the safetensors weights.")
    parser.add_argument("--image-size", type=int, required=True, help="Image side in pixels (256, 384, 512).")
    parser.add_argument(
        "--size", choices=sorted(LLAMAGEN_SIZES), help="GPT size; inferred from the tensors if omitted."
    )
    parser.add_argument(
        "--num-heads",
        type=int,
        help="Attention heads, for a GPT outside LlamaGen's named sizes (layers and width are read from the tensors).",
    )
    parser.add_argument("--downsample-ratio", type=int, default=16, help="VQ stride the GPT was trained with.")
    parser.add_argument("--state-dict-key", default="auto", help="Checkpoint entry with the weights (e.g. 'ema').")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="Store the weights in this dtype.")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", help="Also upload the converted model to this Hub repo.")
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype) if args.dtype else None
    if args.kind == "gpt":
        config = convert_gpt_checkpoint(
            args.checkpoint,
            args.output_dir,
            args.image_size,
            args.size,
            args.downsample_ratio,
            args.state_dict_key,
            dtype,
            args.num_heads,
        )
        model_class = LlamaGenForImageGeneration
        summary = (
            f"{config.condition_type} GPT: {config.num_hidden_layers} layers, width {config.hidden_size}, "
            f"{config.grid_size}x{config.grid_size} tokens, vocabulary {config.vocab_size}"
        )
    else:
        config = convert_vq_checkpoint(args.checkpoint, args.output_dir, args.image_size, args.state_dict_key, dtype)
        model_class = JanusVQVAE
        summary = f"VQ tokenizer: stride {2 ** (len(config.channel_multiplier) - 1)}, codebook {config.num_embeddings}"
    print(f"Converted {args.checkpoint} -> {args.output_dir} ({summary})")
    if args.push_to_hub:
        model_class.from_pretrained(args.output_dir).push_to_hub(args.push_to_hub)
        print(f"Pushed to https://huggingface.co/{args.push_to_hub}")


if __name__ == "__main__":
    main()
