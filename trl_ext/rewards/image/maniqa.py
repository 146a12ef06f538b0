"""
MANIQA no-reference image quality ([Yang et al., 2022](https://huggingface.co/papers/2204.08958)), AR-GRPO's
perceptual-quality reward, with deterministic crops.

The architecture follows the official implementation (IIGROUP/MANIQA) parameter for parameter, so its released
checkpoints (`ckpt_koniq10k.pt`, KonIQ-10k, the one AR-GRPO uses) load strictly: a ViT-B/8 (timm) whose blocks 6-9
are concatenated, two stages of transposed-attention blocks + a 1x1 conv + a small Swin transformer, and a
patch-weighted score head. Every size is a [`ManiqaConfig`] field, so tests build tiny versions of the same network.

The reference scores 20 *random* 224 px crops per image (AR-GRPO too), which makes the reward noisy and
irreproducible; here the crops are fixed: the official validation protocol's five crops (four corners + center) by
default, the center crop, or a regular grid.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ._loading import ModelImageReward, chunked, load_state_dict, resolve_file

MANIQA_REPO_ID = "chaofengc/IQA-PyTorch-Weights"
MANIQA_KONIQ_CHECKPOINT = "ckpt_koniq10k.pt"


@dataclass(frozen=True)
class ManiqaConfig:
    """
    Sizes of a MANIQA network. The defaults are the released KonIQ-10k model's.

    Args:
        img_size (`int`, *optional*, defaults to `224`):
            Side of the square crops the network scores.
        patch_size (`int`, *optional*, defaults to `8`):
            ViT patch size; the feature grid is `img_size // patch_size` on a side.
        vit_dim (`int`, *optional*, defaults to `768`):
            ViT width (MANIQA's `embed_dim`).
        vit_depth (`int`, *optional*, defaults to `12`):
            ViT blocks (the checkpoint holds them all; blocks after the last of `feature_layers` are not run).
        vit_heads (`int`, *optional*, defaults to `12`):
            ViT attention heads.
        vit_num_classes (`int`, *optional*, defaults to `1000`):
            Size of the (unused) ViT classification head kept for strict checkpoint loading.
        feature_layers (`tuple[int, ...]`, *optional*, defaults to `(6, 7, 8, 9)`):
            The four ViT blocks whose outputs are concatenated.
        dim_mlp (`int`, *optional*, defaults to `768`):
            Swin MLP width.
        num_heads (`tuple[int, ...]`, *optional*, defaults to `(4, 4)`):
            Heads of each Swin layer.
        window_size (`int`, *optional*, defaults to `4`):
            Swin window size.
        depths (`tuple[int, ...]`, *optional*, defaults to `(2, 2)`):
            Blocks of each Swin layer.
        num_tab (`int`, *optional*, defaults to `2`):
            Transposed-attention blocks per stage.
        scale (`float`, *optional*, defaults to `0.8`):
            Residual scale of the Swin layers (0.8 for the KonIQ/KADID models, 0.13 for PIPAL).
        mean (`tuple[float, float, float]`, *optional*, defaults to `(0.5, 0.5, 0.5)`):
            Input normalization mean, on [0, 1] pixels.
        std (`tuple[float, float, float]`, *optional*, defaults to `(0.5, 0.5, 0.5)`):
            Input normalization std.
    """

    img_size: int = 224
    patch_size: int = 8
    vit_dim: int = 768
    vit_depth: int = 12
    vit_heads: int = 12
    vit_num_classes: int = 1000
    feature_layers: tuple[int, ...] = (6, 7, 8, 9)
    dim_mlp: int = 768
    num_heads: tuple[int, ...] = (4, 4)
    window_size: int = 4
    depths: tuple[int, ...] = (2, 2)
    num_tab: int = 2
    scale: float = 0.8
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)

    def __post_init__(self):
        for field_name in ("feature_layers", "num_heads", "depths", "mean", "std"):
            object.__setattr__(self, field_name, tuple(getattr(self, field_name)))
        if len(self.feature_layers) != 4:
            raise ValueError(f"MANIQA concatenates 4 ViT blocks; `feature_layers` has {len(self.feature_layers)}.")
        if max(self.feature_layers) >= self.vit_depth:
            raise ValueError(f"`feature_layers` {self.feature_layers} must be below `vit_depth` ({self.vit_depth}).")
        if len(self.num_heads) != len(self.depths):
            raise ValueError("`num_heads` and `depths` need one entry per Swin layer.")
        if self.img_size % self.patch_size:
            raise ValueError(f"`img_size` ({self.img_size}) must be a multiple of `patch_size` ({self.patch_size}).")

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size


class TransposedAttention(nn.Module):
    """
    MANIQA's `TABlock`: attention across channels (each channel's token map is a query), plus a residual. The
    output is rearranged exactly as in the reference (a transpose followed by a reshape back to `(B, C, N)`, which
    mixes channels and tokens); the released weights were trained with it.
    """

    def __init__(self, num_tokens: int):
        super().__init__()
        self.c_q = nn.Linear(num_tokens, num_tokens)
        self.c_k = nn.Linear(num_tokens, num_tokens)
        self.c_v = nn.Linear(num_tokens, num_tokens)
        self.norm_fact = num_tokens**-0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, N)
        batch, channels, tokens = x.shape
        attention = torch.softmax(self.c_q(x) @ self.c_k(x).transpose(-2, -1) * self.norm_fact, dim=-1)
        out = (attention @ self.c_v(x)).transpose(1, 2).reshape(batch, channels, tokens)
        return out + x


def _windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/window * W/window, window * window, C)."""
    batch, height, width, channels = x.shape
    x = x.view(batch, height // window, window, width // window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, channels)


def _unwindow(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    channels = windows.shape[-1]
    x = windows.view(-1, height // window, width // window, window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, channels)


class WindowAttention(nn.Module):
    """Swin window self-attention with a learned relative position bias (names as in the reference)."""

    def __init__(self, dim: int, window: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("relative_position_index", relative[..., 0] * (2 * window - 1) + relative[..., 1])
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        windows, tokens, channels = x.shape
        q, k, v = self.qkv(x).reshape(windows, tokens, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        attention = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        attention = attention + bias.view(tokens, tokens, -1).permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            num_windows = mask.shape[0]
            attention = attention.view(-1, num_windows, self.num_heads, tokens, tokens) + mask[None, :, None]
            attention = attention.view(-1, self.num_heads, tokens, tokens)
        out = (attention.softmax(dim=-1) @ v).transpose(1, 2).reshape(windows, tokens, channels)
        return self.proj(out)


class SwinMlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwinBlock(nn.Module):
    """A (shifted-)window attention block on a fixed `resolution x resolution` grid."""

    def __init__(self, dim: int, resolution: int, num_heads: int, window: int, shift: int, dim_mlp: int):
        super().__init__()
        if resolution <= window:  # as the reference: one window covering the grid, no shift
            window, shift = resolution, 0
        self.resolution, self.window, self.shift = resolution, window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = SwinMlp(dim, dim_mlp)
        if shift:
            regions = torch.zeros(1, resolution, resolution, 1)
            bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
            for label, (rows, cols) in enumerate((r, c) for r in bounds for c in bounds):
                regions[:, rows, cols, :] = label
            regions = _windows(regions, window).squeeze(-1)
            mask = regions[:, None, :] - regions[:, :, None]
            self.register_buffer("attn_mask", mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0))
        else:
            self.attn_mask = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, C)
        batch, _, channels = x.shape
        side, window, shift = self.resolution, self.window, self.shift
        h = self.norm1(x).view(batch, side, side, channels)
        if shift:
            h = torch.roll(h, shifts=(-shift, -shift), dims=(1, 2))
        h = _unwindow(self.attn(_windows(h, window), self.attn_mask), window, side, side)
        if shift:
            h = torch.roll(h, shifts=(shift, shift), dims=(1, 2))
        x = x + h.reshape(batch, side * side, channels)
        return x + self.mlp(self.norm2(x))


class SwinLayer(nn.Module):
    """Reference `BasicLayer`: Swin blocks (alternately shifted), then a ReLU 3x3 conv on the grid."""

    def __init__(self, dim: int, resolution: int, depth: int, num_heads: int, window: int, dim_mlp: int):
        super().__init__()
        self.resolution = resolution
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)
        self.blocks = nn.ModuleList(
            SwinBlock(dim, resolution, num_heads, window, 0 if i % 2 == 0 else window // 2, dim_mlp)
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, C)
        for block in self.blocks:
            x = block(x)
        batch, tokens, channels = x.shape
        grid = x.transpose(1, 2).reshape(batch, channels, self.resolution, self.resolution)
        return F.relu(self.conv(grid)).flatten(2).transpose(1, 2)


class SwinStage(nn.Module):
    """Reference `SwinTransformer`: Swin layers with scaled residuals, on a `(B, C, H, W)` grid."""

    def __init__(self, dim: int, resolution: int, config: ManiqaConfig):
        super().__init__()
        self.scale = config.scale
        self.resolution = resolution
        # Unused in the forward pass, but part of the released state dicts.
        self.downsample = nn.Conv2d(dim, dim, kernel_size=3, stride=2, padding=1)
        self.layers = nn.ModuleList(
            SwinLayer(dim, resolution, depth, heads, config.window_size, config.dim_mlp)
            for depth, heads in zip(config.depths, config.num_heads)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        x = x.flatten(2).transpose(1, 2)
        for layer in self.layers:
            x = self.scale * layer(x) + x
        return x.transpose(1, 2).reshape(batch, channels, height, width)


class MANIQA(nn.Module):
    """
    MANIQA: scores `(B, 3, img_size, img_size)` normalized crops, one quality score per crop (about 0-1 for the
    KonIQ model). Module names match the official implementation, so its checkpoints load with `load_state_dict`.

    Args:
        config ([`ManiqaConfig`], *optional*):
            Network sizes; defaults to the released models'.
    """

    def __init__(self, config: ManiqaConfig | None = None):
        super().__init__()
        from timm.models.vision_transformer import VisionTransformer

        self.config = config = config or ManiqaConfig()
        grid, dim = config.grid, config.vit_dim
        self.vit = VisionTransformer(
            img_size=config.img_size,
            patch_size=config.patch_size,
            embed_dim=dim,
            depth=config.vit_depth,
            num_heads=config.vit_heads,
            num_classes=config.vit_num_classes,
        )
        self.tablock1 = nn.ModuleList(TransposedAttention(grid * grid) for _ in range(config.num_tab))
        self.conv1 = nn.Conv2d(dim * 4, dim, 1, 1, 0)
        self.swintransformer1 = SwinStage(dim, grid, config)
        self.tablock2 = nn.ModuleList(TransposedAttention(grid * grid) for _ in range(config.num_tab))
        self.conv2 = nn.Conv2d(dim, dim // 2, 1, 1, 0)
        self.swintransformer2 = SwinStage(dim // 2, grid, config)
        half = dim // 2
        self.fc_score = nn.Sequential(nn.Linear(half, half), nn.ReLU(), nn.Dropout(0.1), nn.Linear(half, 1), nn.ReLU())
        self.fc_weight = nn.Sequential(
            nn.Linear(half, half), nn.ReLU(), nn.Dropout(0.1), nn.Linear(half, 1), nn.Sigmoid()
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        grid = self.config.grid
        features = self.vit.forward_intermediates(
            pixel_values,
            indices=list(self.config.feature_layers),
            stop_early=True,
            output_fmt="NLC",
            intermediates_only=True,
        )
        x = torch.cat(features, dim=2).transpose(1, 2)  # (B, 4 * dim, N)
        for block in self.tablock1:
            x = block(x)
        x = self.swintransformer1(self.conv1(x.unflatten(2, (grid, grid))))
        x = x.flatten(2)
        for block in self.tablock2:
            x = block(x)
        x = self.swintransformer2(self.conv2(x.unflatten(2, (grid, grid))))
        x = x.flatten(2).transpose(1, 2)  # (B, N, dim / 2)
        score, weight = self.fc_score(x).squeeze(-1), self.fc_weight(x).squeeze(-1)
        return (score * weight).sum(-1) / weight.sum(-1)


def crop_boxes(height: int, width: int, size: int, crops: str | int) -> list[tuple[int, int]]:
    """
    Top-left corners of the deterministic crops: `"five"` (the official validation protocol: four corners, then
    the center at `(h // 2 - size // 2, w // 2 - size // 2)`), `"center"`, or an integer `k` (a `k x k` grid,
    evenly spaced from corner to corner).
    """
    if crops == "five":
        bottom, right = height - size, width - size
        return [(0, 0), (0, right), (bottom, 0), (bottom, right), (height // 2 - size // 2, width // 2 - size // 2)]
    if crops == "center":
        return [(height // 2 - size // 2, width // 2 - size // 2)]
    if isinstance(crops, int) and crops >= 1:
        rows = [round(i * (height - size) / max(crops - 1, 1)) for i in range(crops)]
        cols = [round(i * (width - size) / max(crops - 1, 1)) for i in range(crops)]
        return [(top, left) for top in rows for left in cols]
    raise ValueError(f"`crops` must be 'five', 'center' or a positive int (a k x k grid), got {crops!r}.")


class ManiqaScorer:
    """
    Mean MANIQA score over deterministic crops. Images smaller than the crop size are first resized (bicubic,
    shortest edge) to it.
    """

    def __init__(self, model: MANIQA, crops: str | int = "five"):
        crop_boxes(model.config.img_size, model.config.img_size, model.config.img_size, crops)  # validate early
        self.model = model.eval()
        self.crops = crops
        self.device, self.dtype = torch.device("cpu"), torch.float32

    def to(self, device, dtype) -> ManiqaScorer:
        self.model.to(device=device, dtype=dtype)
        self.device, self.dtype = torch.device(device), dtype
        return self

    def crops_of(self, image: torch.Tensor) -> torch.Tensor:
        """The normalized crops of one `(3, H, W)` uint8 image: `(num_crops, 3, size, size)`."""
        config = self.model.config
        size = config.img_size
        x = image.to(self.device).float().div(255)
        height, width = x.shape[-2:]
        if min(height, width) < size:
            scale = size / min(height, width)
            new_size = (max(size, math.ceil(height * scale - 1e-6)), max(size, math.ceil(width * scale - 1e-6)))
            x = F.interpolate(x[None], size=new_size, mode="bicubic", align_corners=False, antialias=False)[0]
            height, width = new_size
        mean = torch.tensor(config.mean, device=self.device).view(3, 1, 1)
        std = torch.tensor(config.std, device=self.device).view(3, 1, 1)
        x = (x - mean) / std
        boxes = crop_boxes(height, width, size, self.crops)
        return torch.stack([x[:, top : top + size, left : left + size] for top, left in boxes])

    @torch.no_grad()
    def __call__(self, images: Sequence[torch.Tensor], texts=None, batch_size: int = 32) -> torch.Tensor:
        scores = []
        for chunk in chunked(images, batch_size):
            crops = [self.crops_of(image) for image in chunk]
            per_crop = self.model(torch.cat(crops).to(self.dtype)).float()
            scores.extend(part.mean() for part in per_crop.split([len(c) for c in crops]))
        return torch.stack(scores)


def _load_maniqa_scorer(checkpoint: str, repo_id: str | None, config: ManiqaConfig, crops: str | int):
    model = MANIQA(config)
    model.load_state_dict(load_state_dict(resolve_file(checkpoint, repo_id)))
    return ManiqaScorer(model, crops)


def make_maniqa_reward(
    checkpoint: str | MANIQA = MANIQA_KONIQ_CHECKPOINT,
    *,
    repo_id: str | None = MANIQA_REPO_ID,
    config: ManiqaConfig | None = None,
    crops: str | int = "five",
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    batch_size: int = 8,
    value_range: tuple[float, float] = (0.0, 1.0),
    name: str = "maniqa",
) -> ModelImageReward:
    """
    MANIQA image quality (about 0-1 with the KonIQ-10k model), averaged over deterministic crops. Text-free.
    AR-GRPO weighs it x2.

    Args:
        checkpoint (`str` or [`MANIQA`], *optional*, defaults to `"ckpt_koniq10k.pt"`):
            Local path of an official MANIQA state dict, its file name in `repo_id`, or an already-built model.
        repo_id (`str`, *optional*, defaults to `"chaofengc/IQA-PyTorch-Weights"`):
            Hub repository holding the checkpoint (pyiqa's mirror of the official release).
        config ([`ManiqaConfig`], *optional*):
            Network sizes (defaults: the released models').
        crops (`str` or `int`, *optional*, defaults to `"five"`):
            Crop protocol, see [`crop_boxes`].
        device, dtype, value_range, name:
            See [`ModelImageReward`].
        batch_size (`int`, *optional*, defaults to `8`):
            Images per forward pass (each contributes one row per crop).
    """
    common = dict(device=device, dtype=dtype, batch_size=batch_size, value_range=value_range)
    if isinstance(checkpoint, MANIQA):
        return ModelImageReward(name, scorer=ManiqaScorer(checkpoint, crops), **common)
    crop_boxes(1, 1, 1, crops)  # fail at construction, not at the first training step
    loader = functools.partial(
        _load_maniqa_scorer, checkpoint=checkpoint, repo_id=repo_id, config=config or ManiqaConfig(), crops=crops
    )
    return ModelImageReward(name, loader=loader, **common)


maniqa = make_maniqa_reward()

__all__ = ["MANIQA", "ManiqaConfig", "ManiqaScorer", "crop_boxes", "make_maniqa_reward", "maniqa"]
