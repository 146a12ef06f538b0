"""
Shared machinery of the image rewards: turning `completions` into pixels, finding the text each image is scored
against, resolving a reward's device lazily, caching scorers per process, and the reward base class.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

logger = logging.getLogger(__name__)

ImageLike = Image.Image | torch.Tensor | np.ndarray

# Columns searched, in this order, when a reward is not told where its text comes from.
CAPTION_COLUMNS = ("caption", "text")
CLASS_NAME_COLUMNS = ("class_name",)
CLASS_LABEL_COLUMNS = ("class_label", "label", "class_id")
DEFAULT_TEMPLATE = "a photo of {}"


# --------------------------------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------------------------------


def _float_to_uint8(image: torch.Tensor | np.ndarray, value_range: tuple[float, float], where: str) -> torch.Tensor:
    low, high = value_range
    image = torch.as_tensor(image)
    if image.numel():
        span = high - low
        minimum, maximum = image.min().item(), image.max().item()
        # Decoders overshoot their range a little (that is clamped); far outside it, the range is wrong.
        if minimum < low - 0.25 * span or maximum > high + 0.25 * span or math.isnan(minimum + maximum):
            hint = " Pass `value_range=(-1, 1)` for images in [-1, 1]." if minimum < 0 else ""
            hint += " Pass a uint8 image for values in [0, 255]." if maximum > 2 else ""
            raise ValueError(
                f"{where}: float image values span [{minimum:.3g}, {maximum:.3g}], outside `value_range={value_range}`."
                + hint
            )
    image = ((image.float() - low) / (high - low)).clamp_(0, 1)
    return image.mul_(255).round_().to(torch.uint8)


def to_uint8_image(
    image: ImageLike, value_range: tuple[float, float] = (0.0, 1.0), where: str = "image"
) -> torch.Tensor:
    """
    Convert one image to a `(3, H, W)` uint8 RGB tensor (on the image's own device for tensors, on CPU otherwise).

    Accepted inputs:
    - `PIL.Image.Image` in any mode (converted to RGB, alpha dropped like `Image.convert("RGB")`).
    - `torch.Tensor` `(C, H, W)` with 1 or 3 channels (or `(H, W)`): uint8 in [0, 255], or floating point in
      `value_range` (`(0, 1)` by default; `(-1, 1)` for VQ/VAE decoder outputs). Floats are mapped to [0, 255] and
      rounded, so a float image and its `round(x * 255)` PIL version score the same.
    - `numpy.ndarray` `(H, W, C)` or `(H, W)`, the layout of `np.asarray(pil_image)`, with the same dtype rules.

    Args:
        image (`PIL.Image.Image`, `torch.Tensor` or `np.ndarray`):
            The image.
        value_range (`tuple[float, float]`, *optional*, defaults to `(0.0, 1.0)`):
            Range of floating-point pixel values. Values slightly outside it are clamped; values far outside it
            (more than a quarter of the range) raise, since they mean the range is wrong.
        where (`str`, *optional*, defaults to `"image"`):
            Name used in error messages.

    Returns:
        `torch.Tensor`: `(3, H, W)` uint8 tensor.
    """
    if isinstance(image, Image.Image):
        array = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3 or image.shape[2] not in (1, 3):
            raise ValueError(f"{where}: numpy images must be (H, W, 3) or (H, W) (PIL layout), got {image.shape}.")
        # A channel-first copy: arrays from `np.asarray(pil_image)` are read-only, which torch warns about.
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
    elif isinstance(image, torch.Tensor):
        tensor = image.detach()
        if tensor.ndim == 2:
            tensor = tensor[None]
        if tensor.ndim != 3 or tensor.shape[0] not in (1, 3):
            raise ValueError(
                f"{where}: tensor images must be (3, H, W) or (H, W) (torchvision layout), got {tuple(tensor.shape)}."
            )
    else:
        raise TypeError(
            f"{where}: expected a PIL image, a torch tensor or a numpy array, got {type(image).__name__}. Image rewards "
            "score decoded images: pass the images as `completions`."
        )
    if tensor.dtype == torch.uint8:
        pass
    elif tensor.is_floating_point():
        tensor = _float_to_uint8(tensor, value_range, where)
    else:
        raise TypeError(f"{where}: unsupported pixel dtype {tensor.dtype}; use uint8 or floating point.")
    if tensor.shape[0] == 1:
        tensor = tensor.expand(3, -1, -1)
    return tensor.contiguous()


def as_image_list(completions: Any) -> list[ImageLike]:
    """The images of `completions`: a list of images, or a `(B, C, H, W)` tensor / `(B, H, W, C)` array."""
    if completions is None:
        raise ValueError("Image rewards need `completions`: the decoded images, one per completion.")
    if isinstance(completions, torch.Tensor):
        if completions.ndim != 4:
            raise ValueError(f"A tensor of completions must be (B, C, H, W), got {tuple(completions.shape)}.")
        return list(completions.unbind(0))
    if isinstance(completions, np.ndarray):
        if completions.ndim != 4:
            raise ValueError(f"An array of completions must be (B, H, W, C), got {completions.shape}.")
        return list(completions)
    if isinstance(completions, Image.Image):
        raise TypeError("`completions` must be a list of images (one per completion), not a single image.")
    return list(completions)


def to_uint8_images(completions: Any, value_range: tuple[float, float] = (0.0, 1.0)) -> list[torch.Tensor]:
    """[`to_uint8_image`] over the images of `completions`."""
    return [to_uint8_image(x, value_range, f"completions[{i}]") for i, x in enumerate(as_image_list(completions))]


def to_pil(image: torch.Tensor) -> Image.Image:
    """A `(3, H, W)` uint8 tensor as an RGB PIL image."""
    return Image.fromarray(image.permute(1, 2, 0).cpu().numpy(), mode="RGB")


def group_by_shape(images: Sequence[torch.Tensor]) -> dict[tuple[int, ...], list[int]]:
    """Indices of `images` grouped by shape, so that same-sized images are processed as one batch."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(images):
        groups.setdefault(tuple(image.shape), []).append(index)
    return groups


# --------------------------------------------------------------------------------------------------------------------
# Texts: caption, class name, or class label
# --------------------------------------------------------------------------------------------------------------------


_imagenet_names: dict[str, tuple[str, ...]] = {}


def imagenet_class_names(style: str = "lemmas") -> tuple[str, ...]:
    """
    The 1000 ImageNet-1k class names, by class index.

    Args:
        style (`str`, *optional*, defaults to `"lemmas"`):
            `"lemmas"`: the WordNet lemma lists of the usual class index (`"tench, Tinca tinca"`), which AR-GRPO puts
            in its "a photo of {class}" prompts (read from `timm`'s ImageNet metadata). `"clean"`: the short,
            disambiguated names of CLIP's zero-shot evaluation (`"tench"`, `"rooster"`; from `open_clip`).
    """
    if style not in _imagenet_names:
        if style == "lemmas":
            from timm.data import ImageNetInfo

            info = ImageNetInfo()
            names = tuple(info.index_to_description(i) for i in range(info.num_classes()))
        elif style == "clean":
            from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

            names = tuple(IMAGENET_CLASSNAMES)
        else:
            raise ValueError(f"`style` must be 'lemmas' or 'clean', got {style!r}.")
        _imagenet_names[style] = names
    return _imagenet_names[style]


class TextSource:
    """
    Finds the text each image is scored against, from the dataset columns TRL passes to reward functions.

    Captions are used as they are; class names and integer class labels are put in `template`
    (AR-GRPO's `"a photo of {}"`). Without explicit columns, the first present of `caption`, `text` (captions),
    `class_name` (names), `class_label`, `label`, `class_id` (labels) is used, and last the prompts themselves when
    they are plain strings.

    Args:
        text_column (`str`, *optional*):
            Column holding captions, used verbatim.
        class_column (`str`, *optional*):
            Column holding class labels (`int`, looked up in `class_names`) or class names (`str`); templated.
        template (`str`, *optional*, defaults to `"a photo of {}"`):
            Format string with one `{}` for class names.
        class_names (`Sequence[str]`, *optional*):
            Names by label. Defaults to [`imagenet_class_names`]`("lemmas")`, as AR-GRPO.
    """

    def __init__(
        self,
        text_column: str | None = None,
        class_column: str | None = None,
        template: str = DEFAULT_TEMPLATE,
        class_names: Sequence[str] | None = None,
    ):
        if text_column is not None and class_column is not None:
            raise ValueError("Set at most one of `text_column` (captions) and `class_column` (class labels/names).")
        if "{}" not in template:
            raise ValueError(f"`template` must contain '{{}}' where the class name goes, got {template!r}.")
        self.text_column = text_column
        self.class_column = class_column
        self.template = template
        self._class_names = tuple(class_names) if class_names is not None else None

    @property
    def class_names(self) -> tuple[str, ...]:
        if self._class_names is None:
            self._class_names = imagenet_class_names("lemmas")
        return self._class_names

    def _class_text(self, value: Any, column: str) -> str:
        if isinstance(value, str):
            return self.template.format(value)
        if isinstance(value, torch.Tensor | np.integer | np.ndarray):
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value < len(self.class_names):
                raise ValueError(f"Column {column!r} has class label {value}, outside [0, {len(self.class_names)}).")
            return self.template.format(self.class_names[value])
        raise TypeError(f"Column {column!r} must hold class labels (int) or class names (str), got {type(value)}.")

    def texts(self, prompts: Sequence[Any] | None, columns: dict[str, Any], n: int) -> list[str]:
        """The `n` texts for a batch: one per completion."""
        if self.text_column is not None or self.class_column is not None:
            column = self.text_column or self.class_column
            if columns.get(column) is None:
                raise KeyError(
                    f"The dataset has no column {column!r} (columns passed to the reward: {sorted(columns)}). Set "
                    "`text_column`/`class_column` to the column with the captions or class labels."
                )
            values = list(columns[column])
            if self.text_column is not None:
                texts = [str(v) for v in values]
            else:
                texts = [self._class_text(v, column) for v in values]
        else:
            texts = self._auto_texts(prompts, columns)
        if len(texts) != n:
            raise ValueError(f"Got {n} images but {len(texts)} texts: one text per completion is needed.")
        return texts

    def _auto_texts(self, prompts, columns) -> list[str]:
        for column in CAPTION_COLUMNS:
            if columns.get(column) is not None:
                return [str(v) for v in columns[column]]
        for column in CLASS_NAME_COLUMNS + CLASS_LABEL_COLUMNS:
            if columns.get(column) is not None:
                return [self._class_text(v, column) for v in columns[column]]
        if prompts is not None and all(isinstance(p, str) for p in prompts):
            return list(prompts)
        searched = CAPTION_COLUMNS + CLASS_NAME_COLUMNS + CLASS_LABEL_COLUMNS
        raise KeyError(
            f"No text to score the images against: none of the columns {searched} is in the dataset (columns passed: "
            f"{sorted(k for k in columns if k not in ('trainer_state', 'log_extra', 'log_metric'))}) and the prompts "
            "are not plain strings. Set `text_column=` (captions) or `class_column=` (class labels)."
        )


# --------------------------------------------------------------------------------------------------------------------
# Devices and the per-process scorer cache
# --------------------------------------------------------------------------------------------------------------------


def resolve_device(device: str | torch.device | None) -> torch.device:
    """`device`, or this process's current accelerator device (under `accelerate launch`/`torchrun`, each rank's GPU)."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        resolved = getattr(torch, dtype.removeprefix("torch."), None)
        if not isinstance(resolved, torch.dtype):
            raise ValueError(f"Unknown dtype {dtype!r}: use 'float32', 'bfloat16' or 'float16'.")
        return resolved
    return dtype


_scorers: dict[Hashable, Any] = {}
_scorers_lock = threading.Lock()


def cached_scorer(key: Hashable, build: Callable[[], Any]) -> Any:
    """The process-wide scorer for `key`, built by `build()` on first use (every rank builds its own)."""
    with _scorers_lock:
        if key not in _scorers:
            _scorers[key] = build()
        return _scorers[key]


def clear_scorer_cache() -> None:
    """Forget every cached scorer (their memory is freed when no reward holds them)."""
    with _scorers_lock:
        _scorers.clear()


# --------------------------------------------------------------------------------------------------------------------
# Reward base class
# --------------------------------------------------------------------------------------------------------------------


class ImageReward:
    """
    Base class of the image rewards: a callable with TRL's reward signature,
    `reward(prompts, completions, completion_ids=None, **columns) -> list[float | None]`, whose `completions` are the
    decoded images (a list of PIL images, `(C, H, W)` tensors or `(H, W, C)` arrays, or one `(B, C, H, W)` tensor).

    Subclasses implement `_score(images, conditioning) -> list[float | None]` on `(3, H, W)` uint8 tensors, where
    `conditioning` is what `_conditioning(prompts, columns, n)` returns (the texts, or `None`). The
    base class converts the images, remembers the last batch's scores (so that derived rewards such as
    [`StepBonus`] reuse them instead of running the scorer again), logs the batch mean of the scored images as
    `image_reward/<name>/mean` through TRL's `log_metric`, and keeps failure counts in `counters`.

    Model-backed rewards hold no model when pickled: each process loads its own copy on first use (from the cache of
    that process), so rewards can be sent to workers without sending weights.
    """

    uses_text: bool = False

    def __init__(self, name: str, value_range: tuple[float, float] = (0.0, 1.0)):
        self.__name__ = self.__qualname__ = name
        self.value_range = tuple(value_range)
        self.counters: Counter[str] = Counter()
        self._memo: tuple[Any, Any, list[float | None]] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.__name__!r})"

    def _score(self, images: list[torch.Tensor], conditioning: Any) -> list[float | None]:
        raise NotImplementedError

    def _conditioning(self, prompts, columns: dict[str, Any], n: int) -> Any:
        """What besides the images determines the scores (the texts, for text-conditioned rewards)."""
        return None

    def scores(self, prompts=None, completions=None, **columns) -> list[float | None]:
        """The raw scores of a batch, computed once per batch: a second call with the same `completions` object and
        conditioning returns the remembered scores."""
        images = as_image_list(completions)
        conditioning = self._conditioning(prompts, columns, len(images))
        memo = self._memo
        # The memo holds a reference to `completions`, so an identity match cannot be a recycled object id.
        if memo is not None and memo[0] is completions and memo[1] == conditioning:
            return list(memo[2])
        pixels = [to_uint8_image(x, self.value_range, f"completions[{i}]") for i, x in enumerate(images)]
        scores = self._score(pixels, conditioning) if pixels else []
        self._memo = (completions, conditioning, list(scores))
        return scores

    def __call__(self, prompts=None, completions=None, completion_ids=None, **kwargs) -> list[float | None]:
        scores = self.scores(prompts, completions, **kwargs)
        log_mean(kwargs, self.__name__, scores)
        return scores

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_memo"] = None
        return state


def log_mean(kwargs: dict[str, Any], name: str, scores: Sequence[float | None]) -> None:
    log_metric = kwargs.get("log_metric")
    valid = [s for s in scores if s is not None and not math.isnan(s)]
    if callable(log_metric) and valid:
        log_metric(f"image_reward/{name}/mean", float(sum(valid) / len(valid)))


__all__ = [
    "ImageReward",
    "TextSource",
    "clear_scorer_cache",
    "imagenet_class_names",
    "to_uint8_image",
    "to_uint8_images",
]
