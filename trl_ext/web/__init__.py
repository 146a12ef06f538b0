"""Rendering and judging generated web pages: the browser pool, the linter, the judges and the interactive agent."""

from .browser import BrowserCrashedError, BrowserPool, PageSession, chromium_available, find_chromium
from .judge import InteractionJudge, PageJudge
from .types import Action, PageScore, RenderResult

__all__ = [
    "Action",
    "BrowserCrashedError",
    "BrowserPool",
    "InteractionJudge",
    "PageJudge",
    "PageScore",
    "PageSession",
    "RenderResult",
    "chromium_available",
    "find_chromium",
]
