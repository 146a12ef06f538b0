"""The judge interfaces of the aesthetic agents: a page scorer (static agent) and a planner/grader (interactive agent)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from .types import Action, PageScore, RenderResult


class PageJudge(ABC):
    """Scores a rendered page against its instruction with AesCoder's static rubric."""

    name: str = "page_judge"

    @abstractmethod
    async def score_page(self, instruction: str, render: RenderResult) -> PageScore | None:
        """
        Args:
            instruction (`str`):
                What the user asked for (the prompt of the completion).
            render ([`RenderResult`]):
                The rendered page (screenshot and DOM metrics).

        Returns:
            [`PageScore`] or `None` when the judge itself failed (the sample is then excluded, not zeroed).
        """

    async def aclose(self) -> None:  # noqa: B027 (optional hook)
        """Release clients and models."""


class InteractionJudge(ABC):
    """Plans GUI interactions on a page labelled with set-of-marks and grades each one from before/after screenshots."""

    name: str = "interaction_judge"

    @abstractmethod
    async def plan_interactions(
        self, instruction: str, screenshot: bytes, elements: list[dict[str, Any]], max_actions: int = 5
    ) -> list[Action] | None:
        """
        Args:
            instruction (`str`):
                What the user asked for.
            screenshot (`bytes`):
                PNG of the viewport with numbered boxes drawn over the clickable elements.
            elements (`list[dict]`):
                One dict per labelled element: `mark` (`int`), `tag`, `text`, `role`, `type` (input type or `""`)
                and `box` (`[x, y, width, height]` in CSS pixels).
            max_actions (`int`, *optional*, defaults to `5`):
                Most actions to return.

        Returns:
            The actions to try, in order, or `None` when the judge failed.
        """

    @abstractmethod
    async def grade_interaction(self, instruction: str, action: Action, before: bytes, after: bytes) -> bool | None:
        """Whether `action` worked as the page should (`True`/`False`), or `None` when the judge failed."""

    async def aclose(self) -> None:  # noqa: B027 (optional hook)
        """Release clients and models."""
