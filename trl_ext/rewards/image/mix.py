"""
Reward composition: AR-GRPO's quantised step bonus as a wrapper, and [`RewardMix`], which builds a weighted mix of
image rewards from a plain dict (or YAML), reproducing AR-GRPO's class-to-image and text-to-image mixes.

AR-GRPO trains on eight rewards summed with weight 1 each (its `run_c2i_train.sh` / `run_t2i_train.sh`): CLIP
cosine x5, the CLIP step bonus, HPSv2.1 x5, the HPS step bonus, MANIQA x2, and three VLM answers /4 each.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import inspect
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..naming import named_reward
from ._base import ImageReward, log_mean

# AR-GRPO's `discrete_reward_map(score, [0, 0.3, 0.6, 1], [-1, 0.5, 1, 1.5])`: below 0 -> -1, [0, 0.3) -> 0.5,
# [0.3, 0.6) -> 1, [0.6, 1) -> 1.5. Its lookup fails for a score of exactly 1 (the list has no fifth value); the
# last step simply continues here.
AR_GRPO_STEP_THRESHOLDS = (0.0, 0.3, 0.6)
AR_GRPO_STEP_VALUES = (-1.0, 0.5, 1.0, 1.5)


def step_bonus(
    value: float, thresholds: Sequence[float] = AR_GRPO_STEP_THRESHOLDS, values: Sequence[float] = AR_GRPO_STEP_VALUES
) -> float:
    """
    Quantise `value`: `values[0]` below `thresholds[0]`, `values[i]` in `[thresholds[i-1], thresholds[i])`, and
    `values[-1]` from the last threshold on. `len(values) == len(thresholds) + 1`; thresholds strictly increase.
    """
    return float(values[bisect.bisect_right(thresholds, value)])


def _check_steps(thresholds: Sequence[float], values: Sequence[float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    thresholds, values = tuple(float(t) for t in thresholds), tuple(float(v) for v in values)
    if not thresholds or any(b <= a for a, b in zip(thresholds, thresholds[1:])):
        raise ValueError(f"`thresholds` must be non-empty and strictly increasing, got {thresholds}.")
    if len(values) != len(thresholds) + 1:
        raise ValueError(f"`values` needs len(thresholds) + 1 = {len(thresholds) + 1} entries, got {len(values)}.")
    return thresholds, values


class StepBonus(ImageReward):
    """
    AR-GRPO's quantised step bonus on top of another image reward: the wrapped reward's score mapped through
    [`step_bonus`]. It reuses the wrapped reward's scores of the same batch (the scorer runs once for both), so
    `reward_funcs=[clip, StepBonus(clip)]` costs one CLIP pass, not two. `None` scores stay `None`.

    Args:
        reward ([`ImageReward`]):
            The reward to quantise.
        thresholds (`Sequence[float]`, *optional*, defaults to `(0.0, 0.3, 0.6)`):
            Step boundaries.
        values (`Sequence[float]`, *optional*, defaults to `(-1.0, 0.5, 1.0, 1.5)`):
            Value of each step, one more than `thresholds`.
        name (`str`, *optional*):
            Defaults to `"<reward name>_step"`.

    Example:

    ```python
    >>> from trl_ext.rewards.image import ColourStatisticReward
    >>> bonus = StepBonus(ColourStatisticReward("saturation"), thresholds=[0.5], values=[0.0, 1.0])
    >>> bonus.__name__
    'saturation_step'
    ```
    """

    def __init__(
        self,
        reward: ImageReward,
        thresholds: Sequence[float] = AR_GRPO_STEP_THRESHOLDS,
        values: Sequence[float] = AR_GRPO_STEP_VALUES,
        name: str | None = None,
    ):
        if not isinstance(reward, ImageReward):
            raise TypeError(f"StepBonus wraps an image reward (an ImageReward), got {type(reward).__name__}.")
        super().__init__(name or f"{reward.__name__}_step", reward.value_range)
        self.reward = reward
        self.thresholds, self.values = _check_steps(thresholds, values)

    @property
    def uses_text(self) -> bool:
        return self.reward.uses_text

    def scores(self, prompts=None, completions=None, **columns) -> list[float | None]:
        raw = self.reward.scores(prompts, completions, **columns)
        return [None if s is None else step_bonus(s, self.thresholds, self.values) for s in raw]


def _default_factories() -> dict[str, Callable[..., Any]]:
    from .clip import make_clip_score_reward, make_hps_v2_reward, make_laion_aesthetic_reward, make_pick_score_reward
    from .maniqa import make_maniqa_reward
    from .vlm import VLMRealismReward
    from .weight_free import ColourStatisticReward, JpegCompressibilityReward

    return {
        "clip_score": make_clip_score_reward,
        "hps_v2": make_hps_v2_reward,
        "pick_score": make_pick_score_reward,
        "laion_aesthetic": make_laion_aesthetic_reward,
        "maniqa": make_maniqa_reward,
        "vlm_realism": VLMRealismReward,
        "jpeg_compressibility": JpegCompressibilityReward,
        "jpeg_incompressibility": functools.partial(JpegCompressibilityReward, incompressible=True),
        "saturation": functools.partial(ColourStatisticReward, "saturation"),
        "colourfulness": functools.partial(ColourStatisticReward, "colourfulness"),
    }


@dataclass
class MixTerm:
    """One term of a [`RewardMix`]: a TRL reward callable and its weight."""

    name: str
    reward: Callable[..., Any]
    weight: float


def _accepted(factory: Callable[..., Any], options: Mapping[str, Any]) -> dict[str, Any]:
    parameters = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return dict(options)
    return {key: value for key, value in options.items() if key in parameters}


class RewardMix:
    """
    A weighted mix of image rewards, configured by name.

    `mix` maps each term's name to its weight, or to a dict with `weight` (default 1), `reward` (the reward it
    uses, default: the term's name) and `step_bonus` (`true` for AR-GRPO's [`StepBonus`], or
    `{"thresholds": [...], "values": [...]}`). The rewards are built once each and shared by the terms that use them:
    from `rewards[name]` when it is a reward object, else by the reward's factory (`make_clip_score_reward`, ...)
    called with `rewards[name]` as keyword arguments (when it is a dict) plus the `common` options it accepts
    (`device`, `dtype`, `text_column`, ...).

    Use it with TRL either as separate rewards, which TRL logs one by one and runs concurrently when async
    (`GRPOTrainer(reward_funcs=mix.reward_funcs, args=GRPOConfig(reward_weights=mix.reward_weights, ...))`), or as
    one reward (`reward_funcs=[mix]`) returning the weighted sum, where `None` terms are skipped like TRL does (a
    sample is `None` only when every term is).

    Args:
        mix (`Mapping[str, float | Mapping]`):
            Term name -> weight or term settings.
        rewards (`Mapping[str, Callable | Mapping]`, *optional*):
            Reward name -> a built reward, or factory options.
        common (`Mapping[str, Any]`, *optional*):
            Options given to every factory that takes them.
        name (`str`, *optional*, defaults to `"reward_mix"`):
            `__name__` of the mix as a single reward.

    Example:

    ```python
    >>> mix = RewardMix({"saturation": 1.0, "saturation_step": {"reward": "saturation", "step_bonus": True}})
    >>> [term.name for term in mix.terms], mix.reward_weights
    (['saturation', 'saturation_step'], [1.0, 1.0])
    ```
    """

    def __init__(
        self,
        mix: Mapping[str, float | Mapping[str, Any]],
        rewards: Mapping[str, Callable[..., Any] | Mapping[str, Any]] | None = None,
        common: Mapping[str, Any] | None = None,
        name: str = "reward_mix",
    ):
        if not mix:
            raise ValueError("`mix` must name at least one reward term.")
        self.__name__ = self.__qualname__ = name
        rewards = dict(rewards or {})
        common = dict(common or {})
        factories = _default_factories()
        built: dict[str, Callable[..., Any]] = {}

        def resolve(reward_name: str, term: str) -> Callable[..., Any]:
            if reward_name in built:
                return built[reward_name]
            spec = rewards.get(reward_name, {})
            if callable(spec):
                built[reward_name] = spec
                return spec
            if not isinstance(spec, Mapping):
                raise TypeError(f"rewards[{reward_name!r}] must be a reward callable or a dict of factory options.")
            if reward_name not in factories:
                raise KeyError(
                    f"Term {term!r} uses unknown reward {reward_name!r}. Known rewards: {sorted(factories)}; pass "
                    f"others as objects through `rewards={{{reward_name!r}: my_reward}}`."
                )
            factory = factories[reward_name]
            options = {**_accepted(factory, common), **spec}
            options.setdefault("name", reward_name)
            built[reward_name] = factory(**options)
            return built[reward_name]

        self.terms: list[MixTerm] = []
        for term, setting in mix.items():
            if isinstance(setting, bool) or not isinstance(setting, int | float | Mapping):
                raise TypeError(f"mix[{term!r}] must be a weight or a dict of term settings, got {setting!r}.")
            setting = {"weight": setting} if not isinstance(setting, Mapping) else dict(setting)
            unknown = sorted(set(setting) - {"weight", "reward", "step_bonus"})
            if unknown:
                raise ValueError(f"mix[{term!r}] has unknown keys {unknown} (allowed: weight, reward, step_bonus).")
            weight = setting.get("weight", 1.0)
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
                raise ValueError(f"mix[{term!r}]['weight'] must be a finite number, got {weight!r}.")
            reward = resolve(setting.get("reward", term), term)
            bonus = setting.get("step_bonus", False)
            if bonus:
                steps = {} if bonus is True else dict(bonus)
                reward = StepBonus(reward, name=term, **steps)
            self.terms.append(MixTerm(term, reward, float(weight)))
        names = [t.reward.__name__ for t in self.terms]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"Several terms log under the same reward name {duplicates}: give them distinct names.")

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | str | os.PathLike, **overrides: Any) -> RewardMix:
        """
        Build from a dict or a YAML file/string with keys `mix` (required), `rewards`, `common` and `name`;
        `overrides` replace those keys (`common` and `rewards` are merged).
        """
        if isinstance(config, str | os.PathLike):
            import yaml

            text = config
            if os.path.isfile(config):
                with open(config) as handle:
                    text = handle.read()
            config = yaml.safe_load(text)
        if not isinstance(config, Mapping) or "mix" not in config:
            raise ValueError("A reward-mix config is a mapping with a `mix` key (term -> weight or settings).")
        unknown = sorted(set(config) - {"mix", "rewards", "common", "name"})
        if unknown:
            raise ValueError(f"Unknown reward-mix config keys {unknown} (allowed: mix, rewards, common, name).")
        settings = dict(config)
        for key in ("rewards", "common"):
            if key in overrides:
                settings[key] = {**(settings.get(key) or {}), **overrides.pop(key)}
        settings.update(overrides)
        return cls(**settings)

    @classmethod
    def ar_grpo(cls, task: str = "c2i", **overrides: Any) -> RewardMix:
        """AR-GRPO's reward mix for `task` `"c2i"` ([`AR_GRPO_C2I_MIX`]) or `"t2i"` ([`AR_GRPO_T2I_MIX`])."""
        configs = {"c2i": AR_GRPO_C2I_MIX, "t2i": AR_GRPO_T2I_MIX}
        if task not in configs:
            raise ValueError(f"`task` must be 'c2i' or 't2i', got {task!r}.")
        return cls.from_config(configs[task], **overrides)

    @property
    def reward_funcs(self) -> list[Callable[..., Any]]:
        """The terms' rewards, for `GRPOTrainer(reward_funcs=...)`."""
        return [term.reward for term in self.terms]

    @property
    def reward_weights(self) -> list[float]:
        """The terms' weights, for `GRPOConfig(reward_weights=...)`."""
        return [term.weight for term in self.terms]

    def __repr__(self) -> str:
        terms = ", ".join(f"{t.name}={t.weight:g}" for t in self.terms)
        return f"RewardMix({terms})"

    def __call__(self, prompts=None, completions=None, completion_ids=None, **kwargs) -> list[float | None]:
        total: list[float | None] = []
        for term in self.terms:
            output = term.reward(prompts=prompts, completions=completions, completion_ids=completion_ids, **kwargs)
            if inspect.isawaitable(output):
                output = asyncio.run(output)
            if not total:
                total = [None] * len(output)
            for index, value in enumerate(output):
                if value is not None and not math.isnan(value):
                    total[index] = (total[index] or 0.0) + term.weight * value
        log_mean(kwargs, self.__name__, total)
        return total


# AR-GRPO's mixes (weights from its reward functions, which each scale their score: CLIP and HPS x5, MANIQA x2,
# the VLM answers /4). The VLM judge needs a server: set `rewards={"vlm_realism": {"base_url": ...}}` (or a model
# to load in-process) when building.
_AR_GRPO_TERMS = {
    "clip_score": 5.0,
    "clip_score_step": {"reward": "clip_score", "step_bonus": True},
    "hps_v2": 5.0,
    "hps_v2_step": {"reward": "hps_v2", "step_bonus": True},
    "maniqa": 2.0,
    "vlm_realism": 1.0,
}
AR_GRPO_C2I_MIX: dict[str, Any] = {
    "mix": _AR_GRPO_TERMS,
    "rewards": {"clip_score": {"model": "openai/clip-vit-base-patch32"}},
    # "a photo of {class}" with the ImageNet lemma names, from the class label column.
    "common": {"class_column": "class_label"},
}
AR_GRPO_T2I_MIX: dict[str, Any] = {
    "mix": _AR_GRPO_TERMS,
    "rewards": {"clip_score": {"model": "openai/clip-vit-base-patch32"}},
    # Captions: the first present of `caption` and `text`, else the prompts.
    "common": {},
}

RECIPE_MIXES = {"ar_grpo_c2i": "c2i", "ar_grpo_t2i": "t2i"}


def load_reward_mix(reward_mix: str, option: str = "reward_mix") -> RewardMix:
    """A [`RewardMix`] by recipe name (`"ar_grpo_c2i"`, `"ar_grpo_t2i"`) or from a mix YAML file (see
    [`RewardMix.from_config`]); anything else raises a `ValueError` that names `option`."""
    if reward_mix in RECIPE_MIXES:
        return RewardMix.ar_grpo(RECIPE_MIXES[reward_mix])
    if os.path.isfile(reward_mix):
        return RewardMix.from_config(reward_mix)
    raise ValueError(f"`{option}` must be one of {sorted(RECIPE_MIXES)} or a mix YAML file, got {reward_mix!r}.")


def recipe_reward_funcs(
    reward_funcs: list[str] | None,
    reward_mix: str | None,
    available: Mapping[str, Callable[..., Any]],
    training_args=None,
    default: tuple[str, ...] = ("jpeg_incompressibility",),
) -> list[Callable[..., Any]]:
    """
    The rewards an image recipe trains with: `reward_mix` (`"ar_grpo_c2i"`, `"ar_grpo_t2i"` or a mix YAML file, see
    [`RewardMix.from_config`]) or `reward_funcs` (names in `available`), not both. With a mix, `training_args`'
    `reward_weights` become the mix's weights unless set.
    """
    if reward_mix and reward_funcs:
        raise ValueError("Set `reward_mix` or `reward_funcs`, not both: the mix names its own rewards and weights.")
    if reward_mix:
        mix = load_reward_mix(reward_mix)
        if training_args is not None:
            if training_args.reward_weights is None:
                training_args.reward_weights = mix.reward_weights
            elif len(training_args.reward_weights) != len(mix.reward_funcs):
                raise ValueError(
                    f"`reward_weights` has {len(training_args.reward_weights)} values but the mix {reward_mix!r} has "
                    f"{len(mix.reward_funcs)} terms ({[t.name for t in mix.terms]}); drop `reward_weights` to use the "
                    "mix's own."
                )
        return mix.reward_funcs
    names = list(reward_funcs or default)
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ValueError(
            f"Unknown `reward_funcs` {unknown}; available: {sorted(available)}. For AR-GRPO's paper mix use "
            f"`reward_mix: {sorted(RECIPE_MIXES)[0]}` (or a mix YAML)."
        )
    return [named_reward(available[name], name) for name in names]  # logged under the names the config uses


__all__ = [
    "RECIPE_MIXES",
    "load_reward_mix",
    "recipe_reward_funcs",
    "AR_GRPO_C2I_MIX",
    "AR_GRPO_STEP_THRESHOLDS",
    "AR_GRPO_STEP_VALUES",
    "AR_GRPO_T2I_MIX",
    "MixTerm",
    "RewardMix",
    "StepBonus",
    "step_bonus",
]
