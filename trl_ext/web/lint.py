"""
HTML lint for generated web pages: a Python port of HTMLHint's default ruleset, and extraction of the HTML from a
model completion.

AesCoder counts a page that HTMLHint flags as a lint failure. Calling the `htmlhint` CLI costs a Node.js process per
batch and a dependency outside Python; this module reproduces what `htmlhint` (pinned [`HTMLHINT_VERSION`]) reports
with its default ruleset, message for message: the same tokenizer (including its quirks: `<br/ >` is text, an unclosed
`<script>` swallows the rest of the page, `<title>` is only required once `</head>` is seen), the same lines and
columns (UTF-16 code units, like JavaScript), the same order. `benchmarks/html_lint.py` measures the agreement with the
real CLI, and `tests/test_web_lint.py` checks it on crafted pages when `htmlhint` is installed.

Unlike HTMLHint, the scanner runs in linear time: HTMLHint's tag regex backtracks quadratically on inputs like
`"<a <a <a ..."` or long runs of `"</</</..."`, which a policy under RL will eventually produce.

One deliberate difference by default: `<!-- htmlhint ... -->` and `<!-- htmlhint-disable ... -->` comments in the page
are ignored (`inline_config=False`), since a policy that learns to write `<!-- htmlhint-disable -->` would otherwise
pass every check. Pass `inline_config=True` for the CLI's behaviour.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..rewards.code import completion_text

HTMLHINT_VERSION = "1.9.2"
DEFAULT_RULES = (
    "tagname-lowercase",
    "attr-lowercase",
    "attr-value-double-quotes",
    "doctype-first",
    "tag-pair",
    "spec-char-escape",
    "id-unique",
    "src-not-empty",
    "attr-no-duplication",
    "title-require",
)
DEFAULT_MAX_CHARS = 4_000_000
DEFAULT_MAX_MESSAGES = 10_000

# ---------------------------------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------------------------------

# An opening ```html fence (any case), wherever it sits in its line, followed by the end of the line or of the text.
_HTML_FENCE = re.compile(r"```[ \t]*html[ \t]*(?:\r?\n|\Z)", re.IGNORECASE)
_LINE_START_FENCE = re.compile(r"^[ \t]*(```)", re.MULTILINE)
_FENCE_AFTER_HTML = re.compile(r"</html[ \t\r\n]*>[ \t]*(```)", re.IGNORECASE)
_HTML_START = re.compile(r"<html|<!doctype", re.IGNORECASE)
_HTML_END = re.compile(r"</html\s*>", re.IGNORECASE)


def _last_match(pattern: re.Pattern[str], text: str, pos: int) -> re.Match[str] | None:
    last = None
    for last in pattern.finditer(text, pos):  # noqa: B007
        pass
    return last


def extract_html(completion: str | list[dict[str, Any]]) -> str:
    """
    The HTML of a model completion.

    In order of preference:

    1. the body of the last ```` ```html ```` fenced block (```` ```HTML ```` too). The block closes at the first line
       that starts with ```` ``` ```` or at a ```` ``` ```` right after `</html>` on its line (models sometimes close
       there), whichever comes first, else at the first ```` ``` ````; a fence left open, as when generation is cut at
       the maximum length, runs to the end of the text;
    2. the text from the first `<html` or `<!doctype` (any case) to the end of the last `</html>` after it, or to the
       end of the text when there is none (prose after the page is not HTML);
    3. the whole text.

    The result is stripped of surrounding whitespace.

    Args:
        completion (`str` or `list[dict]`):
            A completion, standard (`str`) or conversational (list of messages, the last one is used).

    Returns:
        `str`: The HTML (possibly empty).
    """
    if not isinstance(completion, (str, list)):
        raise TypeError(
            f"`completion` must be a str or a list of message dicts, got {type(completion).__name__}; pass the "
            "completion text or TRL's conversational completion"
        )
    text = completion_text(completion)
    if not isinstance(text, str):
        raise TypeError(f"the completion's content must be a str, got {type(text).__name__}")

    opener = _last_match(_HTML_FENCE, text, 0)
    if opener is not None:
        body_start = opener.end()
        ends = [
            match.start(1)
            for match in (_LINE_START_FENCE.search(text, body_start), _FENCE_AFTER_HTML.search(text, body_start))
            if match
        ]
        fallback = text.find("```", body_start)
        if not ends and fallback != -1:
            ends.append(fallback)
        return text[body_start : min(ends, default=len(text))].strip()

    start = _HTML_START.search(text)
    if start is not None:
        end = _last_match(_HTML_END, text, start.start())
        return text[start.start() : end.end() if end is not None else len(text)].strip()
    return text.strip()


# ---------------------------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LintMessage:
    """
    One issue found by the linter, as HTMLHint reports it.

    Args:
        rule (`str`):
            Id of the rule (e.g. `"tag-pair"`), or `"max-chars"` / `"inline-config"` for the page-level failures of
            [`lint_html`].
        line (`int`):
            1-based line.
        col (`int`):
            1-based column, in UTF-16 code units like HTMLHint (it differs from a Python index only after characters
            outside the Basic Multilingual Plane, such as emoji).
        message (`str`):
            HTMLHint's message.
        severity (`str`, *optional*, defaults to `"error"`):
            `"error"` or `"warning"`. HTMLHint 1.9.2 reports every rule of its default ruleset as an error.
    """

    rule: str
    line: int
    col: int
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        return f"L{self.line}:C{self.col} {self.severity} {self.message} ({self.rule})"


@dataclass
class LintResult:
    """
    What [`lint_html`] found.

    Args:
        passed (`bool`):
            Whether the page has no message at all, which is when the `htmlhint` CLI exits with status 0 (it exits
            with 1 as soon as one hint is reported, errors and warnings alike, unless run with `--warn`).
        messages (`list[LintMessage]`):
            The messages, in HTMLHint's order.
        truncated (`bool`, *optional*, defaults to `False`):
            Whether linting stopped at `max_messages` messages (the rest of the page was not checked).
    """

    passed: bool
    messages: list[LintMessage] = field(default_factory=list)
    truncated: bool = False

    @property
    def failed_rules(self) -> set[str]:
        """Ids of the rules that reported at least one message."""
        return {message.rule for message in self.messages}


# ---------------------------------------------------------------------------------------------------------------------
# Tokenizer: HTMLHint's HTMLParser, with its regexes replaced by a linear-time scanner with the same matches.
# ---------------------------------------------------------------------------------------------------------------------

# JavaScript's `\s`: WhiteSpace (TAB, VT, FF, ZWNBSP and the Zs category) and LineTerminator. Python's `\s` differs
# (it has \x1c-\x1f and \x85, lacks \ufeff), so the class is spelled out.
_JS_WS = r"\t\n\x0b\x0c\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_JS_WS_CHARS = frozenset("\t\n\x0b\x0c\r \xa0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff") | frozenset(
    chr(c) for c in range(0x2000, 0x200B)
)
_WS_RUN = re.compile(f"[{_JS_WS}]*")
_ONLY_WS = re.compile(f"[{_JS_WS}]*")  # used with fullmatch
# Attribute names: `[^\s"'>\/=\x00-\x0F\x7F\x80-\x9F]` (\x10-\x1F are allowed, as in HTMLHint).
_NAME_CLASS = rf"[^{_JS_WS}\"'>/=\x00-\x0f\x7f-\x9f]"
_NAME_RUN = re.compile(f"{_NAME_CLASS}*")
_NAME_CHAR = re.compile(_NAME_CLASS)
_VALUE_RUN = re.compile(rf"[^{_JS_WS}\"'>]*")
_TAG_RUN = re.compile(r"[A-Za-z0-9_:\-]*")  # `[\w\-:]+` without the `u` flag: ASCII word characters
_CANDIDATE = re.compile(r"<[/!A-Za-z0-9_:\-]")  # the only starts the tag regex can match at
_ENDTAG_RUN = re.compile(rf"[^{_JS_WS}>]*")
_DOCTYPE = re.compile(rf"DOCTYPE[{_JS_WS}]", re.IGNORECASE | re.ASCII)
_SPEC_CHARS = re.compile(r"[<>]")
_JS_SPLIT_WS = re.compile(f"[{_JS_WS}]+")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")

_LOOP, _AFTER_NAME = 0, 1  # states of the start-tag scanner, see `_Scanner._attributes_end`


def _utf16_units(text: str) -> str:
    """`text` with each character outside the BMP split into its two surrogates, so that indices are JavaScript's."""
    if text.isascii() or max(text) < "\U00010000":
        return text

    def split(match: re.Match[str]) -> str:
        offset = ord(match.group()) - 0x10000
        return chr(0xD800 + (offset >> 10)) + chr(0xDC00 + (offset & 0x3FF))

    return _ASTRAL.sub(split, text)


def _from_utf16_units(text: str) -> str:
    if text.isascii():
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


@dataclass
class _Attr:
    name: str
    value: str
    quote: str
    index: int
    raw: str


class _Event:
    __slots__ = ("type", "tag_name", "attrs", "close", "content", "long", "raw", "pos", "line", "col", "last_event")

    def __init__(
        self,
        type: str,
        tag_name: str = "",
        attrs: list[_Attr] | None = None,
        close: str = "",
        content: str = "",
        long: bool = False,
        pos: int = 0,
        line: int = 1,
        col: int = 1,
    ) -> None:
        self.type = type
        self.tag_name = tag_name
        self.attrs = attrs if attrs is not None else []
        self.close = close
        self.content = content
        self.long = long
        self.raw = ""
        self.pos = pos
        self.line = line
        self.col = col
        self.last_event: _Event | None = None


def _parse_attrs(attrs: str) -> list[_Attr] | None:
    """
    HTMLHint's attribute regex applied globally to the attributes part of a start tag:
    `\\s*(name)(?:\\s*=\\s*(?:"..."|'...'|unquoted))?`. Returns `None` when the matches do not cover the whole string
    (HTMLHint then turns the tag into text).
    """
    length = len(attrs)
    out: list[_Attr] = []
    covered = 0
    pos = 0
    while pos < length:
        name_match = _NAME_CHAR.search(attrs, pos)
        if name_match is None:
            break
        name_start = name_match.start()
        # The leftmost match starts at the whitespace run right before the name (`\s*`), but not before `pos`.
        start = name_start
        while start > pos and attrs[start - 1] in _JS_WS_CHARS:
            start -= 1
        name_end = _NAME_RUN.match(attrs, name_start).end()
        end, value, quote = name_end, "", ""
        equal = _WS_RUN.match(attrs, name_end).end()
        if equal < length and attrs[equal] == "=":
            value_start = _WS_RUN.match(attrs, equal + 1).end()
            first = attrs[value_start] if value_start < length else ""
            if first == '"' or first == "'":
                closing = attrs.find(first, value_start + 1)
                if closing != -1:
                    value, quote, end = attrs[value_start + 1 : closing], first, closing + 1
                else:  # the unquoted alternative matches the empty string before the quote
                    end = value_start
            else:
                end = _VALUE_RUN.match(attrs, value_start).end()
                value = attrs[value_start:end]
        out.append(_Attr(attrs[name_start:name_end], value, quote, start, attrs[start:end]))
        covered += end - start
        pos = end
    return out if covered == length else None


class _Scanner:
    """
    Finds the matches of HTMLHint's tag regex,

        <(?:\\/([^\\s>]+)\\s*|!--([\\s\\S]*?)--|!([^>]*?)|([\\w\\-:]+)((?:\\s+NAME(?:\\s*=\\s*VALUE)?)*?)\\s*(\\/?))>

    from left to right, as `RegExp.exec` with the `g` flag does, but in linear time: every search that can fail far
    away caches its failure, and the start-tag part is an explicit search over (position, state) pairs, each explored
    once per page.
    """

    def __init__(self, html: str) -> None:
        self.html = html
        self.length = len(html)
        self._no_comment_close = False  # no "-->" after the last place searched
        self._no_gt = False
        self._no_quote: dict[str, int] = {}
        self._endtag_run = (-1, -1, -1)  # (run start, run end, position of ">" or -1)
        self._seen: set[int] = set()

    def next_match(self, pos: int) -> tuple | None:
        html = self.html
        while True:
            found = _CANDIDATE.search(html, pos)
            if found is None:
                return None
            start = found.start()
            second = html[start + 1]
            match = None
            if second == "/":
                match = self._end_tag(start)
            elif second == "!":
                match = self._bang(start)
            else:
                match = self._start_tag(start)
            if match is not None:
                return match
            pos = start + 1

    def _end_tag(self, start: int) -> tuple | None:
        name_start = start + 2
        run_start, run_end, gt = self._endtag_run
        if not run_start <= name_start < run_end:
            # `[^\s>]+` runs may contain "<", so "</</</..." would rescan the same run from every "<": cache it.
            run_end = _ENDTAG_RUN.match(self.html, name_start).end()
            gt = -1
            if run_end > name_start:
                after = _WS_RUN.match(self.html, run_end).end()
                if after < self.length and self.html[after] == ">":
                    gt = after
            self._endtag_run = (name_start, run_end, gt)
        if run_end == name_start or gt == -1:
            return None
        return ("tagend", start, gt + 1, self.html[name_start:run_end])

    def _bang(self, start: int) -> tuple | None:
        html = self.html
        if not self._no_comment_close and html.startswith("--", start + 2):
            close = html.find("-->", start + 4)
            if close != -1:
                return ("comment", start, close + 3, html[start + 4 : close], True)
            self._no_comment_close = True
        if not self._no_gt:
            gt = html.find(">", start + 2)
            if gt != -1:
                return ("comment", start, gt + 1, html[start + 2 : gt], False)
            self._no_gt = True
        return None

    def _start_tag(self, start: int) -> tuple | None:
        tag_end = _TAG_RUN.match(self.html, start + 1).end()
        found = self._attributes_end(tag_end)
        if found is None:
            return None
        attrs_end, close, gt = found
        return ("tagstart", start, gt + 1, self.html[start + 1 : tag_end], self.html[tag_end:attrs_end], close)

    def _find_quote(self, quote: str, start: int) -> int:
        if start >= self._no_quote.get(quote, self.length + 1):
            return -1
        found = self.html.find(quote, start)
        if found == -1:
            self._no_quote[quote] = start
        return found

    def _attributes_end(self, tag_end: int) -> tuple[int, str, int] | None:
        """
        Where `((?:\\s+NAME(?:\\s*=\\s*VALUE)?)*?)\\s*(\\/?)>` first matches at `tag_end`, in the regex's backtracking
        order, as `(end of the attributes group, "/" or "", position of ">")`.

        States: `_LOOP` at a boundary of the lazy loop (try `\\s*\\/?>`, else one more attribute) and `_AFTER_NAME`
        after an attribute name (try `\\s*=\\s*` and a value: quoted, else unquoted, else, when `=` was followed by
        whitespace, an empty value and the next word as a new name). Any other backtracking cannot change the outcome.
        A state's outcome does not depend on how it is reached, and a match never revisits positions before its
        end, so a state explored once (in this search or an earlier, failed one) is skipped.
        """
        html, length, seen = self.html, self.length, self._seen
        ws_run, name_run, whitespace = _WS_RUN.match, _NAME_RUN.match, _JS_WS_CHARS
        stack = [(_LOOP, tag_end)]
        while stack:
            state, pos = stack.pop()
            key = 2 * pos + state
            if key in seen:
                continue
            seen.add(key)
            after_ws = ws_run(html, pos).end() if pos < length and html[pos] in whitespace else pos
            if state == _LOOP:
                if after_ws < length:
                    char = html[after_ws]
                    if char == ">":
                        return pos, "", after_ws
                    if char == "/" and after_ws + 1 < length and html[after_ws + 1] == ">":
                        return pos, "/", after_ws + 1
                    if after_ws > pos:
                        name_end = name_run(html, after_ws).end()
                        if name_end > after_ws:
                            stack.append((_AFTER_NAME, name_end))
                continue
            if after_ws < length and html[after_ws] == "=":
                value_start = ws_run(html, after_ws + 1).end()
                first = html[value_start] if value_start < length else ""
                if first == '"' or first == "'":
                    closing = self._find_quote(first, value_start + 1)
                    if closing != -1:
                        stack.append((_LOOP, closing + 1))
                else:
                    alternatives = [(_LOOP, _VALUE_RUN.match(html, value_start).end())]
                    if value_start > after_ws + 1:
                        name_end = name_run(html, value_start).end()
                        if name_end > value_start:
                            alternatives.append((_AFTER_NAME, name_end))
                    stack.extend(reversed(alternatives))
            else:
                stack.append((_LOOP, pos))
        return None


class _Parser:
    """HTMLHint's event-based parser: `start`, `text`, `tagstart`, `tagend`, `comment`, `cdata`, `end` and `all`."""

    def __init__(self) -> None:
        self._listeners: dict[str, list[Callable[[_Event], None]]] = {}
        self._dispatch: dict[str, tuple[Callable[[_Event], None], ...]] = {}  # type listeners, then "all" ones
        self.last_event: _Event | None = None

    def add_listener(self, types: str, listener: Callable[[_Event], None]) -> None:
        for event_type in re.split(r"[,\s]", types):
            self._listeners.setdefault(event_type, []).append(listener)
        self._dispatch.clear()

    def remove_listener(self, event_type: str, listener: Callable[[_Event], None]) -> None:
        listeners = self._listeners.get(event_type, [])
        if listener in listeners:
            listeners.remove(listener)
        self._dispatch.clear()

    def fire(self, event: _Event) -> None:
        # A snapshot: listeners removed while the event is dispatched still receive it, as in HTMLHint.
        listeners = self._dispatch.get(event.type)
        if listeners is None:
            listeners = tuple(self._listeners.get(event.type, [])) + tuple(self._listeners.get("all", []))
            self._dispatch[event.type] = listeners
        if self.last_event is not None:
            self.last_event.last_event = None  # only one step of history is kept, as in HTMLHint
            event.last_event = self.last_event
        self.last_event = event
        for listener in listeners:
            listener(event)

    def parse(self, html: str) -> None:
        scanner = _Scanner(html)
        line, last_line_index = 1, 0

        def save(event: _Event, raw: str, pos: int) -> None:
            nonlocal line, last_line_index
            event.raw, event.pos, event.line, event.col = raw, pos, line, pos - last_line_index + 1
            self.fire(event)
            last_newline = raw.rfind("\n")
            if last_newline != -1:
                line += raw.count("\n")
                last_line_index = pos + last_newline + 1

        self.fire(_Event("start", pos=0, line=1, col=1))
        last_index = 0
        cdata_tag: str | None = None
        cdata_attrs: list[_Attr] = []
        cdata_start = 0
        while (match := scanner.next_match(last_index)) is not None:
            kind, start, end = match[0], match[1], match[2]
            if start > last_index and cdata_tag is None:
                save(_Event("text"), html[last_index:start], last_index)
            # Inside <script>/<style>, everything up to the closing tag is CDATA, kept contiguous from `cdata_start`.
            last_index = end
            if kind == "tagend":
                tag_name = match[3]
                if cdata_tag is not None and tag_name == cdata_tag:
                    save(_Event("cdata", tag_name=cdata_tag, attrs=cdata_attrs), html[cdata_start:start], cdata_start)
                    cdata_tag = None
                if cdata_tag is None:
                    save(_Event("tagend", tag_name=tag_name), html[start:end], start)
                continue
            if cdata_tag is not None:
                continue
            if kind == "tagstart":
                tag_name, attrs_text, close = match[3], match[4], match[5]
                attrs = _parse_attrs(attrs_text)
                if attrs is None:
                    save(_Event("text"), html[start:end], start)
                    continue
                save(_Event("tagstart", tag_name=tag_name, attrs=attrs, close=close), html[start:end], start)
                if tag_name in ("script", "style"):
                    attr_type = next((attr for attr in attrs if attr.name == "type"), None)
                    # HTMLHint lints the markup of Angular templates (<script type="text/ng-template">).
                    if attr_type is None or "text/ng-template" not in attr_type.value:
                        cdata_tag, cdata_attrs, cdata_start = tag_name, list(attrs), end
            else:
                content, long = match[3], match[4]
                if content:  # HTMLHint drops `<!---->` and `<!>` without an event
                    save(_Event("comment", content=content, long=long), html[start:end], start)
        if len(html) > last_index:
            save(_Event("text"), html[last_index:], last_index)
        self.fire(_Event("end", pos=last_index, line=line, col=len(html) - last_line_index + 1))


# ---------------------------------------------------------------------------------------------------------------------
# Reporter
# ---------------------------------------------------------------------------------------------------------------------


class _StopLint(Exception):
    pass


class _Reporter:
    def __init__(self, html: str, disabled: dict[int, tuple[bool, set[str]]], max_messages: int | None) -> None:
        self.html = html
        self.disabled = disabled
        self.max_messages = max_messages
        self.messages: list[LintMessage] = []
        newline = re.search(r"\r?\n", html)
        self.newline_length = len(newline.group()) if newline else 0
        self._line_lengths: list[int] | None = None
        self._prefix: list[int] | None = None
        self._next_non_empty: list[int] | None = None

    def _lines(self) -> list[int]:
        if self._line_lengths is None:
            self._line_lengths = [len(line) for line in re.split(r"\r?\n", self.html)]
        return self._line_lengths

    def _wrap(self, line: int, col: int) -> tuple[int, int]:
        """
        HTMLHint's reporter moves a column past the end of its line onto the next lines:

            while col > len(lines[line]) and line < line_count: line += 1; col -= len; if col != 1: col -= newline

        with `newline` the length of the page's first line break. The loop is quadratic over many attributes of a
        tag spanning many lines; with `P` the prefix sums of `len + newline`, the condition at step `k` reads
        `col > P[k + 1] - P[start] - newline`, monotonic in `k`, so the stopping line is a bisection away. The only
        exception (`col - len == 1`, which keeps `col = 1`) can only happen on the last step, after which the loop
        walks over empty lines.
        """
        lengths = self._lines()
        count = len(lengths)
        index = line - 1
        if index >= count or index < 0 or col <= lengths[index] or line >= count:
            return line, col
        if self._prefix is None:
            prefix = [0]
            for length in lengths:
                prefix.append(prefix[-1] + length + self.newline_length)
            self._prefix = prefix
        prefix, newline = self._prefix, self.newline_length
        base = prefix[index]
        # First line `a >= index` where the loop stops: col <= P[a + 1] - base - newline, or the last line.
        stop = bisect.bisect_left(prefix, col + base + newline, lo=index + 1) - 1
        stop = min(stop, count - 1)
        consumed = prefix[stop] - base  # sum of (len + newline) over the lines stepped over
        if col == consumed - newline + 1:  # the last step left col at 1 without subtracting the line break
            if self._next_non_empty is None:
                following = [count - 1] * count
                nxt = count - 1
                for i in range(count - 1, -1, -1):
                    if lengths[i] > 0:
                        nxt = i
                    following[i] = nxt
                self._next_non_empty = following
            return self._next_non_empty[stop] + 1, 1
        return stop + 1, col - consumed

    def error(self, message: str, line: int, col: int, rule: str) -> None:
        state = self.disabled.get(line)
        if state is not None and (state[0] or rule in state[1]):
            return
        line, col = self._wrap(line, col)
        self.messages.append(LintMessage(rule, line, col, _from_utf16_units(message)))
        if self.max_messages is not None and len(self.messages) >= self.max_messages:
            raise _StopLint


# ---------------------------------------------------------------------------------------------------------------------
# Rules (src/core/rules/*.ts of HTMLHint 1.9.2)
# ---------------------------------------------------------------------------------------------------------------------

_SVG_TAG_NAMES = frozenset(
    "animateMotion animateTransform clipPath feBlend feColorMatrix feComponentTransfer feComposite feConvolveMatrix "
    "feDiffuseLighting feDisplacementMap feDistantLight feDropShadow feFlood feFuncA feFuncB feFuncG feFuncR "
    "feGaussianBlur feImage feMerge feMergeNode feMorphology feOffset fePointLight feSpecularLighting feSpotLight "
    "feTile feTurbulence foreignObject linearGradient radialGradient textPath".split()
)
_SVG_ATTR_NAMES = frozenset(
    "allowReorder attributeName attributeType autoReverse baseFrequency baseProfile calcMode clipPath clipPathUnits "
    "contentScriptType contentStyleType diffuseConstant edgeMode externalResourcesRequired filterRes filterUnits "
    "glyphRef gradientTransform gradientUnits kernelMatrix kernelUnitLength keyPoints keySplines keyTimes "
    "lengthAdjust limitingConeAngle markerHeight markerUnits markerWidth maskContentUnits maskUnits numOctaves onBlur "
    "onChange onClick onFocus onKeyUp onLoad pathLength patternContentUnits patternTransform patternUnits pointsAtX "
    "pointsAtY pointsAtZ preserveAlpha preserveAspectRatio primitiveUnits refX refY repeatCount repeatDur "
    "requiredExtensions requiredFeatures specularConstant specularExponent spreadMethod startOffset stdDeviation "
    "stitchTiles surfaceScale systemLanguage tableValues targetX targetY textLength viewBox viewTarget "
    "xChannelSelector yChannelSelector zoomAndPan".split()
)
_EMPTY_TAGS = frozenset(
    "area base basefont br col frame hr img input isindex link meta param embed track command source keygen wbr".split()
)
_SRC_TAGS = frozenset(("img", "script", "embed", "bgsound", "iframe"))


def _has_upper(name: str) -> bool:
    name = _from_utf16_units(name)
    return name != name.lower()


def _string_exceptions(options: Any) -> frozenset[str]:
    # HTMLHint also accepts "/regex/" strings; evaluating regexes written in the page could hang, so they are ignored.
    if not isinstance(options, list):
        return frozenset()
    return frozenset(item for item in options if isinstance(item, str) and not item.startswith("/"))


def _rule_tagname_lowercase(parser: _Parser, reporter: _Reporter, options: Any) -> None:
    exceptions = _SVG_TAG_NAMES | _string_exceptions(options)

    def on_tag(event: _Event) -> None:
        name = event.tag_name
        if name not in exceptions and _has_upper(name):
            reporter.error(
                f"The html element name of [ {name} ] must be in lowercase.",
                event.line,
                event.col,
                "tagname-lowercase",
            )

    parser.add_listener("tagstart,tagend", on_tag)


def _rule_attr_lowercase(parser: _Parser, reporter: _Reporter, options: Any) -> None:
    exceptions = _SVG_ATTR_NAMES | _string_exceptions(options)

    def on_tagstart(event: _Event) -> None:
        col = event.col + len(event.tag_name) + 1
        for attr in event.attrs:
            if attr.name not in exceptions and _has_upper(attr.name):
                reporter.error(
                    f"The attribute name of [ {attr.name} ] must be in lowercase.",
                    event.line,
                    col + attr.index,
                    "attr-lowercase",
                )

    parser.add_listener("tagstart", on_tagstart)


def _rule_attr_value_double_quotes(parser: _Parser, reporter: _Reporter, options: Any) -> None:
    def on_tagstart(event: _Event) -> None:
        col = event.col + len(event.tag_name) + 1
        for attr in event.attrs:
            if (attr.value != "" and attr.quote != '"') or (attr.value == "" and attr.quote == "'"):
                reporter.error(
                    f"The value of attribute [ {attr.name} ] must be in double quotes.",
                    event.line,
                    col + attr.index,
                    "attr-value-double-quotes",
                )

    parser.add_listener("tagstart", on_tagstart)


def _rule_doctype_first(parser: _Parser, reporter: _Reporter, options: Any) -> None:
    found = False
    content_before = False

    def on_all(event: _Event) -> None:
        nonlocal found, content_before
        if event.type == "start" or (event.type == "text" and _ONLY_WS.fullmatch(event.raw)):
            return
        if found:
            return
        if event.type == "comment" and not event.long and _DOCTYPE.match(event.content):
            found = True
            if content_before:
                reporter.error(
                    "Doctype must be declared before any non-comment content.", event.line, event.col, "doctype-first"
                )
            return
        if event.type == "comment":
            return
        content_before = True
        reporter.error(
            "Doctype must be declared before any non-comment content.", event.line, event.col, "doctype-first"
        )
        parser.remove_listener("all", on_all)

    parser.add_listener("all", on_all)


def _rule_tag_pair(parser: _Parser, reporter: _Reporter, options: Any) -> None:
    stack: list[tuple[str, int, int, str]] = []  # (lowercased name, line, col, raw)

    def on_tagstart(event: _Event) -> None:
        name = event.tag_name.lower()
        if name not in _EMPTY_TAGS and not event.close:
            stack.append((name, event.line, event.col, event.raw))

    def on_tagend(event: _Event) -> None:
        name = _from_utf16_units(event.tag_name).lower()
        pos = len(stack) - 1
        while pos >= 0 and stack[pos][0] != name:
            pos -= 1
        if pos >= 0:
            if pos < len(stack) - 1:
                missing = "".join(f"</{open_tag[0]}>" for open_tag in reversed(stack[pos + 1 :]))
                _, line, col, raw = stack[-1]
                reporter.error(
                    f"Tag must be paired, missing: [ {missing} ], start tag match failed [ {raw} ] on line {line}.",
                    line,
                    col,
                    "tag-pair",
                )
            del stack[pos:]
        else:
            reporter.error(f"Tag must be paired, no start tag: [ {event.raw} ]", event.line, event.col, "tag-pair")

    def on_end(event: _Event) -> None:
        if stack:
            missing = "".join(f"</{open_tag[0]}>" for open_tag in reversed(stack))
            _, line, _, raw = stack[-1]
            reporter.error(
                f"Tag must be paired, missing: [ {missing} ], open tag match failed [ {raw} ] on line {line}.",
                event.line,
                event.col,
                "tag-pair",
            )

    parser.add_listener("tagstart", on_tagstart)
    parser.add_listener("tagend", on_tagend)
    parser.add_listener("end", on_end)


def _rule_spec_char_escape(parser: _Parser, reporter: _Reporter, options: Any) -> None:
    def on_text(event: _Event) -> None:
        raw = event.raw
        scanned, line, last_newline = 0, event.line, -1
        for match in _SPEC_CHARS.finditer(raw):
            index = match.start()
            newlines = raw.count("\n", scanned, index)
            if newlines:
                line += newlines
                last_newline = raw.rfind("\n", scanned, index)
            scanned = index
            # HTMLHint's fixPos: the column restarts after the last line break before the character.
            col = index - last_newline if last_newline != -1 else event.col + index
            reporter.error(f"Special characters must be escaped : [ {match.group()} ].", line, col, "spec-char-escape")

    parser.add_listener("text", on_text)


def _rule_id_unique(parser: _Parser, reporter: _Reporter, options: Any) -> None:
    counts: dict[str, int] = {}

    def on_tagstart(event: _Event) -> None:
        col = event.col + len(event.tag_name) + 1
        for attr in event.attrs:
            if attr.name.lower() == "id":
                if attr.value:
                    counts[attr.value] = counts.get(attr.value, 0) + 1
                    if counts[attr.value] > 1:
                        reporter.error(
                            f"The id value [ {attr.value} ] must be unique.",
                            event.line,
                            col + attr.index,
                            "id-unique",
                        )
                break

    parser.add_listener("tagstart", on_tagstart)


def _rule_src_not_empty(parser: _Parser, reporter: _Reporter, options: Any) -> None:
    def on_tagstart(event: _Event) -> None:
        tag = event.tag_name
        col = event.col + len(tag) + 1
        for attr in event.attrs:
            if attr.value == "" and (
                (tag in _SRC_TAGS and attr.name == "src")
                or (tag == "link" and attr.name == "href")
                or (tag == "object" and attr.name == "data")
            ):
                reporter.error(
                    f"The attribute [ {attr.name} ] of the tag [ {tag} ] must have a value.",
                    event.line,
                    col + attr.index,
                    "src-not-empty",
                )

    parser.add_listener("tagstart", on_tagstart)


def _rule_attr_no_duplication(parser: _Parser, reporter: _Reporter, options: Any) -> None:
    def on_tagstart(event: _Event) -> None:
        col = event.col + len(event.tag_name) + 1
        names: set[str] = set()
        for attr in event.attrs:
            if attr.name in names:
                reporter.error(
                    f"Duplicate of attribute name [ {attr.name} ] was found.",
                    event.line,
                    col + attr.index,
                    "attr-no-duplication",
                )
            names.add(attr.name)

    parser.add_listener("tagstart", on_tagstart)


def _rule_title_require(parser: _Parser, reporter: _Reporter, options: Any) -> None:
    head_begin = False
    has_title = False

    def on_tagstart(event: _Event) -> None:
        nonlocal head_begin, has_title
        name = event.tag_name.lower()
        if name == "head":
            head_begin = True
        elif name == "title" and head_begin:
            has_title = True

    def on_tagend(event: _Event) -> None:
        name = _from_utf16_units(event.tag_name).lower()
        if has_title and name == "title":
            last = event.last_event
            if last is None or last.type != "text" or _ONLY_WS.fullmatch(last.raw):
                reporter.error("<title></title> must not be empty.", event.line, event.col, "title-require")
        elif name == "head":
            if not has_title:
                reporter.error("<title> must be present in <head> tag.", event.line, event.col, "title-require")
            parser.remove_listener("tagstart", on_tagstart)
            parser.remove_listener("tagend", on_tagend)

    parser.add_listener("tagstart", on_tagstart)
    parser.add_listener("tagend", on_tagend)


_RULES: dict[str, Callable[[_Parser, _Reporter, Any], None]] = {
    "tagname-lowercase": _rule_tagname_lowercase,
    "attr-lowercase": _rule_attr_lowercase,
    "attr-value-double-quotes": _rule_attr_value_double_quotes,
    "doctype-first": _rule_doctype_first,
    "tag-pair": _rule_tag_pair,
    "spec-char-escape": _rule_spec_char_escape,
    "id-unique": _rule_id_unique,
    "src-not-empty": _rule_src_not_empty,
    "attr-no-duplication": _rule_attr_no_duplication,
    "title-require": _rule_title_require,
}

# ---------------------------------------------------------------------------------------------------------------------
# Inline configuration (`inline_config=True`): HTMLHint's `<!-- htmlhint rule:value -->` and
# `<!-- htmlhint-disable[-next-line] [rules] -->` / `<!-- htmlhint-enable -->` comments.
# ---------------------------------------------------------------------------------------------------------------------

_RULESET_ITEM = re.compile(rf"(?:^|,)[{_JS_WS}]*([^:,]+)[{_JS_WS}]*(?::[{_JS_WS}]*([^,{_JS_WS}]+))?")


def _ascii_lower_equals(text: str, expected: str) -> bool:
    return text.isascii() and text.lower() == expected


def _lazy_tail(html: str, pos: int) -> tuple[str, int] | None:
    """
    Match `\\s+([^\\r\\n]+?)\\s*-->` at `pos` in the regex's backtracking order, in linear time: returns the group
    and the end of the match.

    For a group starting at `c`, the lazy group ends at the first `e > c` from which `\\s*-->` matches: the start of
    the whitespace run before the first `-->` after `c` (but at least `c + 1`), provided no line break comes first.
    `\\s+` is greedy, so `c` is the end of the whitespace run, then, backtracking, each position inside it.
    """
    length = len(html)
    ws_end = _WS_RUN.match(html, pos).end()
    if ws_end == pos:
        return None

    def attempt(group_start: int, close: int) -> tuple[str, int] | None:
        run_start = close
        while run_start > group_start + 1 and html[run_start - 1] in _JS_WS_CHARS:
            run_start -= 1
        group_end = max(group_start + 1, run_start)
        if html.find("\r", group_start, group_end) == -1 and html.find("\n", group_start, group_end) == -1:
            return html[group_start:group_end], close + 3
        return None

    if ws_end < length and html[ws_end] not in "\r\n":
        close = html.find("-->", ws_end + 1)
        if close != -1 and (found := attempt(ws_end, close)) is not None:
            return found
    # Starting inside the run, the search for "-->" starts at `ws_end` (whitespace cannot start it) and the group
    # only grows leftwards, so the first start that is not a line break decides.
    close = html.find("-->", ws_end)
    if close == -1:
        return None
    for group_start in range(ws_end - 1, pos, -1):
        if html[group_start] not in "\r\n":
            return attempt(group_start, close)
    return None


def _inline_ruleset(html: str) -> tuple[str, list[tuple[str, str | None]]] | None:
    """`^\\s*<!--\\s*htmlhint\\s+([^\\r\\n]+?)\\s*-->` (case-insensitive): the page without it and its items."""
    start = _WS_RUN.match(html, 0).end()
    if not html.startswith("<!--", start):
        return None
    keyword = _WS_RUN.match(html, start + 4).end()
    if not _ascii_lower_equals(html[keyword : keyword + 8], "htmlhint"):
        return None
    tail = _lazy_tail(html, keyword + 8)
    if tail is None:
        return None
    text, end = tail
    return html[end:], [(match.group(1), match.group(2)) for match in _RULESET_ITEM.finditer(text)]


def _disable_comments(html: str) -> dict[int, tuple[bool, set[str]]]:
    """HTMLHint's `parseDisableComments`: for each line, whether all rules are disabled and which rules are."""
    comments: dict[int, tuple[str, bool, str]] = {}  # first comment of each line: (command, next line, rules)
    pos = 0
    while (start := html.find("<!--", pos)) != -1:
        pos = start + 1
        keyword = _WS_RUN.match(html, start + 4).end()
        if not _ascii_lower_equals(html[keyword : keyword + 9], "htmlhint-"):
            continue
        cursor = keyword + 9
        if _ascii_lower_equals(html[cursor : cursor + 7], "disable"):
            command, cursor = "disable", cursor + 7
        elif _ascii_lower_equals(html[cursor : cursor + 6], "enable"):
            command, cursor = "enable", cursor + 6
        else:
            continue
        if _ascii_lower_equals(html[cursor : cursor + 10], "-next-line"):
            cursor += 10
        tail = _lazy_tail(html, cursor)
        if tail is not None:
            rules, end = tail
        else:
            after = _WS_RUN.match(html, cursor).end()
            if not html.startswith("-->", after):
                continue
            rules, end = "", after + 3
        line = html.count("\n", 0, start) + 1
        # `match[0].includes('-next-line')`: case-sensitive, anywhere in the comment, rules included.
        comments.setdefault(line, (command, "-next-line" in html[start:end], rules.strip("".join(_JS_WS_CHARS))))
        pos = end

    disabled: dict[int, tuple[bool, set[str]]] = {}
    if not comments:
        return disabled
    current: set[str] | None = None
    all_disabled = False
    for line in range(1, html.count("\n") + 2):
        comment = comments.get(line)
        if comment is not None:
            command, next_line, rules_text = comment
            rules = [rule for rule in _JS_SPLIT_WS.split(rules_text) if rule]
            if command == "disable" and next_line:
                entry = disabled.setdefault(line + 1, (False, set()))
                if rules_text:
                    entry[1].update(rules)
                else:
                    disabled[line + 1] = (True, entry[1])
            elif command == "disable":
                current, all_disabled = (set(rules), False) if rules_text else (None, True)
            else:
                current, all_disabled = None, False
        if current is not None or all_disabled:
            entry = disabled.setdefault(line, (False, set()))
            if all_disabled and not entry[0]:
                disabled[line] = (True, entry[1])
            elif current is not None:
                entry[1].update(current)
    return disabled


# ---------------------------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------------------------


def _check_rules(rules: Sequence[str] | None) -> list[str]:
    if rules is None:
        return list(DEFAULT_RULES)
    if isinstance(rules, str) or not isinstance(rules, Sequence):
        raise TypeError(f"`rules` must be a sequence of rule ids such as {list(DEFAULT_RULES[:2])}, got {rules!r}")
    if not rules:
        raise ValueError(
            "`rules` is empty: pass `None` for HTMLHint's default ruleset, or a non-empty list of rule ids"
        )
    unknown = [rule for rule in rules if rule not in _RULES]
    if unknown:
        raise ValueError(f"unknown lint rules {unknown} in `rules`; the supported rules are {list(DEFAULT_RULES)}")
    return list(dict.fromkeys(rules))


def lint_html(
    html: str,
    rules: Sequence[str] | None = None,
    *,
    inline_config: bool = False,
    max_chars: int | None = DEFAULT_MAX_CHARS,
    max_messages: int | None = DEFAULT_MAX_MESSAGES,
) -> LintResult:
    """
    Lint a page with HTMLHint's default ruleset (or a subset of it), as `htmlhint` 1.9.2 does.

    Args:
        html (`str`):
            The page.
        rules (`Sequence[str]`, *optional*):
            Rule ids to run, among [`DEFAULT_RULES`] (the default: all of them, HTMLHint's default ruleset).
        inline_config (`bool`, *optional*, defaults to `False`):
            Honour HTMLHint's configuration comments in the page: a leading `<!-- htmlhint rule:value, ... -->`
            (which HTMLHint then removes from the page) and `<!-- htmlhint-disable/-enable[-next-line] [rules] -->`.
            Off by default, so that a policy cannot switch the checks off from the page it writes. With it on, an
            inline value that is not JSON (which makes HTMLHint throw) yields an `"inline-config"` error, inline
            rules outside [`DEFAULT_RULES`] are ignored, and `"/regex/"` exceptions of the lowercase rules too.
        max_chars (`int`, *optional*, defaults to `4_000_000`):
            Longer pages are not linted and fail with one `"max-chars"` error. `None` lifts the limit (linting is
            linear in the size of the page: about 0.3 s per MB of ordinary markup, a few seconds per MB of
            adversarial input).
        max_messages (`int`, *optional*, defaults to `10_000`):
            Linting stops after this many messages and the result is marked `truncated` (it cannot pass anyway).
            `None` keeps them all.

    Returns:
        [`LintResult`]: `passed` is `True` when no message is reported, which is when the `htmlhint` CLI exits 0.
    """
    if not isinstance(html, str):
        raise TypeError(f"`html` must be a str, got {type(html).__name__}; decode bytes first (e.g. as UTF-8)")
    if max_chars is not None and (not isinstance(max_chars, int) or max_chars <= 0):
        raise ValueError(f"`max_chars` must be a positive int or None, got {max_chars!r}")
    if max_messages is not None and (not isinstance(max_messages, int) or max_messages <= 0):
        raise ValueError(f"`max_messages` must be a positive int or None, got {max_messages!r}")
    ruleset: dict[str, Any] = dict.fromkeys(_check_rules(rules), True)

    if max_chars is not None and len(html) > max_chars:
        message = f"The page has {len(html)} characters, more than max_chars={max_chars}; it was not linted."
        return LintResult(passed=False, messages=[LintMessage("max-chars", 1, 1, message)])

    html = _utf16_units(html)
    disabled: dict[int, tuple[bool, set[str]]] = {}
    if inline_config:
        inline = _inline_ruleset(html)
        if inline is not None:
            html, items = inline
            for rule_id, value in items:
                if value is None or value == "":
                    ruleset[rule_id] = True
                    continue
                try:
                    ruleset[rule_id] = json.loads(value, parse_constant=_reject_constant)
                except ValueError:
                    message = f"Invalid value {value!r} for rule {rule_id!r} in the inline ruleset: htmlhint throws."
                    return LintResult(passed=False, messages=[LintMessage("inline-config", 1, 1, message)])
        disabled = _disable_comments(html)

    parser = _Parser()
    reporter = _Reporter(html, disabled, max_messages)
    for rule_id, options in ruleset.items():
        if rule_id in _RULES and options is not False:
            _RULES[rule_id](parser, reporter, options)
    truncated = False
    try:
        parser.parse(html)
    except _StopLint:
        truncated = True
    return LintResult(passed=not reporter.messages, messages=reporter.messages, truncated=truncated)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # JSON.parse rejects NaN and Infinity, Python's json accepts them
