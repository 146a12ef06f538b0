"""
Batched image preprocessing for the CLIP-family scorers, equal to the official pipelines they were trained with.

Three official pipelines are in use, and they do not give the same pixels:

- `"uint8"`: transformers' `CLIPImageProcessor` (torchvision backend, the default in transformers 5): bicubic
  antialiased resize of the uint8 image (the result is rounded back to uint8), center crop rounding *down*, then
  rescale and normalize in float32.
- `"pil"`: open_clip's transform and transformers' PIL backend: PIL bicubic resize, center crop rounding to nearest
  (torchvision's `CenterCrop`), then to float.
- `"float"`: HPSv2's transform: to float *first*, then bicubic antialiased resize of the float image (not rounded),
  `CenterCrop`, normalize.

`"uint8"` and `"float"` run batched on the scorer's device; `"pil"` resizes on the CPU, one image at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ._base import group_by_shape, to_pil

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MODES = ("uint8", "pil", "float")


@dataclass(frozen=True)
class ImagePreprocess:
    """
    Resize the shortest edge, center crop a square, normalize.

    Args:
        size (`int`, *optional*, defaults to `224`):
            Side of the square crop fed to the model.
        resize (`int`, *optional*):
            Shortest edge after resizing. Defaults to `size`.
        mean (`tuple[float, float, float]`, *optional*, defaults to CLIP's):
            Per-channel mean, on the [0, 1] scale.
        std (`tuple[float, float, float]`, *optional*, defaults to CLIP's):
            Per-channel standard deviation, on the [0, 1] scale.
        mode (`str`, *optional*, defaults to `"uint8"`):
            Which official pipeline to reproduce: `"uint8"`, `"pil"` or `"float"` (see the module docstring).
        interpolation (`str`, *optional*, defaults to `"bicubic"`):
            `"bicubic"` or `"bilinear"`.
        crop_rounding (`str`, *optional*):
            Where an odd margin puts the center crop: `"floor"` (transformers, both backends) or `"round"`
            (torchvision's `CenterCrop`: open_clip, HPSv2). Defaults to `"floor"` for `"uint8"`, `"round"` otherwise.

    Example:

    ```python
    >>> from PIL import Image
    >>> from trl_ext.rewards.image import to_uint8_image
    >>> preprocess = ImagePreprocess(size=32)
    >>> preprocess([to_uint8_image(Image.new("RGB", (48, 40)))], "cpu", torch.float32).shape
    torch.Size([1, 3, 32, 32])
    ```
    """

    size: int = 224
    resize: int | None = None
    mean: tuple[float, ...] = OPENAI_CLIP_MEAN
    std: tuple[float, ...] = OPENAI_CLIP_STD
    mode: str = "uint8"
    interpolation: str = "bicubic"
    crop_rounding: str | None = None

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"`mode` must be one of {MODES}, got {self.mode!r}.")
        if self.interpolation not in ("bicubic", "bilinear"):
            raise ValueError(f"`interpolation` must be 'bicubic' or 'bilinear', got {self.interpolation!r}.")
        if self.resize is not None and self.resize < self.size:
            raise ValueError(f"`resize` ({self.resize}) must be at least the crop `size` ({self.size}).")
        if self.crop_rounding is None:
            object.__setattr__(self, "crop_rounding", "floor" if self.mode == "uint8" else "round")
        if self.crop_rounding not in ("floor", "round"):
            raise ValueError(f"`crop_rounding` must be 'floor' or 'round', got {self.crop_rounding!r}.")
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))

    @classmethod
    def from_open_clip(cls, model: torch.nn.Module, mode: str = "pil") -> ImagePreprocess:
        """The preprocessing of an open_clip model (`model.visual.preprocess_cfg`)."""
        from open_clip.model import get_model_preprocess_cfg

        cfg = get_model_preprocess_cfg(model)
        size = cfg.get("size", 224)
        if isinstance(size, Sequence):
            if len(set(size)) != 1:
                raise ValueError(f"Only square open_clip input sizes are supported, got {size}.")
            size = size[0]
        if cfg.get("resize_mode", "shortest") != "shortest":
            raise ValueError(f"open_clip resize_mode {cfg['resize_mode']!r} is not supported (only 'shortest').")
        return cls(
            size=int(size),
            mean=tuple(cfg.get("mean", OPENAI_CLIP_MEAN)),
            std=tuple(cfg.get("std", OPENAI_CLIP_STD)),
            mode=mode,
            interpolation=cfg.get("interpolation", "bicubic"),
        )

    @classmethod
    def from_image_processor(cls, processor: Any) -> ImagePreprocess:
        """
        The preprocessing of a transformers CLIP image processor (or a processor holding one). Its backend picks
        the mode: `"uint8"` for the torchvision backend, `"pil"` for the PIL one.
        """
        processor = getattr(processor, "image_processor", processor)
        if not (processor.do_resize and processor.do_center_crop and processor.do_normalize and processor.do_rescale):
            raise ValueError(
                f"{type(processor).__name__} must resize, center crop, rescale and normalize (CLIP's recipe); "
                "other settings are not supported."
            )
        if abs(processor.rescale_factor - 1 / 255) > 1e-12:
            raise ValueError(f"Unsupported rescale_factor {processor.rescale_factor} (expected 1/255).")
        size = dict(processor.size)
        crop = dict(processor.crop_size)
        if not size.get("shortest_edge") or crop.get("height") != crop.get("width"):
            raise ValueError(f"Expected a shortest-edge resize and a square crop, got size={size}, crop={crop}.")
        resample = int(processor.resample)
        interpolation = {3: "bicubic", 2: "bilinear"}.get(resample)
        if interpolation is None:
            raise ValueError(f"Unsupported resample mode {processor.resample!r} (bicubic or bilinear only).")
        return cls(
            size=int(crop["height"]),
            resize=int(size["shortest_edge"]),
            mean=tuple(processor.image_mean),
            std=tuple(processor.image_std),
            mode="pil" if getattr(processor, "backend", "torchvision") == "pil" else "uint8",
            interpolation=interpolation,
            crop_rounding="floor",
        )

    @property
    def _interpolation(self):
        from torchvision.transforms import InterpolationMode

        return InterpolationMode.BICUBIC if self.interpolation == "bicubic" else InterpolationMode.BILINEAR

    def _center_crop(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        if self.crop_rounding == "floor":
            top, left = (height - self.size) // 2, (width - self.size) // 2
        else:  # torchvision: int(round(x / 2.0)), Python's round-half-to-even included
            top, left = int(round((height - self.size) / 2.0)), int(round((width - self.size) / 2.0))
        return image[..., top : top + self.size, left : left + self.size]

    def __call__(
        self, images: Sequence[torch.Tensor], device: torch.device | str, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """
        Args:
            images (`Sequence[torch.Tensor]`):
                `(3, H, W)` uint8 images (see [`to_uint8_image`]); sizes may differ.
            device (`torch.device` or `str`):
                Where the batch is built.
            dtype (`torch.dtype`, *optional*, defaults to `torch.float32`):
                dtype of the returned batch (computations are float32, then cast).

        Returns:
            `torch.Tensor`: `(B, 3, size, size)` model input, in the order of `images`.
        """
        import torchvision.transforms.functional as tvF
        import torchvision.transforms.v2.functional as tv2F

        resize = self.resize or self.size
        mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=device).view(1, 3, 1, 1)
        out = torch.empty(len(images), 3, self.size, self.size, device=device, dtype=torch.float32)
        if self.mode == "pil":
            for index, image in enumerate(images):
                resized = tvF.pil_to_tensor(tvF.resize(to_pil(image), resize, self._interpolation))
                out[index] = self._center_crop(resized).to(device)
            out = (out / 255 - mean) / std
            return out.to(dtype)
        for indices in group_by_shape(images).values():
            batch = torch.stack([images[i] for i in indices]).to(device, non_blocking=True)
            if self.mode == "float":
                batch = self._center_crop(tvF.resize(batch.float() / 255, resize, self._interpolation))
                out[indices] = (batch - mean) / std
            else:
                # transformers resizes with torchvision's v2 kernels, whose uint8 bicubic path rounds differently.
                batch = self._center_crop(tv2F.resize(batch, [resize], self._interpolation, antialias=True))
                # transformers fuses the 1/255 rescale into the normalization: same arithmetic here.
                out[indices] = tvF.normalize(batch.float(), [255 * m for m in self.mean], [255 * s for s in self.std])
        return out.to(dtype)


__all__ = ["OPENAI_CLIP_MEAN", "OPENAI_CLIP_STD", "ImagePreprocess"]
