"""
Offline, model-free judges: measurable design qualities of a rendered page (static agent) and a pixel-difference
grader for GUI interactions (interactive agent).

They need no endpoint and no weights, so they run in tests, in the tiny demo, and as a cheap pre-filter in front of
a VLM judge. They measure what can be measured, not taste: contrast, readability, palette size, whitespace balance,
alignment, overflow, overlap, responsiveness, errors. Scores use AesCoder's rubric ranges so that they can stand in
for the VLM judge.

What the design judge rewards is what the author made, measured against what the browser does on its own:

- **the author's styling.** An unstyled document is drawn in the browser's initial look: its default typeface
  (monospace for code), black text, blue links, lines as wide as the window. `measure.js` finds the browser's
  initial typeface and colour at run time (an element with `all: initial`) and counts the text still drawn in them;
  the aesthetics score is scaled by the styled share (`0.4 + 0.6 x styled`), and line length (30 to 110 characters)
  and line spacing are scored for running text. A document stripped of its style sheets loses most of its
  aesthetics; no list of fonts or colours is involved.
- **structure of a page of text.** A page of 300 characters or more needs headings and paragraphs (a text block per
  800 characters) to keep its structure score (`0.5 + 0.5 x organised`); widgets, games and charts with little text
  need neither.
- **content of its own.** Words beyond the instruction's, not repeated (compression), in a natural language (the
  vowel share of the letters, the function-word share of the words: random letters and random words fail), or media:
  images, SVG, canvas, or a drawing (three painted boxes in three fills, like the faces of a CSS cube). Text nobody
  can read (off the page, under 9 px, below 2:1 contrast) does not count.
"""

from __future__ import annotations

import io
import re
import zlib
from typing import Any

import numpy as np
from PIL import Image

from .judge import InteractionJudge, PageJudge
from .types import Action, PageScore, RenderResult

_WORD = re.compile(r"[a-z][a-z0-9\-]{3,}")
_STOPWORDS = frozenset(
    """
    about above after again also because been before being below between both build could create design does
    doing down during each every from further have having here into just like make more most much must need only
    other over page same should show some such than that their them then there these they this those through under
    until using very want were what when where which while with would your website webpage please include includes
    including simple modern clean nice beautiful using html code single file section sections style styled
    """.split()
)
# The commonest English function words: a fifth to two fifths of the words of English prose.
_FUNCTION_WORDS = frozenset(
    """
    the of and to a in is it that for on with as was be by this are or from at an not but have has had which can
    you your we our its their they he she his her will if all one more also into than other when there these so
    would been were do does no out up about who what how then them may must should such each only any some
    """.split()
)
_GAME_WORDS = ("game", "snake", "tetris", "pong", "maze", "arcade", "player", "puzzle", "2048", "breakout")


def instruction_keywords(instruction: str) -> set[str]:
    """Content words of an instruction (lower-case, 4+ letters, stop-words removed)."""
    return {word for word in _WORD.findall(instruction.lower()) if word not in _STOPWORDS}


def text_substance(text: str, instruction: str, words: int = 12) -> float:
    """
    How much real content `text` holds beyond the instruction, in [0, 1]: its distinct content words that the
    instruction does not contain (an echo of the prompt has none), `words` of them for full marks, times its variety
    (how well it compresses: a sentence repeated 300 times compresses to almost nothing) and its naturalness (random
    letters or words are not prose: see [`text_naturalness`]).
    """
    novel = instruction_keywords(text) - instruction_keywords(instruction)
    return min(1.0, len(novel) / words) * text_variety(text) * text_naturalness(text)


def text_naturalness(text: str, min_letters: int = 200, min_words: int = 150) -> float:
    """
    1 for prose in a natural language, falling to 0 for random letters or random words. Two measures:

    - the share of vowels (a, e, i, o, u) among its Latin letters: 0.35 to 0.5 in English, French, German or Spanish
      prose, 0.19 in letters drawn at random (5 of 26); not judged under `min_letters` letters (short labels, other
      scripts);
    - the share of its words that are English function words (the, of, and, to, ...): 0.2 to 0.4 in English prose
      and documentation, a few percent in words drawn at random from a vocabulary (which halve the score); not
      judged under `min_words` words (labels, a game's score line). English-centric, like the instruction keywords:
      a long page in another language counts as half natural.
    """
    lowered = text.lower()
    letters = [ch for ch in lowered if "a" <= ch <= "z"]
    score = 1.0
    if len(letters) >= min_letters:
        vowels = sum(ch in "aeiou" for ch in letters) / len(letters)
        score *= _band(vowels, 0.28, 0.55, 0.08)
    words = re.findall(r"[a-z]+", lowered)
    if len(words) >= min_words:
        share = sum(word in _FUNCTION_WORDS for word in words) / len(words)
        score *= max(0.5, _band(share, 0.12, 1.0, 0.1))
    return score


def text_variety(text: str) -> float:
    """1 for ordinary prose, falling to 0 for text that repeats itself (zlib compression ratio below 0.15)."""
    raw = text.encode("utf-8", "replace")[:20000]
    if len(raw) < 400:
        return 1.0  # too short to judge by compression
    ratio = len(zlib.compress(raw, 6)) / len(raw)
    return _band(ratio, 0.3, 1.0, 0.2)


def screenshot_statistics(png: bytes, width: int = 320) -> dict[str, float]:
    """
    Pixel statistics of a screenshot, downscaled to `width` columns.

    Returns:
        `dict` with `colors` (number of 3-bit-per-channel colour bins covering at least 0.5% of the pixels),
        `content_fraction` (fraction of 8x8 tiles with visible detail, i.e. not flat background) and `blank`
        (`1.0` when the image is a single flat colour).
    """
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if image.width > width:
        image = image.resize((width, max(1, round(image.height * width / image.width))), Image.BILINEAR)
    pixels = np.asarray(image, dtype=np.int16)
    bins = (pixels[..., 0] >> 5) * 64 + (pixels[..., 1] >> 5) * 8 + (pixels[..., 2] >> 5)
    counts = np.bincount(bins.ravel(), minlength=512)
    colors = int((counts >= 0.005 * bins.size).sum())
    h, w = (pixels.shape[0] // 8) * 8, (pixels.shape[1] // 8) * 8
    if h == 0 or w == 0:
        return {"colors": float(colors), "content_fraction": 0.0, "blank": 1.0}
    tiles = pixels[:h, :w].reshape(h // 8, 8, w // 8, 8, 3).astype(np.float32)
    detail = tiles.std(axis=(1, 3)).max(axis=-1)
    content = float((detail > 6.0).mean())
    blank = float(pixels.reshape(-1, 3).std(axis=0).max() < 1.0)
    return {"colors": float(colors), "content_fraction": content, "blank": blank}


def _band(value: float, low: float, high: float, fall: float) -> float:
    """1 inside [low, high], falling linearly to 0 over `fall` outside it."""
    if value < low:
        return max(0.0, 1.0 - (low - value) / fall)
    if value > high:
        return max(0.0, 1.0 - (value - high) / fall)
    return 1.0


class DesignJudge(PageJudge):
    """
    Scores a rendered page from measurements alone, on AesCoder's rubric (alignment /40, aesthetics /30, structure
    /30).

    - **Instruction alignment** (/40): the share of the instruction's content words that appear in the page's title and
      readable text (visible, on the page, at least 9 px, contrast at least 2:1), times the page's substance: its
      content words beyond the instruction's, not repeated and not random (see [`text_substance`]), with media or
      controls counting for half as much as words of its own. An echo of the prompt or keyword stuffing in invisible
      text earns nothing (a lexical proxy: it cannot tell whether a chart shows the right data).
    - **Aesthetics and readability** (/30): WCAG text contrast (share of text meeting AA), small-text share, palette
      size, whitespace balance (share of the screenshot with visible detail), left-edge alignment of text blocks,
      typographic restraint (font families and sizes), typesetting of running text (line length of 30 to 110
      characters, line spacing of at least 1.35); scaled by the share of the text the author styled (`styling`: not in
      the browser's initial typeface and colours).
    - **Structural integrity** (/30): horizontal overflow at the main viewport and text placed off the page (text in a
      scrolling container's content is on the page), text drawn over text (anywhere in the DOM), overflow at the phone
      viewport (responsiveness), JavaScript errors and failed resource loads, and real content (substance, or media,
      and a heading structure); scaled by the organisation of a page of text (`organised`: headings and paragraphs).

    Unreadable text (under 11 px, or below 2:1 contrast) and a lack of substance (see [`text_substance`]; media, a
    CSS drawing and interactive controls count as substance) also scale the aesthetics and structure scores down, so
    that 6 px text, an echo of the prompt, one sentence repeated or random text cannot keep the points their styling
    would earn.

    Weights of the sub-criteria are `aesthetics_weights` / `structure_weights`. A render that failed scores zero in
    every criterion.

    Example:

    ```python
    >>> from trl_ext.web import BrowserPool
    >>> from trl_ext.web.design_judge import DesignJudge
    >>> import asyncio
    >>> with BrowserPool(size=1) as pool:
    ...     render = pool.render("<!DOCTYPE html><html><head><title>Cafe</title></head><body><h1>Cafe menu</h1></body></html>")
    >>> score = asyncio.run(DesignJudge().score_page("A menu page for a cafe", render))
    >>> 0 <= score.total <= 100
    True
    ```
    """

    name = "design_judge"

    def __init__(
        self,
        aesthetics_weights: dict[str, float] | None = None,
        structure_weights: dict[str, float] | None = None,
    ):
        self.aesthetics_weights = aesthetics_weights or {
            "contrast": 0.25, "readability": 0.15, "palette": 0.1, "whitespace": 0.1, "alignment": 0.1,
            "typography": 0.1, "typesetting": 0.2,
        }  # fmt: skip
        self.structure_weights = structure_weights or {
            "overflow": 0.25, "overlap": 0.25, "responsive": 0.15, "errors": 0.15, "content": 0.2,
        }  # fmt: skip
        for name, weights in (
            ("aesthetics_weights", self.aesthetics_weights),
            ("structure_weights", self.structure_weights),
        ):
            if not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
                raise ValueError(f"`{name}` must map criteria to non-negative weights with a positive sum.")

    def criteria(self, instruction: str, render: RenderResult) -> dict[str, float]:
        """Every sub-criterion in [0, 1], for inspection and logging."""
        m: dict[str, Any] = render.metrics or {}
        pixels = screenshot_statistics(render.screenshot)
        text_chars = m.get("text_chars", 0)
        # Media, or a drawing: three or more painted boxes in three or more fills (the faces of a CSS cube, bars), or
        # detail in the screenshot without text (large text alone must not pass for a picture).
        drawn = m.get("painted_boxes", 0) >= 3 and m.get("painted_colors", 0) >= 3
        has_media = m.get("images", 0) > 0 or drawn or (text_chars < 5 and pixels["content_fraction"] >= 0.05)
        empty = (text_chars < 5 and not has_media) or pixels["blank"] == 1.0

        keywords = instruction_keywords(instruction)
        readable = m.get("readable_text", m.get("text_sample", ""))
        page_words = set(_WORD.findall((m.get("title", "") + " " + readable).lower()))
        coverage = len(keywords & page_words) / len(keywords) if keywords else 0.5
        # What the page holds beyond the instruction: its own words, its pictures, or its controls (a widget).
        controls = min(0.6, 0.2 * m.get("interactive", 0))
        own_words = text_substance(readable, instruction)
        substance = max(own_words, 0.6 if has_media else 0.0, controls)
        prose = m.get("prose_chars", 0)

        contrast = m.get("good_contrast_fraction")
        colors = pixels["colors"]
        families, sizes = m.get("font_families", 0), m.get("font_sizes", 0)
        width = m.get("viewport", {}).get("width") or 1
        blocks = max(1, m.get("text_blocks", 0))
        horizontal_scroll = m.get("scroll_width", width) > width + 2
        mobile = m.get("mobile")
        errors = len(render.console_errors) + len(render.failed_requests)
        checked = m.get("style_checked_chars", 0)
        if checked:  # the share of the text the author styled (not in the browser's initial typeface and colours)
            styling = 1.0 - m.get("default_style_chars", 0) / checked
        else:  # no text to judge by: a drawing or picture is the author's; a page with nothing is not
            styling = 1.0 if has_media else 0.0
        # Organisation of a page of text (300 characters or more): headings, and paragraphs (a text block per 800
        # characters); short pages (widgets, games, charts) need neither.
        if text_chars < 300:
            organised = 1.0
        else:
            organised = 0.5 * (m.get("headings", 0) > 0) + 0.5 * min(1.0, 800 * m.get("text_blocks", 0) / text_chars)
        return {
            "coverage": 0.0 if empty else coverage,
            "substance": 0.0 if empty else substance,
            "own_words": 0.0 if empty else own_words,
            "contrast": 0.7 if contrast is None else float(contrast),
            "readability": 1.0 - float(m.get("tiny_text_fraction", 0.0)),
            "palette": 0.6 if colors <= 1 else _band(colors, 2, 12, 30),
            "whitespace": _band(pixels["content_fraction"], 0.12, 0.65, 0.35),
            "alignment": float(m.get("aligned_fraction", 0.0)) if m.get("text_blocks", 0) > 1 else 0.5,
            "typography": _band(families, 1, 3, 4) * _band(sizes, 1, 8, 10),
            "typesetting": 0.7
            if prose == 0
            else 0.5 * (m.get("good_measure_chars", 0) + m.get("good_leading_chars", 0)) / prose,
            "overflow": (0.5 if horizontal_scroll else 1.0)
            * (1.0 - m.get("overflowing_blocks", 0) / blocks)
            * (1.0 - m.get("offscreen_chars", 0) / max(1, text_chars)),
            "overlap": 1.0 - m.get("overlapping_blocks", 0) / blocks,
            "responsive": 0.5
            if mobile is None
            else _band(mobile.get("scroll_width", 0) / max(1, mobile.get("width", 1)), 0.0, 1.02, 0.5),
            "errors": 1.0 / (1.0 + errors),
            "content": 0.0
            if empty
            else 0.6 + 0.2 * (m.get("headings", 0) > 0) + 0.2 * (m.get("landmarks", 0) > 0 or text_chars > 200),
            "styling": styling,
            "organised": organised,
            # Share of the text a reader can read (on the page, 9 px or more, contrast 2:1 or more; "readability"
            # above counts text under 11 px).
            "legible": float(m.get("readable_chars", text_chars)) / text_chars if text_chars else 1.0,
        }

    def score(self, instruction: str, render: RenderResult) -> PageScore:
        """Synchronous scoring (the judge does no I/O)."""
        if not render.ok or not render.screenshot:
            return PageScore(0.0, 0.0, 0.0, rationale=f"render failed: {render.error}")
        c = self.criteria(instruction, render)
        if c["content"] == 0.0:
            return PageScore(0.0, 0.0, 0.0, rationale="blank page")

        def weighted(weights: dict[str, float]) -> float:
            return sum(w * c[k] for k, w in weights.items()) / sum(weights.values())

        # The instruction's words count as far as the page says something of its own; a picture, a drawing or
        # controls beside a copy of the instruction vouch for half as much as words of its own.
        alignment = 40.0 * (0.25 + 0.75 * c["coverage"] * 0.5 * (c["substance"] + c["own_words"]))
        # A page must be read to be good: unreadable text, and a page with nothing of its own to say (an echo of the
        # prompt, one sentence repeated), cannot keep the points its styling would earn.
        quality = (0.4 + 0.6 * c["legible"] * c["readability"]) * (0.3 + 0.7 * c["substance"])
        # The browser's initial look (its typeface, black text, blue links, full-width lines) is not the author's
        # design, and a wall of text without headings or paragraphs is not a structure.
        aesthetics = 30.0 * weighted(self.aesthetics_weights) * quality * (0.4 + 0.6 * c["styling"])
        structure = 30.0 * weighted(self.structure_weights) * quality * (0.5 + 0.5 * c["organised"])
        weakest = sorted((k for k in c if k not in ("coverage", "substance", "own_words")), key=c.get)[:3]
        rationale = "weakest: " + ", ".join(f"{k}={c[k]:.2f}" for k in weakest)
        return PageScore(round(alignment, 3), round(aesthetics, 3), round(structure, 3), rationale=rationale)

    async def score_page(self, instruction: str, render: RenderResult) -> PageScore | None:
        return self.score(instruction, render)


def changed_pixels(before: bytes, after: bytes, threshold: int = 24) -> int:
    """Number of pixels whose colour changed by more than `threshold` (any channel) between two screenshots."""
    a = np.asarray(Image.open(io.BytesIO(before)).convert("RGB"), dtype=np.int16)
    b = np.asarray(Image.open(io.BytesIO(after)).convert("RGB"), dtype=np.int16)
    if a.shape != b.shape:
        return max(a.shape[0] * a.shape[1], b.shape[0] * b.shape[1])
    return int((np.abs(a - b).max(axis=-1) > threshold).sum())


class HeuristicInteractionJudge(InteractionJudge):
    """
    Model-free planner and grader for the interactive agent.

    The planner tries what a first-time visitor would: type into text fields (then Enter), press the buttons and
    in-page links, and, for games (a canvas, or game words in the instruction), the arrow keys. The grader counts an
    interaction as working when the viewport visibly changed (more than `min_changed_pixels` pixels): it rewards
    pages that respond, not pages that respond *correctly*, which needs a VLM. A page animating on its own (a canvas
    game loop) passes every interaction.

    Args:
        min_changed_pixels (`int`, *optional*, defaults to `16`):
            Changed pixels above which an interaction counts as a success (one changed digit is a few dozen).
        typed_text (`str`, *optional*, defaults to `"hello"`):
            Text typed into input fields.
    """

    name = "heuristic_interaction_judge"

    def __init__(self, min_changed_pixels: int = 16, typed_text: str = "hello"):
        if min_changed_pixels < 1:
            raise ValueError(f"`min_changed_pixels` must be at least 1, got {min_changed_pixels}.")
        self.min_changed_pixels = min_changed_pixels
        self.typed_text = typed_text

    async def plan_interactions(
        self, instruction: str, screenshot: bytes, elements: list[dict[str, Any]], max_actions: int = 5
    ) -> list[Action] | None:
        text_types = {"", "text", "search", "email", "url", "tel", "number", "password"}
        typing = [e for e in elements if e["tag"] in ("input", "textarea") and e.get("type", "") in text_types]
        clicking = [
            e
            for e in elements
            if e["tag"] in ("button", "summary", "select")
            or e.get("role") in ("button", "tab", "menuitem", "switch", "checkbox")
            or (e["tag"] == "input" and e.get("type") in ("button", "submit", "checkbox", "radio", "range", "reset"))
            or (e["tag"] == "a" and e.get("in_page", False))
            or e.get("onclick", False)
        ]
        game = any(e["tag"] == "canvas" for e in elements) or any(w in instruction.lower() for w in _GAME_WORDS)
        actions: list[Action] = []
        if game:
            actions.append(Action("key", key="ArrowRight", expectation="the game reacts to the arrow key"))
        for element in typing[:1]:
            actions.append(Action("type", mark=element["mark"], text=self.typed_text, expectation="input accepted"))
        for element in clicking:
            actions.append(Action("click", mark=element["mark"], expectation=f"clicking '{element['text']}' responds"))
        if game:
            actions.append(Action("key", key="ArrowUp", expectation="the game reacts to the arrow key"))
        return actions[:max_actions]

    async def grade_interaction(self, instruction: str, action: Action, before: bytes, after: bytes) -> bool | None:
        return changed_pixels(before, after) > self.min_changed_pixels


__all__ = [
    "DesignJudge",
    "text_substance",
    "text_variety",
    "text_naturalness",
    "HeuristicInteractionJudge",
    "changed_pixels",
    "instruction_keywords",
    "screenshot_statistics",
]
