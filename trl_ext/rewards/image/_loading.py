"""Model-backed image rewards: lazy per-process loading, device placement, batching, and pickling without weights."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import torch

from ._base import ImageReward, TextSource, cached_scorer, resolve_device, resolve_dtype


def resolve_file(path: str | os.PathLike, repo_id: str | None, revision: str | None = None) -> str:
    """
    A local file: `path` itself when it exists, else `path` as a file name in the Hub repository `repo_id`
    (downloaded once into the Hugging Face cache by `huggingface_hub.hf_hub_download`).
    """
    path = os.fspath(path)
    if os.path.isfile(path):
        return path
    if repo_id is None:
        raise FileNotFoundError(f"No file at {path!r}, and no Hub repository to download it from.")
    from huggingface_hub import hf_hub_download

    try:
        return hf_hub_download(repo_id, path, revision=revision)
    except Exception as error:  # offline, gated, missing: all end the same way for the user
        raise OSError(
            f"{path!r} is not a local file and could not be fetched from the Hub repository {repo_id!r} ({error}). "
            "Download it where the Hub is reachable and pass its local path."
        ) from error


def load_state_dict(path: str, key: str | None = None, weights_only: bool = True) -> dict[str, torch.Tensor]:
    """A state dict from a `.safetensors` file or a torch checkpoint, optionally nested under `key`."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        state_dict = load_file(path)
    else:
        state_dict = torch.load(path, map_location="cpu", weights_only=weights_only)
    if key is not None:
        if not isinstance(state_dict, dict) or key not in state_dict:
            found = sorted(state_dict)[:10] if isinstance(state_dict, dict) else type(state_dict).__name__
            raise KeyError(f"Checkpoint {path!r} has no {key!r} entry (found: {found}).")
        state_dict = state_dict[key]
    # Checkpoints saved from DataParallel/DDP-wrapped models prefix every key.
    if state_dict and all(k.startswith("module.") for k in state_dict):
        state_dict = {k.removeprefix("module."): v for k, v in state_dict.items()}
    return state_dict


def _loader_key(loader: functools.partial) -> str:
    function = loader.func
    return repr((function.__module__, function.__qualname__, loader.args, sorted(loader.keywords.items())))


class ModelImageReward(ImageReward):
    """
    An [`ImageReward`] backed by a scorer model.

    The scorer is either described by `loader` (a `functools.partial` of a module-level loading function with
    plain arguments: names, paths, options), or given as an object. A described scorer is built on first use, once
    per process and device/dtype (rewards that describe the same scorer share it), and is never pickled: a pickled
    reward carries the description only. A given object is used as it is and cannot be pickled.

    Scorers are callables `scorer(images, texts, batch_size) -> torch.Tensor` (texts is `None` for unconditional
    scorers) with a `to(device, dtype)` method; they run under `torch.no_grad()` in chunks of `batch_size`.

    Args:
        name (`str`):
            `__name__` of the reward (TRL logs the reward under it).
        loader (`functools.partial`, *optional*):
            Builds the scorer.
        scorer (*optional*):
            An already-built scorer.
        text_source ([`TextSource`], *optional*):
            Where the texts come from, for text-conditioned scorers.
        device (`str` or `torch.device`, *optional*):
            Where the scorer runs. Defaults to the process's current CUDA device, else CPU, resolved at first use.
        dtype (`str` or `torch.dtype`, *optional*, defaults to `torch.float32`):
            Scorer dtype (`torch.bfloat16` to match a bf16 trainer and save memory).
        batch_size (`int`, *optional*, defaults to `32`):
            Images per forward pass.
        value_range (`tuple[float, float]`, *optional*, defaults to `(0.0, 1.0)`):
            Range of floating-point image tensors, see [`to_uint8_image`].
    """

    def __init__(
        self,
        name: str,
        loader: functools.partial | None = None,
        scorer: Any = None,
        text_source: TextSource | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        batch_size: int = 32,
        value_range: tuple[float, float] = (0.0, 1.0),
    ):
        super().__init__(name, value_range)
        if (loader is None) == (scorer is None):
            raise ValueError("Pass exactly one of `loader` (how to build the scorer) and `scorer` (a built one).")
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be positive, got {batch_size}.")
        self._loader = loader
        self._scorer = scorer
        self._placed = False
        self.text_source = text_source
        self.device = device
        self.dtype = resolve_dtype(dtype)
        self.batch_size = batch_size

    @property
    def uses_text(self) -> bool:
        return self.text_source is not None

    @property
    def scorer(self) -> Any:
        """The scorer, loaded (or taken from this process's cache) and moved to the reward's device on first use."""
        if not self._placed:
            device = resolve_device(self.device)
            if self._loader is not None:
                loader, dtype = self._loader, self.dtype
                key = (_loader_key(loader), str(device), str(dtype))
                self._scorer = cached_scorer(key, lambda: loader().to(device, dtype))
            else:
                self._scorer.to(device, self.dtype)
            self._placed = True
        return self._scorer

    def to(self, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None) -> ModelImageReward:
        """Run the scorer on `device` (and in `dtype`) from the next call on; returns the reward itself."""
        if device is not None:
            self.device = device
        if dtype is not None:
            self.dtype = resolve_dtype(dtype)
        self._placed = False
        if self._loader is not None:
            self._scorer = None
        self._memo = None
        return self

    def _conditioning(self, prompts, columns, n):
        return tuple(self.text_source.texts(prompts, columns, n)) if self.text_source is not None else None

    def _score(self, images: list[torch.Tensor], conditioning: tuple[str, ...] | None) -> list[float]:
        scores = self.scorer(images, None if conditioning is None else list(conditioning), self.batch_size)
        return [float(s) for s in scores.float().cpu()]

    def __getstate__(self) -> dict[str, Any]:
        if self._loader is None:
            raise TypeError(
                f"{self.__name__} was built around an in-memory model, which is not sent between processes. Build it "
                "from a name or path instead, so that each process loads its own copy."
            )
        state = super().__getstate__()
        state["_scorer"] = None
        state["_placed"] = False
        return state


def chunked(items: Sequence[Any], size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]
