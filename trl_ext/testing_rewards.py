"""
Tiny, seeded, random-weight versions of the image reward models, saved in the formats their real checkpoints use,
so that tests and demos run the image rewards' real loading code without the Hub.

- [`save_tiny_transformers_clip`]: a transformers `CLIPModel` + `CLIPProcessor` folder (as `openai/clip-vit-*` or
  `yuvalkirstain/PickScore_v1`). The tokenizer is CLIP's real BPE, rebuilt from the vocabulary open_clip ships.
- [`save_tiny_open_clip`]: an open_clip `local-dir:` folder (`open_clip_config.json` + safetensors), as on the Hub.
- [`save_tiny_hps`]: an open_clip JSON model config and an HPSv2-style checkpoint (`{"state_dict": ...}`).
- [`save_tiny_aesthetic_mlp`]: an improved-aesthetic-predictor state dict (`layers.0.weight`, ...).
- [`save_tiny_maniqa`]: a MANIQA state dict with its (tiny) [`ManiqaConfig`].

Example:

```python
>>> import tempfile
>>> from trl_ext.rewards.image import make_clip_score_reward
>>> path = save_tiny_transformers_clip(tempfile.mkdtemp())
>>> reward = make_clip_score_reward(path, device="cpu")
>>> len(reward(prompts=["a cat"], completions=[make_test_images(1)[0]]))
1
```
"""

from __future__ import annotations

import functools
import gzip
import json
import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

TINY_IMAGE_SIZE = 32


@functools.lru_cache(maxsize=1)
def clip_bpe_vocab() -> tuple[dict[str, int], list[str]]:
    """
    CLIP's BPE vocabulary and merges (49408 tokens), in transformers' `CLIPTokenizer` format, rebuilt from the
    `bpe_simple_vocab_16e6.txt.gz` file that open_clip ships (the same file OpenAI's CLIP ships).
    """
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe(), "rt", encoding="utf-8") as handle:
        merges = handle.read().split("\n")[1 : 49152 - 256 - 2 + 1]
    byte_tokens = list(bytes_to_unicode().values())
    tokens = byte_tokens + [token + "</w>" for token in byte_tokens]
    tokens += ["".join(merge.split()) for merge in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: index for index, token in enumerate(tokens)}, merges


def make_clip_tokenizer():
    """transformers' `CLIPTokenizer` with CLIP's real vocabulary (see [`clip_bpe_vocab`])."""
    from transformers import CLIPTokenizer

    vocab, merges = clip_bpe_vocab()
    return CLIPTokenizer(vocab=dict(vocab), merges=[tuple(m.split()) for m in merges])


def make_tiny_clip_processor(
    image_size: int = TINY_IMAGE_SIZE, backend: str = "torchvision", resize: int | None = None
):
    """A `CLIPProcessor` for `image_size` inputs (`backend`: `"torchvision"`, transformers' default, or `"pil"`)."""
    from transformers import CLIPProcessor

    if backend == "torchvision":
        from transformers import CLIPImageProcessor as ImageProcessor
    elif backend == "pil":
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil as ImageProcessor
    else:
        raise ValueError(f"`backend` must be 'torchvision' or 'pil', got {backend!r}.")
    image_processor = ImageProcessor(
        size={"shortest_edge": resize or image_size}, crop_size={"height": image_size, "width": image_size}
    )
    return CLIPProcessor(image_processor=image_processor, tokenizer=make_clip_tokenizer())


def make_tiny_transformers_clip(image_size: int = TINY_IMAGE_SIZE, projection_dim: int = 16, seed: int = 0):
    """A transformers `CLIPModel` with one 32-wide layer per tower (CLIP's 49408-token vocabulary, 77 positions)."""
    from transformers import CLIPConfig, CLIPModel

    tower = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    config = CLIPConfig(
        text_config=dict(
            vocab_size=49408,
            max_position_embeddings=77,
            bos_token_id=49406,
            eos_token_id=49407,
            pad_token_id=49407,
            **tower,
        ),
        vision_config=dict(image_size=image_size, patch_size=8, **tower),
        projection_dim=projection_dim,
    )
    torch.manual_seed(seed)
    return CLIPModel(config).eval()


def save_tiny_transformers_clip(
    path: str | os.PathLike, image_size: int = TINY_IMAGE_SIZE, projection_dim: int = 16, seed: int = 0
) -> str:
    """Save a tiny `CLIPModel` and its `CLIPProcessor` to `path` (a folder like a Hub repo) and return the path."""
    path = os.fspath(path)
    make_tiny_transformers_clip(image_size, projection_dim, seed).save_pretrained(path)
    make_tiny_clip_processor(image_size).save_pretrained(path)
    return path


def tiny_open_clip_config(image_size: int = TINY_IMAGE_SIZE, embed_dim: int = 16) -> dict:
    """An open_clip model config of the ViT CLIP architecture (the family of ViT-B/32, ViT-L/14, ViT-H/14), tiny."""
    return {
        "embed_dim": embed_dim,
        "vision_cfg": {"image_size": image_size, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }


def _tiny_open_clip_model(config: dict, seed: int):
    from open_clip.model import CLIP

    torch.manual_seed(seed)
    model = CLIP(**config)
    # open_clip initialises logit_scale to log(1/0.07) and the projections with small values; perturb every
    # parameter a little so that no output is degenerate (e.g. identical scores for all images).
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    return model.eval()


def save_tiny_open_clip(path: str | os.PathLike, image_size: int = TINY_IMAGE_SIZE, seed: int = 0) -> str:
    """
    Save a tiny open_clip model as a Hub-style folder (`open_clip_config.json` + `open_clip_model.safetensors`) and
    return its `"local-dir:<path>"` name, the local twin of `"hf-hub:<repo>"`.
    """
    from safetensors.torch import save_file

    path = os.fspath(path)
    os.makedirs(path, exist_ok=True)
    config = tiny_open_clip_config(image_size)
    preprocess = {"size": image_size, "interpolation": "bicubic", "resize_mode": "shortest"}
    with open(os.path.join(path, "open_clip_config.json"), "w") as handle:
        json.dump({"model_cfg": config, "preprocess_cfg": preprocess}, handle)
    state_dict = {k: v.contiguous() for k, v in _tiny_open_clip_model(config, seed).state_dict().items()}
    save_file(state_dict, os.path.join(path, "open_clip_model.safetensors"))
    return f"local-dir:{path}"


def save_tiny_hps(path: str | os.PathLike, image_size: int = TINY_IMAGE_SIZE, seed: int = 0) -> tuple[str, str]:
    """
    Save a tiny HPSv2-format model: an open_clip JSON model config (the stand-in for the built-in `ViT-H-14`) and a
    checkpoint with the weights under `"state_dict"`, as in `HPS_v2.1_compressed.pt`.

    Returns:
        `tuple[str, str]`: `(model_config_path, checkpoint_path)`, for `make_hps_v2_reward(checkpoint,
        model_name=model_config_path)`.
    """
    path = os.fspath(path)
    os.makedirs(path, exist_ok=True)
    config = tiny_open_clip_config(image_size)
    config_path = os.path.join(path, "tiny-hps-ViT.json")
    with open(config_path, "w") as handle:
        json.dump(config, handle)
    checkpoint_path = os.path.join(path, "HPS_tiny_compressed.pt")
    torch.save({"state_dict": _tiny_open_clip_model(config, seed).state_dict()}, checkpoint_path)
    return config_path, checkpoint_path


def save_tiny_aesthetic_mlp(
    path: str | os.PathLike, input_size: int = 16, hidden_sizes: Sequence[int] = (32, 16, 8, 4), seed: int = 0
) -> str:
    """Save an [`AestheticMLP`] state dict (the layout of `sac+logos+ava1-l14-linearMSE.pth`) and return the path."""
    from .rewards.image.clip import AestheticMLP

    torch.manual_seed(seed)
    path = os.fspath(path)
    torch.save(AestheticMLP(input_size, hidden_sizes).state_dict(), path)
    return path


def tiny_maniqa_config():
    """A [`ManiqaConfig`] of MANIQA's architecture at toy size: 32 px crops, a 4-block 32-wide ViT, 2x2 windows."""
    from .rewards.image.maniqa import ManiqaConfig

    return ManiqaConfig(
        img_size=32,
        patch_size=8,
        vit_dim=32,
        vit_depth=4,
        vit_heads=2,
        feature_layers=(0, 1, 2, 3),
        dim_mlp=32,
        num_heads=(2, 2),
        window_size=2,
        depths=(2, 2),
        num_tab=2,
    )


def save_tiny_maniqa(path: str | os.PathLike, config=None, seed: int = 0) -> str:
    """Save a MANIQA state dict (the layout of `ckpt_koniq10k.pt`) at the size of `config` and return the path."""
    from .rewards.image.maniqa import MANIQA

    torch.manual_seed(seed)
    model = MANIQA(config or tiny_maniqa_config())
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
        # The score head ends in a ReLU: a positive bias keeps random scores away from an all-zero output.
        model.fc_score[3].bias.fill_(0.5)
    path = os.fspath(path)
    torch.save(model.state_dict(), path)
    return path


def make_test_images(n: int = 8, size: int | tuple[int, int] = 48, seed: int = 0) -> list[Image.Image]:
    """`n` distinct RGB images (smooth gradients plus noise, different per image), `size` square or `(W, H)`."""
    width, height = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    images = []
    for _ in range(n):
        a, b, c = rng.uniform(0.5, 6.0, size=3)
        phase = rng.uniform(0, 2 * np.pi, size=3)
        base = np.stack([np.sin(a * x + phase[0]), np.cos(b * y + phase[1]), np.sin(c * (x + y) + phase[2])], -1)
        pixels = 127.5 * (base + 1) + rng.normal(0, 12, size=(height, width, 3))
        images.append(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), mode="RGB"))
    return images


__all__ = [
    "clip_bpe_vocab",
    "make_clip_tokenizer",
    "make_test_images",
    "make_tiny_clip_processor",
    "make_tiny_transformers_clip",
    "save_tiny_aesthetic_mlp",
    "save_tiny_hps",
    "save_tiny_maniqa",
    "save_tiny_open_clip",
    "save_tiny_transformers_clip",
    "tiny_maniqa_config",
    "tiny_open_clip_config",
]
