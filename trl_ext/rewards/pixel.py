"""
Weight-free image rewards: statistics of the pixels themselves, deterministic and instant.

They follow TRL's reward signature, `f(prompts, completions, **kwargs) -> list[float]`, where each completion is a
PIL image (as [`~trl_ext.trainers.ARImageGRPOTrainer`] hands them out) or an `(H, W, 3)` uint8 array. They make good
test and smoke-test objectives, and Flow-GRPO's JPEG (in)compressibility is a known RL target in its own right. Learned
rewards (CLIP, HPS, aesthetics, ...) live in `trl_ext.rewards.image`.

Example:

```python
>>> from PIL import Image
>>> from trl_ext.rewards.pixel import brightness_reward, jpeg_compressibility_reward
>>> flat, noisy = Image.new("RGB", (64, 64), (200, 200, 200)), Image.effect_noise((64, 64), 80).convert("RGB")
>>> [round(r, 3) for r in brightness_reward(None, [flat])]
[0.784]
>>> a, b = jpeg_compressibility_reward(None, [flat, noisy])
>>> a > b  # the flat image compresses better
True
```
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def _as_array(image) -> np.ndarray:
    """`(H, W, 3)` float array in [0, 1]."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"Expected an RGB image (PIL or an (H, W, 3) array), got an array of shape {image.shape}.")
    return image.astype(np.float64) / 255.0 if image.dtype == np.uint8 else image.astype(np.float64)


def _as_pil(image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    return Image.fromarray(np.clip(_as_array(image) * 255.0 + 0.5, 0, 255).astype(np.uint8))


def brightness_reward(prompts, completions, **kwargs) -> list[float]:
    """Mean luma (ITU-R BT.601: `0.299 R + 0.587 G + 0.114 B`) of each image, in [0, 1]."""
    weights = np.array([0.299, 0.587, 0.114])
    return [float((_as_array(image) @ weights).mean()) for image in completions]


def colorfulness_reward(prompts, completions, **kwargs) -> list[float]:
    """
    Hasler & Süsstrunk's colourfulness `sqrt(std(rg)^2 + std(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2)` with
    `rg = R - G`, `yb = (R + G) / 2 - B`, on pixels in [0, 1] (0 for grey images; ~0.4 is very colourful).
    """
    rewards = []
    for image in completions:
        pixels = _as_array(image)
        rg = pixels[..., 0] - pixels[..., 1]
        yb = 0.5 * (pixels[..., 0] + pixels[..., 1]) - pixels[..., 2]
        spread = np.sqrt(rg.std() ** 2 + yb.std() ** 2)
        offset = np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
        rewards.append(float(spread + 0.3 * offset))
    return rewards


def _jpeg_kilobytes(image, quality: int) -> float:
    buffer = io.BytesIO()
    _as_pil(image).save(buffer, format="JPEG", quality=quality)
    return buffer.tell() / 1000.0


def jpeg_compressibility_reward(prompts, completions, quality: int = 95, **kwargs) -> list[float]:
    """Minus the JPEG size in kB at `quality` 95 (Flow-GRPO's compressibility): simpler images score higher."""
    return [-_jpeg_kilobytes(image, quality) for image in completions]


def jpeg_incompressibility_reward(prompts, completions, quality: int = 95, **kwargs) -> list[float]:
    """The JPEG size in kB at `quality` 95 (Flow-GRPO's incompressibility): more detailed images score higher."""
    return [_jpeg_kilobytes(image, quality) for image in completions]


__all__ = ["brightness_reward", "colorfulness_reward", "jpeg_compressibility_reward", "jpeg_incompressibility_reward"]
