"""Reward functions under the names a config gives them (TRL logs each reward as `rewards/<__name__>/mean`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trl.trainer.utils import is_async_callable  # TRL's own rule for which rewards it awaits


class NamedReward:
    """
    `func` under the name `name`: TRL logs and reports it as `name`; everything else (the call, attributes such as
    `required_columns`, `state_dict` for resume) is `func`'s.
    """

    def __init__(self, func: Callable[..., Any], name: str):
        if not isinstance(name, str) or not name:
            raise ValueError(f"A reward name must be a non-empty string, got {name!r}.")
        self.__wrapped__ = func
        self.__name__ = self.__qualname__ = name

    def __call__(self, *args, **kwargs):
        return self.__wrapped__(*args, **kwargs)

    def __getattr__(self, attribute: str):
        if attribute == "__wrapped__":  # not set yet (e.g. while unpickling)
            raise AttributeError(attribute)
        return getattr(self.__wrapped__, attribute)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.__name__!r}, {self.__wrapped__!r})"


class AsyncNamedReward(NamedReward):
    """[`NamedReward`] of an async reward (TRL awaits it alongside the other async rewards)."""

    async def __call__(self, *args, **kwargs):
        return await self.__wrapped__(*args, **kwargs)


def named_reward(func: Callable[..., Any], name: str) -> Callable[..., Any]:
    """
    `func` logged by TRL under `name` (sync or async alike); `func` itself is left untouched, so one reward can serve
    under several names.

    Example:

    ```python
    >>> from trl_ext.rewards import named_reward
    >>> def lowercase_fraction_reward(completions, **kwargs):
    ...     return [sum(c.islower() for c in text) / max(len(text), 1) for text in completions]
    >>> reward = named_reward(lowercase_fraction_reward, "lowercase_fraction")
    >>> reward.__name__, reward(completions=["abC"])
    ('lowercase_fraction', [0.6666666666666666])
    ```
    """
    return (AsyncNamedReward if is_async_callable(func) else NamedReward)(func, name)


__all__ = ["AsyncNamedReward", "NamedReward", "named_reward"]
