"""Data types shared by the renderer, the judges and the interactive agent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

# Viewport of the static aesthetics agent (AesCoder renders at 1280x960).
DEFAULT_VIEWPORT = (1280, 960)

ActionKind = Literal["click", "type", "wait", "key", "finish"]


@dataclass
class RenderResult:
    """
    One page rendered in the browser.

    Args:
        ok (`bool`):
            Whether the page loaded and a screenshot was taken.
        screenshot (`bytes`, *optional*):
            Full-page PNG at the main viewport (`None` when rendering failed).
        console_errors (`list[str]`):
            Uncaught JavaScript exceptions and `console.error` messages seen while the page loaded.
        failed_requests (`list[str]`):
            Resources that failed to load (network error or HTTP status >= 400), as `"<url> (<reason>)"`.
        blocked_requests (`list[str]`):
            External URLs the closed network refused (not vendored): not the page's fault offline, so kept apart.
        metrics (`dict[str, Any]`):
            Measurements of the rendered DOM used by the offline design judge (contrast, overflow, overlap, ...).
        interaction (`Any`, *optional*):
            What the `interact` hook of the render returned (e.g. an interactive agent's report).
        error (`str`, *optional*):
            Why rendering failed, if it did (e.g. `"timeout"`, `"browser_crashed"`).
        elapsed (`float`):
            Seconds spent rendering.
    """

    ok: bool
    screenshot: bytes | None = None
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    blocked_requests: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    interaction: Any = None
    error: str | None = None
    elapsed: float = 0.0


@dataclass
class PageScore:
    """
    AesCoder's static rubric: instruction alignment (0-40), aesthetics and readability (0-30) and structural
    integrity (0-30), out of 100 in total.
    """

    alignment: float
    aesthetics: float
    structure: float
    rationale: str = ""

    @property
    def total(self) -> float:
        return self.alignment + self.aesthetics + self.structure


@dataclass
class Action:
    """
    One GUI interaction proposed by the planner of the interactive agent.

    Args:
        kind (`str`):
            `"click"` (the element with set-of-marks label `mark`), `"type"` (`text` into element `mark`, then
            Enter), `"wait"` (`seconds`), `"key"` (press `key`, e.g. `"ArrowUp"`, on the page: games) or `"finish"`.
        mark (`int`, *optional*):
            Set-of-marks label of the target element, for `click` and `type`.
        text (`str`, *optional*):
            Text typed by a `type` action.
        key (`str`, *optional*):
            Key name for a `key` action, in Playwright's spelling (`"ArrowLeft"`, `"Space"`, `"Enter"`...).
        seconds (`float`, *optional*, defaults to `1.0`):
            Duration of a `wait` action.
        expectation (`str`, *optional*, defaults to `""`):
            What the planner expects to happen; the grader checks the after-screenshot against it.
    """

    kind: ActionKind
    mark: int | None = None
    text: str | None = None
    key: str | None = None
    seconds: float = 1.0
    expectation: str = ""
