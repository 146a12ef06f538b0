"""
The interactive agent of AesCoder: a WebVoyager-style GUI agent that labels the clickable elements of a rendered
page (set-of-marks), asks a planner for up to 5 interactions, executes them in the real page and has each graded
0/1 from before/after screenshots (at most 3 graded), under a hard time budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from .browser import _FRAMES_JS as _SETTLE_JS
from .browser import PageSession
from .judge import InteractionJudge
from .types import Action

logger = logging.getLogger(__name__)

_MARKS_JS = (Path(__file__).parent / "marks.js").read_text()
_CLEAR_MARKS_JS = "() => { const o = document.getElementById('__trl_ext_som'); if (o) o.remove(); }"
# AesCoder's GUI agent browses at 1920x1200.
AGENT_VIEWPORT = (1920, 1200)


@dataclass
class GradedInteraction:
    """One executed interaction and its grade (`None`: the grader failed)."""

    action: Action
    success: bool | None
    detail: str = ""


@dataclass
class InteractionReport:
    """
    Outcome of the interactive agent on one page.

    Args:
        score (`int`):
            Number of graded interactions that worked, 0 to `max_graded`.
        graded (`list[GradedInteraction]`):
            The interactions that were executed and graded, in order.
        skipped (`list[str]`):
            Planned actions that could not be executed (element gone, not clickable), with the reason.
        elements (`int`):
            Number of elements labelled by set-of-marks.
        error (`str`, *optional*):
            `"planner_failed"`, `"grader_failed"` (the judge failed: the score is unknown) or `"agent_timeout"`
            (the budget ran out: the score counts what was graded before).
        elapsed (`float`):
            Seconds spent.
    """

    score: int = 0
    graded: list[GradedInteraction] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    elements: int = 0
    error: str | None = None
    elapsed: float = 0.0

    @property
    def judge_failed(self) -> bool:
        return self.error in ("planner_failed", "grader_failed")


class InteractiveAgent:
    """
    Drives a page held open by [`~trl_ext.web.BrowserPool.session`] (or handed to the pool's `interact` hook).

    Args:
        judge ([`~trl_ext.web.InteractionJudge`]):
            Planner and grader (a VLM, or [`~trl_ext.web.design_judge.HeuristicInteractionJudge`] offline).
        max_actions (`int`, *optional*, defaults to `5`):
            Most interactions taken from the planner.
        max_graded (`int`, *optional*, defaults to `3`):
            Most interactions graded; the score lies in `[0, max_graded]`.
        time_budget (`float`, *optional*, defaults to `30.0`):
            Hard limit in seconds for labelling, planning, acting and grading on one page.
        viewport (`tuple[int, int]`, *optional*, defaults to `(1920, 1200)`):
            Viewport the agent browses at (AesCoder's GUI agent uses 1920x1200).
        max_marks (`int`, *optional*, defaults to `40`):
            Most elements labelled.
        action_timeout (`float`, *optional*, defaults to `3.0`):
            Seconds allowed for one click or key press to be performed (not for its effect).
        settle_ms (`int`, *optional*, defaults to `500`):
            Time given to the page to react before the after-screenshot.

    Example:

    ```python
    >>> from trl_ext.web import BrowserPool
    >>> from trl_ext.web.agent import InteractiveAgent
    >>> from trl_ext.web.design_judge import HeuristicInteractionJudge
    >>> agent = InteractiveAgent(HeuristicInteractionJudge())
    >>> page = '<!DOCTYPE html><html><head><title>t</title></head><body><button onclick="document.body.style.background=\\'red\\'">Go</button></body></html>'
    >>> with BrowserPool(size=1) as pool:
    ...     result = pool.render(page, interact=agent.run_on("Make a button that turns the page red"))
    >>> result.interaction.score
    1
    ```
    """

    def __init__(
        self,
        judge: InteractionJudge,
        max_actions: int = 5,
        max_graded: int = 3,
        time_budget: float = 30.0,
        viewport: tuple[int, int] = AGENT_VIEWPORT,
        max_marks: int = 40,
        action_timeout: float = 3.0,
        settle_ms: int = 500,
    ):
        if max_actions < 1 or max_graded < 1:
            raise ValueError(f"`max_actions` and `max_graded` must be at least 1, got {max_actions}, {max_graded}.")
        if time_budget <= 0:
            raise ValueError(f"`time_budget` must be positive, got {time_budget}.")
        self.judge = judge
        self.max_actions = max_actions
        self.max_graded = max_graded
        self.time_budget = float(time_budget)
        self.viewport = tuple(viewport)
        self.max_marks = max_marks
        self.action_timeout = float(action_timeout)
        self.settle_ms = settle_ms

    def run_on(self, instruction: str):
        """The `interact` hook for [`~trl_ext.web.BrowserPool.render`]: runs this agent on the rendered page."""

        async def interact(session: PageSession) -> InteractionReport:
            return await self.run(session, instruction)

        return interact

    async def run(self, session: PageSession, instruction: str) -> InteractionReport:
        """Label, plan, act and grade on the open page, within `time_budget` seconds."""
        report = InteractionReport()
        start = time.monotonic()
        try:
            await asyncio.wait_for(self._run(session, instruction, report), timeout=self.time_budget)
        except asyncio.TimeoutError:
            report.error = "agent_timeout"
        report.score = sum(bool(g.success) for g in report.graded)
        report.elapsed = time.monotonic() - start
        return report

    async def _run(self, session: PageSession, instruction: str, report: InteractionReport) -> None:
        page = session.page
        if tuple((page.viewport_size or {}).values()) != self.viewport:
            await page.set_viewport_size({"width": self.viewport[0], "height": self.viewport[1]})
            await page.evaluate("() => window.scrollTo(0, 0)")
            await page.evaluate(_SETTLE_JS)
        elements = await page.evaluate(_MARKS_JS, self.max_marks)
        report.elements = len(elements)
        marked = await session.screenshot()
        await page.evaluate(_CLEAR_MARKS_JS)
        actions = await self.judge.plan_interactions(instruction, marked, elements, self.max_actions)
        if actions is None:
            report.error = "planner_failed"
            return
        known_marks = {e["mark"] for e in elements}
        # The pointer rests in a corner for every screenshot, so a hover style is not mistaken for a reaction; the
        # after-screenshot of one action is the before-screenshot of the next.
        await page.mouse.move(0, 0)
        before = None
        for action in actions[: self.max_actions]:
            if action.kind == "finish" or len(report.graded) >= self.max_graded:
                break
            if action.kind in ("click", "type") and action.mark not in known_marks:
                report.skipped.append(f"{action.kind} on unknown mark {action.mark}")
                continue
            if before is None:
                before = await session.screenshot()
            try:
                await self._perform(page, action)
            except Exception as error:  # the element moved, vanished or is covered: not gradable
                report.skipped.append(f"{action.kind} {action.mark}: {str(error).splitlines()[0][:200]}")
                await page.mouse.move(0, 0)
                before = None  # a half-done action may have changed the page
                continue
            await page.mouse.move(0, 0)
            await page.wait_for_timeout(self.settle_ms)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(page.evaluate(_SETTLE_JS), 2)
            after = await session.screenshot()
            success = await self.judge.grade_interaction(instruction, action, before, after)
            if success is None:
                report.error = "grader_failed"
                return
            report.graded.append(GradedInteraction(action, bool(success)))
            before = after

    async def _perform(self, page, action: Action) -> None:
        timeout_ms = self.action_timeout * 1000
        if action.kind == "wait":
            await page.wait_for_timeout(min(max(action.seconds, 0.0), 5.0) * 1000)
            return
        if action.kind == "key":
            await page.keyboard.press(action.key or "Enter")
            return
        handle = await page.evaluate_handle("mark => (window.__trlMarks || [])[mark] || null", action.mark)
        element = handle.as_element()
        if element is None:
            raise RuntimeError("element no longer in the page")
        if action.kind == "click":
            await element.click(timeout=timeout_ms)
        elif action.kind == "type":
            await element.click(timeout=timeout_ms)
            await page.keyboard.type(action.text or "", delay=0)
            await page.keyboard.press("Enter")
        else:
            raise ValueError(f"unknown action kind {action.kind!r}")


__all__ = ["AGENT_VIEWPORT", "GradedInteraction", "InteractionReport", "InteractiveAgent"]
