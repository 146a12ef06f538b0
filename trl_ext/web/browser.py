"""
A pool of long-lived headless Chromium contexts that renders generated web pages: screenshots, JavaScript errors,
failed resource loads and design measurements, under hard timeouts and with crash recovery.

The pool owns one event loop in a background thread, so it can be used from synchronous code (`render`), from any
other event loop (`arender`, e.g. TRL's loop for async rewards) and from several threads at once.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .types import DEFAULT_VIEWPORT, RenderResult
from .vendor import strip_integrity

logger = logging.getLogger(__name__)

T = TypeVar("T")
Interact = Callable[["PageSession"], Awaitable[Any]]

# Chromium flags for a closed network and a container: without the background-networking flags Chromium keeps
# trying to reach Google's hosts; `--no-sandbox` because CI runs as root.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--disable-quic",
    "--mute-audio",
    "--hide-scrollbars",
)
# Second viewport of the responsiveness check (a common phone width).
MOBILE_VIEWPORT = (390, 844)
# Generated pages are served from this (never resolvable) origin so that localStorage, cookies and relative URLs
# behave as on a real site; each page gets its own sub-domain, so no storage leaks between completions.
PAGE_HOST_SUFFIX = "trl-ext.invalid"

# Kinds of rendering failures. `page_*` are the page's own fault (it scores zero); `browser_*` are infrastructure
# failures (the sample is excluded).
PAGE_TIMEOUT = "page_timeout"
PAGE_CRASHED = "page_crashed"
PAGE_ERROR = "page_error"
BROWSER_CRASHED = "browser_crashed"

_MEASURE_JS = (Path(__file__).parent / "measure.js").read_text()
# Finite CSS animations and transitions jump to their end, infinite ones back to their start, and the text caret is
# hidden, so the screenshot shows the settled page (what Playwright's `animations="disabled"` and `caret="hide"` do,
# in one call instead of its several utility-world evaluations).
_PREPARE_JS = """
for (const animation of document.getAnimations()) {
  try {
    const timing = animation.effect && animation.effect.getComputedTiming();
    if (timing && Number.isFinite(timing.endTime)) animation.finish(); else animation.cancel();
  } catch (error) {}
}
{
  const style = document.createElement("style");
  style.textContent = "*, *::before, *::after { caret-color: transparent !important; }";
  (document.head || document.documentElement).appendChild(style);
}
"""
_CAPTURE_JS = f"() => {{ {_PREPARE_JS} return ({_MEASURE_JS})(); }}"
_CAPTURE_HEIGHT_JS = (
    f"() => {{ {_PREPARE_JS} return {{page_height: Math.max(document.documentElement.scrollHeight, "
    "document.body ? document.body.scrollHeight : 0)}; }"
)
_FRAMES_JS = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
# Read right after the resize: reading `scrollWidth` forces style and layout at the new width (media queries
# included), so no frame has to be painted for the check.
_MOBILE_JS = "() => ({width: window.innerWidth, scroll_width: document.documentElement.scrollWidth})"


def screenshot_params(viewport: tuple[int, int], page_height: int, max_height: int) -> dict[str, Any]:
    """
    DevTools `Page.captureScreenshot` parameters for a PNG of the whole page (cut at `max_height`): the viewport as it
    is when the page fits, else the document rectangle captured beyond the viewport (no resize of the view).
    """
    params: dict[str, Any] = {"format": "png"}
    if page_height > viewport[1]:
        height = min(int(page_height), int(max_height))
        params["captureBeyondViewport"] = True
        params["clip"] = {"x": 0, "y": 0, "width": viewport[0], "height": height, "scale": 1}
    return params


async def capture_png(cdp, params: dict[str, Any]) -> bytes:
    """One `Page.captureScreenshot` round trip through a page's DevTools session; returns the PNG bytes."""
    return base64.b64decode((await cdp.send("Page.captureScreenshot", params))["data"])


def find_chromium() -> str:
    """
    Path of the Chromium executable: `$TRL_EXT_CHROMIUM`, else Debian's `chromium` (or `chromium-browser`,
    `google-chrome`) on the `PATH`.
    """
    explicit = os.environ.get("TRL_EXT_CHROMIUM")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise FileNotFoundError(f"TRL_EXT_CHROMIUM={explicit!r} is not an executable file.")
        return explicit
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError(
        "No Chromium found. Install Debian's browser with `apt-get install chromium` (Playwright's own browser "
        "download is not needed), or point TRL_EXT_CHROMIUM at a Chromium/Chrome executable."
    )


def chromium_available() -> bool:
    """Whether [`find_chromium`] finds a browser (tests and examples skip without one)."""
    try:
        find_chromium()
    except FileNotFoundError:
        return False
    return True


class BrowserCrashedError(RuntimeError):
    """The browser died twice while rendering the same page: an infrastructure failure."""


@dataclass
class PoolStats:
    """Counters of the pool's life, for logging and tests."""

    pages: int = 0
    browser_launches: int = 0
    browser_restarts: int = 0
    context_recycles: int = 0
    retries: int = 0
    failures: Counter = field(default_factory=Counter)


class _Slot:
    """
    One long-lived browser context and its long-lived tab. The tab is navigated from document to document (a new tab
    costs a renderer process start, most of a page's render time); its event listeners report into `result`.
    """

    def __init__(self, context, generation: int):
        self.context = context
        self.generation = generation
        self.uses = 0
        self.page = None
        self.cdp = None
        self.frozen = False
        self.result: RenderResult | None = None
        self.crashed: asyncio.Event | None = None

    async def set_frozen(self, frozen: bool) -> None:
        """Freeze (no tasks, timers or frames run) or resume the tab through the DevTools lifecycle API."""
        if self.cdp is not None and self.frozen != frozen:
            await self.cdp.send("Page.setWebLifecycleState", {"state": "frozen" if frozen else "active"})
            self.frozen = frozen

    async def tab(self, viewport: tuple[int, int]):
        """The slot's tab, resumed and at `viewport` (resized while still frozen: no layout of the old page)."""
        if self.page is not None and not self.page.is_closed():
            if tuple((self.page.viewport_size or {}).values()) != viewport:
                await self.page.set_viewport_size({"width": viewport[0], "height": viewport[1]})
            await self.set_frozen(False)
        else:
            page = await self.context.new_page()
            self.cdp = await self.context.new_cdp_session(page)
            self.frozen = False
            page.on("crash", lambda _: self.crashed is not None and self.crashed.set())
            page.on("pageerror", lambda error: self._error(f"uncaught: {_short(str(error))}"))
            page.on(
                "console",
                lambda message: (
                    self._error(f"console.error: {_short(message.text)}")
                    if message.type == "error" and not message.text.startswith("Failed to load resource")
                    else None
                ),
            )
            page.on("requestfailed", lambda request: self.result is not None and _record_failed(self.result, request))
            page.on(
                "response",
                lambda response: (
                    self.result.failed_requests.append(f"{response.url} (HTTP {response.status})")
                    if response.status >= 400 and self.result is not None
                    else None
                ),
            )
            # A `beforeunload` prompt would block the next navigation: accept it; other dialogs are dismissed.
            page.on(
                "dialog",
                lambda dialog: asyncio.ensure_future(
                    dialog.accept() if dialog.type == "beforeunload" else dialog.dismiss()
                ),
            )
            self.page = page
            await page.set_viewport_size({"width": viewport[0], "height": viewport[1]})
        return self.page

    def _error(self, text: str) -> None:
        if self.result is not None:
            self.result.console_errors.append(text)


class PageSession:
    """
    A loaded page held open inside the pool (see [`BrowserPool.session`]); the interactive agent drives it.

    Attributes:
        page: The Playwright `Page` (async API).
        result ([`RenderResult`]): What the load produced so far (errors, failed requests).
        cdp: The page's DevTools session (Playwright `CDPSession`).
    """

    def __init__(self, page, result: RenderResult, host: str, cdp=None):
        self.page = page
        self.result = result
        self.host = host
        self.cdp = cdp

    async def screenshot(self) -> bytes:
        """PNG of the viewport with CSS animations settled (the interactive agent's before/after views)."""
        return await self.page.screenshot(type="png", animations="disabled", caret="hide")


class BrowserPool:
    """
    Renders HTML documents in a pool of long-lived Chromium contexts (one browser process, `size` contexts), never a
    browser per page.

    Each page is served from its own origin (`http://p<n>.trl-ext.invalid/`), loaded under a hard deadline, given
    time to settle (fonts, two animation frames, `settle_ms`), measured (see `measure.js`) and screenshotted full
    page with CSS animations finished. External requests go through `router` (e.g. a
    [`~trl_ext.web.vendor.CDNRouter`] serving local copies of CDN libraries); without one they are aborted at once,
    since the network is assumed closed.

    Failures: a page that does not load or settle within `page_timeout` gets `error="page_timeout"` (its renderer is
    discarded with its context); a crashed renderer gets `"page_crashed"`. A browser that dies is replaced and the
    page is retried once; if that fails too, [`BrowserCrashedError`] is raised (an infrastructure failure).

    Args:
        size (`int`, *optional*, defaults to `4`):
            Number of browser contexts, i.e. pages rendered concurrently.
        page_timeout (`float`, *optional*, defaults to `20.0`):
            Hard limit in seconds for loading, settling, measuring and screenshotting one page.
        settle_ms (`int`, *optional*, defaults to `300`):
            Extra time given to scripts and transitions after the load event.
        viewport (`tuple[int, int]`, *optional*, defaults to `(1280, 960)`):
            Viewport of the screenshot (AesCoder's static agent).
        max_screenshot_height (`int`, *optional*, defaults to `6000`):
            Full-page screenshots are cut at this height in CSS pixels (an endless page must not produce a 100 MB PNG).
        mobile_viewport (`tuple[int, int]`, *optional*, defaults to `(390, 844)`):
            Second viewport measured for responsiveness; `None` skips the check.
        router (`Callable`, *optional*):
            `async router(route)` handling every request that leaves the page's own origin; `None` aborts them.
        max_pages_per_context (`int`, *optional*, defaults to `64`):
            A context is replaced after this many pages, bounding the memory a long run can leak.
        executable_path (`str`, *optional*):
            Chromium executable. Defaults to [`find_chromium`].
        launch_args (`Sequence[str]`, *optional*):
            Extra Chromium flags.

    Example:

    ```python
    >>> from trl_ext.web import BrowserPool
    >>> with BrowserPool(size=2) as pool:
    ...     result = pool.render("<!DOCTYPE html><html><head><title>t</title></head><body><h1>Hi</h1></body></html>")
    >>> result.ok, result.screenshot[:4]
    (True, b'\\x89PNG')
    ```
    """

    def __init__(
        self,
        size: int = 4,
        page_timeout: float = 20.0,
        settle_ms: int = 300,
        viewport: tuple[int, int] = DEFAULT_VIEWPORT,
        max_screenshot_height: int = 6000,
        mobile_viewport: tuple[int, int] | None = MOBILE_VIEWPORT,
        router: Callable[[Any], Awaitable[None]] | None = None,
        max_pages_per_context: int = 64,
        executable_path: str | None = None,
        launch_args: Sequence[str] = (),
    ):
        if size < 1:
            raise ValueError(f"`size` must be at least 1, got {size}.")
        if page_timeout <= 0:
            raise ValueError(f"`page_timeout` must be positive, got {page_timeout}.")
        for name, value in (("viewport", viewport), ("mobile_viewport", mobile_viewport)):
            if value is not None and (len(value) != 2 or min(value) < 1):
                raise ValueError(f"`{name}` must be a (width, height) pair of positive integers, got {value!r}.")
        self.size = size
        self.page_timeout = float(page_timeout)
        self.settle_ms = int(settle_ms)
        self.viewport = tuple(viewport)
        self.max_screenshot_height = int(max_screenshot_height)
        self.mobile_viewport = tuple(mobile_viewport) if mobile_viewport is not None else None
        self.router = router
        self.max_pages_per_context = max_pages_per_context
        self.executable_path = executable_path or find_chromium()
        self.launch_args = [*CHROMIUM_ARGS, *launch_args]
        self.stats = PoolStats()

        self._page_ids = itertools.count()
        self._documents: dict[str, str] = {}  # host -> HTML served there
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        # Created on the pool's loop.
        self._playwright = None
        self._browser = None
        self._generation = 0
        self._slots: asyncio.Queue | None = None
        self._restart_lock: asyncio.Lock | None = None

    # ------------------------------------------------------------------------------------------------------------
    # Event loop plumbing
    # ------------------------------------------------------------------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise RuntimeError("the BrowserPool is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="trl_ext-browser-pool", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def submit(self, coroutine_function: Callable[..., Awaitable[T]], *args, **kwargs) -> Future:
        """Schedule `coroutine_function(*args, **kwargs)` on the pool's loop; returns a `concurrent.futures.Future`."""
        loop = self._ensure_loop()
        return asyncio.run_coroutine_threadsafe(coroutine_function(*args, **kwargs), loop)

    def call(self, coroutine_function: Callable[..., Awaitable[T]], *args, **kwargs) -> T:
        """Run `coroutine_function(*args, **kwargs)` on the pool's loop and wait for its result (synchronous API)."""
        if self._loop is not None and _running_loop() is self._loop:
            raise RuntimeError("BrowserPool.call() cannot be used from the pool's own loop; await the coroutine.")
        return self.submit(coroutine_function, *args, **kwargs).result()

    async def acall(self, coroutine_function: Callable[..., Awaitable[T]], *args, **kwargs) -> T:
        """Await `coroutine_function(*args, **kwargs)` run on the pool's loop, from any other event loop."""
        loop = self._ensure_loop()
        if _running_loop() is loop:
            return await coroutine_function(*args, **kwargs)
        return await asyncio.wrap_future(self.submit(coroutine_function, *args, **kwargs))

    # ------------------------------------------------------------------------------------------------------------
    # Browser lifecycle (pool loop only)
    # ------------------------------------------------------------------------------------------------------------
    async def _start(self) -> None:
        if self._slots is not None:
            return
        from playwright.async_api import async_playwright

        self._restart_lock = asyncio.Lock()
        self._playwright = await async_playwright().start()
        await self._launch_browser()
        self._slots = asyncio.Queue()
        for _ in range(self.size):
            self._slots.put_nowait(await self._new_slot())

    async def _launch_browser(self) -> None:
        self._browser = await self._playwright.chromium.launch(
            executable_path=self.executable_path, args=self.launch_args, headless=True, timeout=60_000
        )
        self._generation += 1
        self.stats.browser_launches += 1

    async def _new_slot(self) -> _Slot:
        context = await self._browser.new_context(
            viewport={"width": self.viewport[0], "height": self.viewport[1]},
            device_scale_factor=1,
            java_script_enabled=True,
            service_workers="block",
            reduced_motion="no-preference",
        )
        await context.route("**/*", self._route)
        return _Slot(context, self._generation)

    def _browser_alive(self) -> bool:
        return self._browser is not None and self._browser.is_connected()

    async def _restart_browser(self, generation: int) -> None:
        """Replace a dead browser once, however many pages noticed its death."""
        async with self._restart_lock:
            if self._generation != generation and self._browser_alive():
                return  # someone else already restarted it
            logger.warning("Chromium died; starting a new browser.")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._browser.close(), 5)
            await self._launch_browser()
            self.stats.browser_restarts += 1

    async def _acquire(self) -> _Slot:
        await self._start()
        slot = await self._slots.get()
        try:
            if slot.generation != self._generation or not self._browser_alive():
                if not self._browser_alive():
                    await self._restart_browser(slot.generation)
                slot = await self._new_slot()
            elif slot.uses >= self.max_pages_per_context:
                await _close_quietly(slot.context)
                self.stats.context_recycles += 1
                slot = await self._new_slot()
        except BaseException:
            self._slots.put_nowait(_Slot(None, -1))  # keep the pool size; replaced on next acquire
            raise
        slot.uses += 1
        return slot

    def _release(self, slot: _Slot) -> None:
        self._slots.put_nowait(slot)

    async def _discard(self, slot: _Slot) -> None:
        """Drop a context whose renderer may be hung or crashed, and put a placeholder back (recreated lazily)."""
        if slot.context is not None:
            await _close_quietly(slot.context)
        self.stats.context_recycles += 1
        self._slots.put_nowait(_Slot(None, -1))

    async def _route(self, route) -> None:
        request = route.request
        url = request.url
        if url.startswith(("http://", "https://")):
            host = url.split("/", 3)[2].split(":")[0]
            if host.endswith(PAGE_HOST_SUFFIX):
                path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
                body = self._documents.get(host) if path.split("?")[0].split("#")[0] in ("/", "/index.html") else None
                if body is not None:
                    await route.fulfill(status=200, content_type="text/html; charset=utf-8", body=body)
                else:
                    await route.fulfill(status=404, content_type="text/plain", body="not found")
                return
            if self.router is not None:
                await self.router(route)
                return
            await route.abort("internetdisconnected")
            return
        await route.continue_()

    # ------------------------------------------------------------------------------------------------------------
    # Rendering (pool loop only)
    # ------------------------------------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def session(
        self, html: str, viewport: tuple[int, int] | None = None, timeout: float | None = None
    ) -> AsyncIterator[PageSession]:
        """
        Load `html` in a pooled context and keep the page open inside the `async with` block (on the pool's loop:
        use it in a coroutine passed to [`~BrowserPool.call`] / [`~BrowserPool.acall`]).

        The load itself is bounded by `timeout` (default `page_timeout`); on a timeout the session still opens (the
        page may be partially usable) with `result.error == "page_timeout"`. A crashed browser is restarted and the
        load retried once.
        """
        timeout = self.page_timeout if timeout is None else timeout
        for attempt in range(2):
            slot = await self._acquire()
            generation = slot.generation
            host = f"p{next(self._page_ids)}.{PAGE_HOST_SUFFIX}"
            # Subresource-integrity hashes pin one CDN build: the browser would reject the local copies the router
            # serves (and offline nothing else loads), so they are dropped from the served document.
            self._documents[host] = strip_integrity(html)
            try:
                page, result = await self._open(slot, host, viewport, timeout)
                break
            except _BrowserGone:
                self._documents.pop(host, None)
                await self._discard(slot)
                if attempt == 1:
                    self.stats.failures[BROWSER_CRASHED] += 1
                    raise BrowserCrashedError("the browser crashed twice while loading the same page") from None
                self.stats.retries += 1
                if not self._browser_alive():
                    await self._restart_browser(generation)
            except BaseException:
                self._documents.pop(host, None)
                await self._discard(slot)
                raise
        session = PageSession(page, result, host, slot.cdp)
        try:
            yield session
        finally:
            self._documents.pop(session.host, None)
            # A renderer that timed out or crashed may be hung: its whole context goes, not just the page.
            healthy = session.result.error not in (PAGE_TIMEOUT, PAGE_CRASHED)
            slot.result = slot.crashed = None
            if healthy:
                # The tab stays for the next document. Freezing it stops its timers and animation loops, which would
                # otherwise keep burning CPU while the slot waits (e.g. during the training step).
                try:
                    await asyncio.wait_for(slot.set_frozen(True), 5)
                except Exception:
                    healthy = False
            if healthy:
                self._release(slot)
            else:
                await self._discard(slot)

    async def _open(self, slot: _Slot, host: str, viewport, timeout: float):
        """Open a new page in `slot` and load the document served at `host`; returns `(page, RenderResult)`."""
        result = RenderResult(ok=False)
        start = time.monotonic()
        try:
            page = await slot.tab(tuple(viewport) if viewport is not None else self.viewport)
        except Exception as error:
            if not self._browser_alive() or _looks_closed(error):
                raise _BrowserGone() from error
            raise
        slot.result = result
        slot.crashed = crashed = asyncio.Event()
        url = f"http://{host}/"

        async def load():
            await page.goto(url, wait_until="load", timeout=0)
            # Web fonts (at most 1 s), two animation frames, then `settle_ms` for scripts and transitions: one call.
            await page.evaluate(
                "settle => Promise.race([document.fonts ? document.fonts.ready : null, "
                "new Promise(r => setTimeout(r, 1000))]).then(() => new Promise(r => "
                "requestAnimationFrame(() => requestAnimationFrame(r)))).then(() => new Promise(r => "
                "setTimeout(r, settle)))",
                self.settle_ms,
            )

        crash_wait = asyncio.ensure_future(crashed.wait())
        load_task = asyncio.ensure_future(load())
        try:
            done, _ = await asyncio.wait({load_task, crash_wait}, timeout=timeout, return_when="FIRST_COMPLETED")
            if load_task in done:
                load_task.result()  # re-raise a load error
            elif crash_wait in done:
                result.error = PAGE_CRASHED
            else:
                result.error = PAGE_TIMEOUT
        except Exception as error:
            if not self._browser_alive() or _looks_closed(error):
                raise _BrowserGone() from error
            result.error = PAGE_ERROR
            result.console_errors.append(f"load: {_short(str(error))}")
        finally:
            crash_wait.cancel()
            if not load_task.done():
                load_task.cancel()
                with contextlib.suppress(BaseException):
                    await load_task
        result.elapsed = time.monotonic() - start
        return page, result

    async def arender_local(self, html: str, measure: bool = True, interact: Interact | None = None) -> RenderResult:
        """Render one page; must run on the pool's loop (use [`~BrowserPool.arender`] from elsewhere)."""
        start = time.monotonic()
        self.stats.pages += 1
        async with self.session(html) as session:
            result = session.result
            if result.error is not None:  # the load timed out, crashed or failed: nothing to capture
                self.stats.failures[result.error] += 1
                result.elapsed = time.monotonic() - start
                return result
            remaining = self.page_timeout - (time.monotonic() - start)
            try:
                await asyncio.wait_for(self._capture(session, measure), timeout=max(remaining, 0.1))
                result.ok = True
                if interact is not None:
                    # The interaction hook runs in the same loaded page (one page load per completion) and bounds
                    # its own time. It gets the page back at the render viewport, with two frames drawn.
                    if session.page.viewport_size != {"width": self.viewport[0], "height": self.viewport[1]}:
                        await session.page.set_viewport_size({"width": self.viewport[0], "height": self.viewport[1]})
                        await session.page.evaluate(_FRAMES_JS)
                    result.interaction = await interact(session)
            except asyncio.TimeoutError:
                # The renderer is stuck (e.g. a JS loop started after load): the error makes the session discard
                # the context.
                result.error = PAGE_TIMEOUT
                self.stats.failures[PAGE_TIMEOUT] += 1
                await _close_quietly(session.page)
            except Exception as error:
                if not self._browser_alive() or _looks_closed(error):
                    raise
                result.error = PAGE_ERROR
                result.console_errors.append(f"capture: {_short(str(error))}")
                self.stats.failures[PAGE_ERROR] += 1
        result.elapsed = time.monotonic() - start
        return result

    async def _capture(self, session: PageSession, measure: bool) -> None:
        page, result = session.page, session.result
        metrics = await page.evaluate(_CAPTURE_JS if measure else _CAPTURE_HEIGHT_JS)
        if measure:
            result.metrics = metrics
        # One DevTools call (Playwright's `page.screenshot` makes five or more round trips per capture). A page that
        # fits the viewport is captured as it is.
        viewport = (page.viewport_size["width"], page.viewport_size["height"])
        result.screenshot = await capture_png(
            session.cdp, screenshot_params(viewport, metrics["page_height"], self.max_screenshot_height)
        )
        if measure and self.mobile_viewport is not None:
            await page.set_viewport_size({"width": self.mobile_viewport[0], "height": self.mobile_viewport[1]})
            result.metrics["mobile"] = await page.evaluate(_MOBILE_JS)

    # ------------------------------------------------------------------------------------------------------------
    # Public API
    # ------------------------------------------------------------------------------------------------------------
    async def arender(self, html: str, measure: bool = True, interact: Interact | None = None) -> RenderResult:
        """
        Render `html` and return its [`RenderResult`] (awaitable from any event loop).

        Args:
            html (`str`):
                The document.
            measure (`bool`, *optional*, defaults to `True`):
                Collect the design measurements (`result.metrics`) and check the phone viewport.
            interact (`Callable`, *optional*):
                `async interact(session) -> Any`, run on the same open page after the screenshot (e.g.
                [`~trl_ext.web.agent.InteractiveAgent.run_on`]); its return value is stored in `result.interaction`.

        Raises:
            [`BrowserCrashedError`]: the browser died twice while rendering this page (infrastructure failure).
        """
        return await self.acall(self._arender_with_retry, html, measure, interact)

    async def _arender_with_retry(self, html: str, measure: bool, interact: Interact | None = None) -> RenderResult:
        for attempt in range(2):
            try:
                return await self.arender_local(html, measure, interact)
            except Exception as error:
                if isinstance(error, BrowserCrashedError):
                    raise
                if self._browser_alive() and not _looks_closed(error):
                    raise
                if attempt == 1:
                    self.stats.failures[BROWSER_CRASHED] += 1
                    raise BrowserCrashedError(f"the browser crashed twice on the same page: {error}") from error
                self.stats.retries += 1
                await self._restart_browser(self._generation)
        raise AssertionError("unreachable")

    def render(self, html: str, measure: bool = True, interact: Interact | None = None) -> RenderResult:
        """Synchronous [`~BrowserPool.arender`]."""
        return self.call(self._arender_with_retry, html, measure, interact)

    def render_many(
        self, documents: Sequence[str], measure: bool = True, interact: Interact | None = None
    ) -> list[RenderResult | BaseException]:
        """Render several documents concurrently (at most `size` at once); failures are returned, not raised."""

        async def run_all():
            return await asyncio.gather(
                *(self._arender_with_retry(html, measure, interact) for html in documents), return_exceptions=True
            )

        return self.call(run_all)

    def browser_pids(self) -> list[int]:
        """Process ids of the browser and its children (renderers, GPU/utility processes), for memory accounting."""
        return _descendants(os.getpid(), lambda command: "chrom" in command)

    async def _aclose(self) -> None:
        if self._browser is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._browser.close(), 10)
        if self._playwright is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._playwright.stop(), 10)
        self._browser = self._playwright = self._slots = None

    def close(self) -> None:
        """Close the browser and stop the pool's loop. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None:
            return
        if _running_loop() is loop:
            raise RuntimeError("BrowserPool.close() cannot be called from the pool's own loop.")
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._aclose(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        if not thread.is_alive():
            loop.close()

    def __enter__(self) -> BrowserPool:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __del__(self):
        with contextlib.suppress(Exception):
            if not self._closed and self._loop is not None:
                self.close()

    def __getstate__(self):
        raise TypeError("BrowserPool holds a live browser and cannot be pickled; create one per process.")


class _BrowserGone(Exception):
    """The browser (or the page's connection to it) went away during a load."""


def _looks_closed(error: BaseException) -> bool:
    text = str(error)
    return any(
        needle in text
        for needle in (
            "Target page, context or browser has been closed",
            "Browser has been closed",
            "Connection closed",
        )
    )


def _record_failed(result: RenderResult, request) -> None:
    reason = request.failure or "failed"
    # Requests our router aborted because the network is closed are not the page's fault offline; they are kept
    # apart so the execution agent does not punish a page for using an image CDN.
    if "ERR_INTERNET_DISCONNECTED" in reason:
        result.blocked_requests.append(request.url)
        return
    result.failed_requests.append(f"{request.url} ({reason})")


def _short(text: str, limit: int = 300) -> str:
    text = text.strip().replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _close_quietly(target) -> None:
    if target is None:
        return
    with contextlib.suppress(Exception):
        await asyncio.wait_for(target.close(), 5)


def _descendants(root: int, keep: Callable[[str], bool]) -> list[int]:
    children: dict[int, list[int]] = {}
    commands: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                commands[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found, stack = [], list(children.get(root, []))
    while stack:
        pid = stack.pop()
        if keep(commands.get(pid, "")):
            found.append(pid)
        stack.extend(children.get(pid, []))
    return found
