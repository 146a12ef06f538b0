"""
Image rewards without model weights: JPEG (in)compressibility (DDPO, Flow-GRPO), HSV saturation and the
Hasler-Süsstrunk colourfulness.

They are cheap, deterministic and need no download, which makes them good test and ablation rewards, and good
reward-hacking detectors: a policy tuned on HPS drifts towards saturated, colourful images (AR-GRPO reports it), and
grid artefacts change JPEG sizes. Log them next to the training rewards.
"""

from __future__ import annotations

import io
from typing import Any

import torch

from ._base import ImageReward, group_by_shape, to_pil


class JpegCompressibilityReward(ImageReward):
    """
    Size of the image encoded as JPEG (PIL, `quality`), negated for compressibility (smaller files score higher) and
    as is for incompressibility. The unit is kilobytes (`1000` bytes, DDPO's) or bits per pixel, which does not
    depend on the resolution.

    Args:
        incompressible (`bool`, *optional*, defaults to `False`):
            Reward larger files (detail, noise) instead of smaller ones (flat, simple images).
        quality (`int`, *optional*, defaults to `95`):
            JPEG quality, DDPO's and Flow-GRPO's 95.
        unit (`str`, *optional*, defaults to `"kb"`):
            `"kb"` or `"bpp"`.
        value_range (`tuple[float, float]`, *optional*, defaults to `(0.0, 1.0)`):
            Range of float image tensors.
        name (`str`, *optional*):
            Defaults to `"jpeg_compressibility"` or `"jpeg_incompressibility"`.
    """

    def __init__(
        self,
        incompressible: bool = False,
        quality: int = 95,
        unit: str = "kb",
        value_range: tuple[float, float] = (0.0, 1.0),
        name: str | None = None,
    ):
        if not 1 <= quality <= 100:
            raise ValueError(f"`quality` must be in [1, 100], got {quality}.")
        if unit not in ("kb", "bpp"):
            raise ValueError(f"`unit` must be 'kb' or 'bpp', got {unit!r}.")
        super().__init__(name or ("jpeg_incompressibility" if incompressible else "jpeg_compressibility"), value_range)
        self.incompressible = incompressible
        self.quality = quality
        self.unit = unit

    def jpeg_size(self, image: torch.Tensor) -> float:
        """Size of one `(3, H, W)` uint8 image as JPEG, in the reward's unit."""
        buffer = io.BytesIO()
        to_pil(image).save(buffer, format="JPEG", quality=self.quality)
        size = buffer.tell()
        if self.unit == "kb":
            return size / 1000
        return 8 * size / (image.shape[1] * image.shape[2])

    def _score(self, images: list[torch.Tensor], conditioning: Any = None) -> list[float]:
        sign = 1.0 if self.incompressible else -1.0
        return [sign * self.jpeg_size(image) for image in images]


def saturation(images: torch.Tensor) -> torch.Tensor:
    """Mean HSV saturation, `(max - min) / max` per pixel (0 for black), in [0, 1]; `images` `(B, 3, H, W)` uint8."""
    x = images.float()
    high, low = x.amax(dim=1), x.amin(dim=1)
    per_pixel = torch.where(high > 0, (high - low) / high.clamp(min=1), torch.zeros_like(high))
    return per_pixel.flatten(1).mean(1)


def colourfulness(images: torch.Tensor) -> torch.Tensor:
    """
    Hasler and Süsstrunk's colourfulness ("Measuring colourfulness in natural images", 2003) on the 0-255 scale:
    `sqrt(std(rg)^2 + std(yb)^2) + 0.3 * sqrt(mean(rg)^2 + mean(yb)^2)` with `rg = R - G`, `yb = (R + G) / 2 - B`.
    About 0 for grey images, 50-110 for colourful photographs; `images` `(B, 3, H, W)` uint8.
    """
    x = images.double()
    red, green, blue = x.unbind(1)
    rg = (red - green).flatten(1)
    yb = (0.5 * (red + green) - blue).flatten(1)
    spread = (rg.var(1, unbiased=False) + yb.var(1, unbiased=False)).sqrt()
    offset = (rg.mean(1) ** 2 + yb.mean(1) ** 2).sqrt()
    return (spread + 0.3 * offset).float()


class ColourStatisticReward(ImageReward):
    """
    A per-image colour statistic as a reward, computed in batches of same-sized images on the images' device.

    Args:
        statistic (`str`, *optional*, defaults to `"saturation"`):
            `"saturation"` ([`saturation`], in [0, 1]) or `"colourfulness"` ([`colourfulness`]).
        value_range (`tuple[float, float]`, *optional*, defaults to `(0.0, 1.0)`):
            Range of float image tensors.
        name (`str`, *optional*):
            Defaults to `statistic`.
    """

    _statistics = {"saturation": saturation, "colourfulness": colourfulness, "colorfulness": colourfulness}

    def __init__(self, statistic: str = "saturation", value_range=(0.0, 1.0), name: str | None = None):
        if statistic not in self._statistics:
            raise ValueError(f"`statistic` must be 'saturation' or 'colourfulness', got {statistic!r}.")
        super().__init__(name or statistic, value_range)
        self.statistic = statistic

    def _score(self, images: list[torch.Tensor], conditioning: Any = None) -> list[float]:
        function = self._statistics[self.statistic]
        scores = [0.0] * len(images)
        for indices in group_by_shape(images).values():
            values = function(torch.stack([images[i] for i in indices])).tolist()
            for index, value in zip(indices, values):
                scores[index] = value
        return scores


jpeg_compressibility = JpegCompressibilityReward()
jpeg_incompressibility = JpegCompressibilityReward(incompressible=True)
saturation_reward = ColourStatisticReward("saturation", name="saturation")
colourfulness_reward = ColourStatisticReward("colourfulness", name="colourfulness")

__all__ = [
    "ColourStatisticReward",
    "JpegCompressibilityReward",
    "colourfulness",
    "colourfulness_reward",
    "jpeg_compressibility",
    "jpeg_incompressibility",
    "saturation",
    "saturation_reward",
]
