"""
A pool of long-lived headless Chromium contexts that renders generated web pages: screenshots, JavaScript errors,
failed resource loads and design measurements, under hard timeouts and with crash recovery.

The pool owns one event loop in a background thread, so it can be used from synchronous code (`render`), from any
other event loop (`arender`, e.g. TRL's loop for async rewards) and from several threads at once.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import itertools
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .types import DEFAULT_VIEWPORT, RenderResult
from .vendor import strip_integrity

logger = logging.getLogger(__name__)

T = TypeVar("T")
Interact = Callable[["PageSession"], Awaitable[Any]]

# Chromium flags for a closed network and a container: without the background-networking flags Chromium keeps
# trying to reach Google's hosts; `--no-sandbox` because CI runs as root. The last four are the flag-level network
# fence, in force even inside an empty network namespace: every host name resolves to nothing, every connection that
# Playwright's interception does not answer goes to a proxy that cannot be resolved (so WebSockets and direct IP
# addresses fail too), and WebRTC may not send UDP outside that proxy (no STUN/TURN).
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
    "--disable-crash-reporter",
    "--disable-breakpad",
    "--js-flags=--max-old-space-size=512",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=http://no-network.invalid:9",
    "--proxy-bypass-list=<-loopback>",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    # One tab per browser: the next completion's document reuses the renderer process although it is another site
    # (a process start per page would cost a third of the throughput).
    "--renderer-process-limit=1",
    "--disable-site-isolation-trials",
)
# Second viewport of the responsiveness check (a common phone width).
MOBILE_VIEWPORT = (390, 844)
# Each page is served from its own site, `http://trl-ext-<random>.invalid/` (`invalid` is the registry, so no two
# pages share a registrable domain: cookies, storage and frames cannot cross), never resolvable.
PAGE_TLD = "invalid"
# Command prefixes that run a program in an empty network namespace (only a loopback interface, down) and its own
# PID namespace (every process the browser starts dies with it), tried in order.
NETWORK_SANDBOXES = (
    ("unshare", "--net", "--pid", "--fork", "--kill-child", "--"),
    ("unshare", "--map-root-user", "--net", "--pid", "--fork", "--kill-child", "--"),
    ("bwrap", "--dev-bind", "/", "/", "--unshare-net", "--unshare-pid", "--die-with-parent", "--"),
)
# A trivial page rendered to tell a slow machine from a slow page.
CONTROL_PAGE = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Control</title></head>'
    "<body><h1>Control page</h1><p>Rendered to check the machine, not the policy.</p></body></html>"
)
# Console messages a page may send (more are dropped in the page: a `console.error` flood must not drown the driver).
MAX_CONSOLE_MESSAGES = 200
# Errors kept per page in `RenderResult.console_errors` / `failed_requests`.
MAX_RECORDED_ERRORS = 50
# Requests a page may make through the pool's interception; past it the page's requests are no longer intercepted
# (they fail in the closed network without costing the pool's loop a round trip each).
MAX_REQUESTS_PER_PAGE = 500


def network_sandbox() -> tuple[str, ...] | None:
    """
    The first of `NETWORK_SANDBOXES` that works on this machine (user namespaces allowed, the tool installed), or
    `None`: the browser then runs with the flag-level fence of `CHROMIUM_ARGS` only. `TRL_EXT_NETWORK_SANDBOX=0`
    turns the namespace off.
    """
    if os.environ.get("TRL_EXT_NETWORK_SANDBOX", "1") == "0":
        return None
    for prefix in NETWORK_SANDBOXES:
        if shutil.which(prefix[0]) is None:
            continue
        try:
            probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return prefix
    return None


# Kinds of rendering failures. `page_*` are the page's own fault (it scores zero); `browser_crashed` and
# `infrastructure` are the machine's (the sample is excluded).
PAGE_TIMEOUT = "page_timeout"
PAGE_CRASHED = "page_crashed"
PAGE_ERROR = "page_error"
PAGE_MEMORY = "page_memory"
BROWSER_CRASHED = "browser_crashed"
INFRASTRUCTURE = "infrastructure"

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
# Read in the first animation frame after the resize: the page's `resize` handlers have run by then (a page that
# spins in one is caught here, not after its score), and reading `scrollWidth` forces style and layout at the new
# width (media queries included).
_MOBILE_JS = (
    "() => new Promise(r => requestAnimationFrame(() => "
    "r({width: window.innerWidth, scroll_width: document.documentElement.scrollWidth})))"
)


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


class InfrastructureError(RuntimeError):
    """The machine, not the page, failed: the browser could not start or died twice, or a control page timed out."""


class BrowserCrashedError(InfrastructureError):
    """The browser died twice while rendering the same page: an infrastructure failure."""


@dataclass
class PoolStats:
    """Counters of the pool's life, for logging and tests."""

    pages: int = 0
    browser_launches: int = 0
    browser_restarts: int = 0
    browser_recycles: int = 0
    context_recycles: int = 0
    retries: int = 0
    fault_retries: int = 0
    fault_retries_passed: int = 0
    failures: Counter = field(default_factory=Counter)


# Injected in every frame before the page's own scripts: the console falls silent after `MAX_CONSOLE_MESSAGES`,
# `window.name` starts empty, and WebRTC is removed.
_GUARD_JS = f"""
(() => {{
  let budget = {MAX_CONSOLE_MESSAGES};
  for (const name of ["log", "info", "warn", "error", "debug", "trace", "dir", "dirxml", "table", "assert", "count",
                      "timeLog", "group", "groupCollapsed"]) {{
    const original = console[name];
    if (typeof original !== "function") continue;
    console[name] = function (...args) {{ if (budget > 0) {{ budget--; return original.apply(this, args); }} }};
  }}
  if (window === window.top) window.name = "";
  // WebRTC is the one channel the flag-level fence does not close (STUN/TURN over UDP): without a namespace it must
  // not exist. Generated pages have no peer to talk to anyway.
  for (const name of ["RTCPeerConnection", "webkitRTCPeerConnection", "RTCDataChannel", "RTCIceTransport"]) {{
    try {{ delete window[name]; }} catch (error) {{}}
  }}
}})();
"""


class _Slot:
    """
    One Chromium process (one per slot: a page that wedges its browser's GPU process or network service harms only
    its own slot, and that browser is replaced) with one context and one tab, navigated from completion to
    completion, each served from its own site.
    """

    def __init__(self, index: int):
        self.index = index
        self.browser = None
        self.pid: int | None = None  # the browser's process group (the sandbox wrapper's pid)
        self.uses = 0
        self.context = None
        self.page = None
        self.cdp = None
        self.opening = False
        # The completion being rendered: its site, its document, its requests so far.
        self.host: str | None = None
        self.body: str | None = None
        self.requests = 0
        self.result: RenderResult | None = None
        self.crashed: asyncio.Event | None = None
        self.fault: str | None = None  # set by the memory watchdog
        self.watch: asyncio.Future | None = None
        # CPU time the browser's processes spent while no page was open, and for how long: a browser still busy
        # after its page is gone (a GPU process spinning on a shader, a leftover renderer) is replaced.
        self.idle_since: tuple[float, float] | None = None
        self.idle_cpu = 0.0
        self.idle_time = 0.0

    def alive(self) -> bool:
        return self.browser is not None and self.browser.is_connected()

    def mark_idle(self) -> None:
        self.idle_since = (_tree_usage(self.pid)[0], time.monotonic()) if self.pid else None

    def busy_while_idle(self, threshold: float) -> bool:
        """Whether the browser burnt more than `threshold` cores (on average) while it had no page."""
        if self.idle_since is None or self.pid is None:
            return False
        cpu, since = self.idle_since
        self.idle_cpu += _tree_usage(self.pid)[0] - cpu
        self.idle_time += time.monotonic() - since
        self.idle_since = None
        return self.idle_time >= 0.5 and self.idle_cpu / self.idle_time > threshold

    def _error(self, text: str) -> None:
        if self.result is not None and len(self.result.console_errors) < MAX_RECORDED_ERRORS:
            self.result.console_errors.append(text)


class PageSession:
    """
    A loaded page held open inside the pool (see [`BrowserPool.session`]); the interactive agent drives it.

    Attributes:
        page: The Playwright `Page` (async API).
        result ([`RenderResult`]): What the load produced so far (errors, failed requests).
        cdp: The page's DevTools session (Playwright `CDPSession`).
    """

    def __init__(self, page, result: RenderResult, host: str, cdp=None, slot: _Slot | None = None):
        self.page = page
        self.result = result
        self.host = host
        self.cdp = cdp
        self._slot = slot

    async def screenshot(self) -> bytes:
        """PNG of the viewport with CSS animations settled (the interactive agent's before/after views)."""
        return await self.page.screenshot(type="png", animations="disabled", caret="hide")


class BrowserPool:
    """
    Renders HTML documents in a pool of long-lived Chromium processes (exactly `size` of them, one per slot), never
    a browser per page; each page gets a fresh browser context in its slot's browser.

    Isolation: each page is served from its own site (`http://trl-ext-<random>.invalid/`, only to its own context),
    so cookies, storage, `window.name` and frames cannot reach another completion. Chromium runs in an empty network
    namespace where the machine allows it (`unshare -n` or `bwrap --unshare-net`, see [`network_sandbox`]; Playwright
    talks to it over a pipe and serves the document and the CDN copies by interception), so WebSockets, WebRTC and DNS
    have nowhere to go; the flag-level fence of `CHROMIUM_ARGS` is in force either way. Which one holds is logged
    (`network_isolation`). Popups are closed as they open; the console falls silent after `MAX_CONSOLE_MESSAGES`
    messages; a browser whose processes use more than `max_browser_memory_mb` is killed (`"page_memory"`).

    Deadlines: every step (browser start, context, tab, load, capture, phone resize, the `interact` hook) is bounded,
    so a call returns within about `page_timeout + interact_timeout` per attempt. A page that does not load or settle
    within `page_timeout` gets `error="page_timeout"` and its context is closed (a context that does not close in 5 s
    takes its browser with it); a crashed renderer gets `"page_crashed"` and its browser is replaced; a browser that
    keeps burning CPU with no page open (a GPU process still busy, a leftover renderer) is replaced before its next
    page. With
    `confirm_faults` (the default), such a page is first rendered again alone in a fresh browser: if it renders there
    it is scored normally; if it fails again while a control page fails as well (or takes more than half of
    `page_timeout`), the machine is the cause and [`InfrastructureError`] is raised. A browser that dies is replaced
    and the page retried once; if that fails too, [`BrowserCrashedError`] is raised.

    Args:
        size (`int`, *optional*, defaults to `4`):
            Number of browsers, i.e. pages rendered concurrently.
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
            A browser is replaced after this many pages, bounding the memory a long run can leak.
        executable_path (`str`, *optional*):
            Chromium executable. Defaults to [`find_chromium`].
        launch_args (`Sequence[str]`, *optional*):
            Extra Chromium flags.
        interact_timeout (`float`, *optional*, defaults to `120.0`):
            Hard limit in seconds for the `interact` hook (which should bound itself well below it).
        launch_timeout (`float`, *optional*, defaults to `30.0`):
            Hard limit in seconds for starting Playwright or one browser.
        confirm_faults (`bool`, *optional*, defaults to `True`):
            Render a page that timed out or crashed again alone in a fresh browser before blaming it (see above).
        max_browser_memory_mb (`int`, *optional*, defaults to `3072`):
            Resident memory of one browser's processes above which the page in it is killed.
        idle_cpu_threshold (`float`, *optional*, defaults to `0.8`):
            Cores a browser may burn on average while it has no page before it is replaced.

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
        interact_timeout: float = 120.0,
        launch_timeout: float = 30.0,
        confirm_faults: bool = True,
        max_browser_memory_mb: int = 3072,
        idle_cpu_threshold: float = 0.8,
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
        self.interact_timeout = float(interact_timeout)
        self.launch_timeout = float(launch_timeout)
        self.confirm_faults = confirm_faults
        self.max_browser_memory_mb = max_browser_memory_mb
        self.idle_cpu_threshold = idle_cpu_threshold
        self.network_isolation: str | None = None  # "namespace (...)" or "flags", once started
        self.stats = PoolStats()

        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._workdir: str | None = None
        self._wrapper: str | None = None
        self._launch_ids = itertools.count()
        self._browser_pids: set[int] = set()  # every browser this pool started and has not reaped
        # Created on the pool's loop.
        self._playwright = None
        self._start_task: asyncio.Future | None = None
        self._slots: asyncio.Queue | None = None
        self._all_slots: list[_Slot] = []
        self._alone_lock: asyncio.Lock | None = None
        self._background: set[asyncio.Future] = set()
        atexit_close = weakref.WeakMethod(self.close)
        _register_exit(lambda: (atexit_close() or (lambda: None))())

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

    def call(
        self, coroutine_function: Callable[..., Awaitable[T]], *args, timeout: float | None = None, **kwargs
    ) -> T:
        """
        Run `coroutine_function(*args, **kwargs)` on the pool's loop and wait for its result (synchronous API), at
        most `timeout` seconds (then the coroutine is cancelled and `TimeoutError` raised).
        """
        if self._loop is not None and _running_loop() is self._loop:
            raise RuntimeError("BrowserPool.call() cannot be used from the pool's own loop; await the coroutine.")
        future = self.submit(coroutine_function, *args, **kwargs)
        try:
            return future.result(timeout=timeout)
        except TimeoutError:
            future.cancel()
            raise

    async def acall(self, coroutine_function: Callable[..., Awaitable[T]], *args, **kwargs) -> T:
        """Await `coroutine_function(*args, **kwargs)` run on the pool's loop, from any other event loop."""
        loop = self._ensure_loop()
        if _running_loop() is loop:
            return await coroutine_function(*args, **kwargs)
        return await asyncio.wrap_future(self.submit(coroutine_function, *args, **kwargs))

    def attempt_timeout(self) -> float:
        """Longest one render attempt can take: load and capture, the `interact` hook, closing, slack."""
        return self.page_timeout + self.interact_timeout + 15.0

    def render_timeout(self) -> float:
        """Longest `render` can take, including a fault's lone retry and control page and a browser restart."""
        return 2 * self.attempt_timeout() + self.page_timeout + 2 * self.launch_timeout + 15.0

    # ------------------------------------------------------------------------------------------------------------
    # Browser lifecycle (pool loop only)
    # ------------------------------------------------------------------------------------------------------------
    async def _start(self) -> None:
        # Every caller awaits the one start: pages arriving during a cold start wait for it instead of starting their
        # own Playwright and browsers. A failed start is forgotten, so the next page tries again.
        if self._start_task is None:
            self._start_task = asyncio.ensure_future(self._start_once())
        task = self._start_task
        try:
            await asyncio.shield(task)
        except BaseException:
            if task.done() and (task.cancelled() or task.exception() is not None) and self._start_task is task:
                self._start_task = None
            raise

    async def _start_once(self) -> None:
        from playwright.async_api import async_playwright

        sandbox = await asyncio.get_running_loop().run_in_executor(None, network_sandbox)
        self._workdir = tempfile.mkdtemp(prefix="trl_ext_browser_")
        wrapper = Path(self._workdir) / "chromium"
        # The wrapper records its pid (the browser's process group) so that the pool can always kill what it
        # started, then becomes the sandbox, which runs the browser.
        command = " ".join(shlex.quote(part) for part in (*(sandbox or ()), self.executable_path))
        wrapper.write_text(f'#!/bin/sh\necho $$ > "$TRL_EXT_PIDFILE"\nexec {command} "$@"\n')
        wrapper.chmod(0o755)
        self._wrapper = str(wrapper)
        if sandbox is not None:
            self.network_isolation = f"namespace ({sandbox[0]})"
            logger.info("Chromium runs in an empty network namespace (%s) with the flag-level fence.", sandbox[0])
        else:
            self.network_isolation = "flags"
            logger.warning(
                "No network namespace available (unshare/bwrap failed): Chromium is fenced by flags only (proxy to "
                "nowhere, host resolver rules, WebRTC policy)."
            )
        manager = async_playwright()
        self._playwright = await asyncio.wait_for(manager.start(), self.launch_timeout)
        self._alone_lock = asyncio.Lock()
        self._all_slots = [_Slot(index) for index in range(self.size)]
        self._slots = asyncio.Queue()
        for slot in self._all_slots:
            self._slots.put_nowait(slot)

    async def _launch(self, slot: _Slot) -> None:
        """
        Start a browser for `slot`, each try bounded by `launch_timeout`; a second failure in a row raises
        `InfrastructureError`.
        """
        for attempt in range(2):
            pidfile = Path(self._workdir) / f"browser-{next(self._launch_ids)}.pid"
            try:
                slot.browser = await asyncio.wait_for(
                    self._playwright.chromium.launch(
                        executable_path=self._wrapper,
                        args=self.launch_args,
                        headless=True,
                        timeout=self.launch_timeout * 1000,
                        env={**os.environ, "TRL_EXT_PIDFILE": str(pidfile)},
                        handle_sigint=False,
                        handle_sigterm=False,
                        handle_sighup=False,
                    ),
                    self.launch_timeout + 5,
                )
                break
            except Exception as error:
                _kill_group(_read_pid(pidfile))
                slot.browser = None
                if attempt == 1:
                    self.stats.failures[INFRASTRUCTURE] += 1
                    raise InfrastructureError(f"Chromium did not start (twice): {error}") from error
                logger.warning("Chromium did not start (%s); trying again.", _short(str(error)))
            finally:
                pid = _read_pid(pidfile)
                with contextlib.suppress(OSError):
                    pidfile.unlink()
        slot.pid = pid
        if pid is not None:
            self._browser_pids.add(pid)
        slot.uses = 0
        slot.idle_cpu = slot.idle_time = 0.0
        slot.idle_since = None
        self.stats.browser_launches += 1

    def _kill_browser(self, slot: _Slot) -> None:
        """Kill the slot's browser now (no await: safe while being cancelled); Playwright's side is closed later."""
        browser, pid = slot.browser, slot.pid
        slot.browser = slot.pid = slot.context = slot.page = slot.cdp = None
        if pid is not None:
            _kill_group(pid)
            self._browser_pids.discard(pid)
        if browser is not None:
            self._in_background(_close_quietly(browser))

    def _in_background(self, coroutine) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _acquire(self) -> _Slot:
        await self._start()
        slot = await self._slots.get()
        try:
            if slot.alive() and slot.busy_while_idle(self.idle_cpu_threshold):
                logger.warning("Browser %d kept burning CPU with no page open; replacing it.", slot.index)
                self.stats.browser_recycles += 1
                self._kill_browser(slot)
            elif slot.alive() and slot.uses >= self.max_pages_per_context:
                self.stats.context_recycles += 1
                self._kill_browser(slot)
            if not slot.alive():
                if slot.browser is not None or slot.pid is not None:
                    self.stats.browser_restarts += 1
                    self._kill_browser(slot)
                await self._launch(slot)
        except BaseException:
            self._slots.put_nowait(slot)
            raise
        slot.uses += 1
        return slot

    async def _release(self, slot: _Slot, outcome: str) -> None:
        """
        Hand the slot back after a page. `outcome`: `"ok"` (the tab leaves the document for `about:blank`, which runs
        its unload handlers now and stops its timers, and the cookies are cleared), `"tab"` (a timed-out or crashed
        renderer: the tab is closed) or `"browser"` (the browser is killed). A step that does not finish in time
        takes the browser with it; the browser is replaced on the slot's next use.
        """
        if slot.watch is not None:
            slot.watch.cancel()
        slot.result = slot.crashed = slot.watch = slot.fault = None
        slot.host = slot.body = None
        if slot.requests > MAX_REQUESTS_PER_PAGE:
            outcome = "browser"  # its interception was switched off
        try:
            if outcome == "ok" and slot.page is not None:
                await asyncio.wait_for(slot.page.goto("about:blank"), 3)
                await asyncio.wait_for(slot.context.clear_cookies(), 3)
            elif outcome == "tab" and slot.page is not None:
                page, slot.page, slot.cdp = slot.page, None, None
                await asyncio.wait_for(page.close(), 3)
        except BaseException:
            outcome = "browser"
        if outcome == "browser":
            self.stats.browser_recycles += 1
            self._kill_browser(slot)
        else:
            slot.mark_idle()
        if slot.index >= 0:  # a lone retry's browser is not one of the pool's
            self._slots.put_nowait(slot)

    def _route_for(self, slot: _Slot):
        async def route_request(route) -> None:
            url = route.request.url
            slot.requests += 1
            if slot.requests == MAX_REQUESTS_PER_PAGE:
                slot._error(f"request flood: more than {MAX_REQUESTS_PER_PAGE} requests, the rest were not served")
                if slot.context is not None:
                    self._in_background(_quietly(slot.context.unroute_all(behavior="ignoreErrors")))
            try:
                if url.startswith(("http://", "https://")):
                    request_host = url.split("/", 3)[2].split("@")[-1].split(":")[0].lower()
                    if request_host == slot.host and slot.body is not None:
                        path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
                        if path.split("?")[0].split("#")[0] in ("/", "/index.html"):
                            await route.fulfill(status=200, content_type="text/html; charset=utf-8", body=slot.body)
                        else:
                            await route.fulfill(status=404, content_type="text/plain", body="not found")
                    elif self.router is not None and not request_host.endswith("." + PAGE_TLD):
                        await self.router(route)
                    else:  # another page's site, or the closed network
                        await route.abort("internetdisconnected")
                elif url.startswith(("data:", "blob:", "about:")):
                    await route.continue_()
                else:
                    await route.abort("blockedbyclient")
            except Exception as error:  # the page went away while the request was in flight
                logger.debug("route for %s not handled: %s", url, error)

        return route_request

    async def _tab(self, slot: _Slot, viewport: tuple[int, int], bounded):
        """The slot's tab (its context and tab are made once per browser), at `viewport`."""
        if slot.context is None:
            slot.context = context = await bounded(
                slot.browser.new_context(
                    viewport={"width": viewport[0], "height": viewport[1]},
                    device_scale_factor=1,
                    java_script_enabled=True,
                    service_workers="block",
                    reduced_motion="no-preference",
                )
            )
            await bounded(context.route("**/*", self._route_for(slot)))
            await bounded(context.route_web_socket(re.compile(r".*"), _refuse_websocket))
            await bounded(context.add_init_script(_GUARD_JS))
            # Popups (window.open, target=_blank) would keep running: they are closed as they open.
            context.on("page", lambda popup: not slot.opening and self._in_background(_close_quietly(popup)))
        if slot.page is None or slot.page.is_closed():
            slot.opening = True
            try:
                page = await bounded(slot.context.new_page())
            finally:
                slot.opening = False
            slot.cdp = await bounded(slot.context.new_cdp_session(page))
            page.on("crash", lambda _: slot.crashed is not None and slot.crashed.set())
            page.on("pageerror", lambda error: slot._error(f"uncaught: {_short(str(error))}"))
            page.on(
                "console",
                lambda message: (
                    slot._error(f"console.error: {_short(message.text)}")
                    if message.type == "error" and not message.text.startswith("Failed to load resource")
                    else None
                ),
            )
            page.on("requestfailed", lambda request: slot.result is not None and _record_failed(slot.result, request))
            page.on(
                "response",
                lambda response: (
                    slot.result.failed_requests.append(f"{response.url} (HTTP {response.status})")
                    if response.status >= 400
                    and slot.result is not None
                    and len(slot.result.failed_requests) < MAX_RECORDED_ERRORS
                    else None
                ),
            )
            # A `beforeunload` prompt would block the next navigation: accept it; other dialogs are dismissed.
            page.on(
                "dialog",
                lambda dialog: self._in_background(
                    _quietly(dialog.accept() if dialog.type == "beforeunload" else dialog.dismiss())
                ),
            )
            slot.page = page
        if slot.page.viewport_size != {"width": viewport[0], "height": viewport[1]}:
            await bounded(slot.page.set_viewport_size({"width": viewport[0], "height": viewport[1]}))
        return slot.page

    # ------------------------------------------------------------------------------------------------------------
    # Rendering (pool loop only)
    # ------------------------------------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def session(
        self, html: str, viewport: tuple[int, int] | None = None, timeout: float | None = None, _slot=None
    ) -> AsyncIterator[PageSession]:
        """
        Load `html` in a fresh context of a pooled browser and keep the page open inside the `async with` block (on
        the pool's loop: use it in a coroutine passed to [`~BrowserPool.call`] / [`~BrowserPool.acall`]).

        The load itself is bounded by `timeout` (default `page_timeout`); on a timeout the session still opens (the
        page may be partially usable) with `result.error == "page_timeout"`. A crashed browser is restarted and the
        load retried once.
        """
        timeout = self.page_timeout if timeout is None else timeout
        # Subresource-integrity hashes pin one CDN build: the browser would reject the local copies the router serves
        # (and offline nothing else loads), so they are dropped from the served document.
        body = strip_integrity(html)
        for attempt in range(2):
            slot = _slot if _slot is not None else await self._acquire()
            if _slot is not None and not slot.alive():
                await self._launch(slot)
            host = f"trl-ext-{secrets.token_hex(8)}.{PAGE_TLD}"
            try:
                page, cdp, result = await self._open(slot, host, body, viewport, timeout)
                break
            except _BrowserGone:
                await self._release(slot, "browser")
                self.stats.browser_restarts += 1
                if attempt == 1:
                    self.stats.failures[BROWSER_CRASHED] += 1
                    raise BrowserCrashedError("the browser crashed twice while loading the same page") from None
                self.stats.retries += 1
            except BaseException:
                await self._release(slot, "browser")
                raise
        session = PageSession(page, result, host, cdp, slot)
        outcome = "browser"  # the block raised or was cancelled: nothing about the browser can be trusted
        try:
            yield session
            # A renderer that timed out or crashed goes with its tab; a memory hog takes its browser. If the browser
            # then stays busy without a page (a GPU process still burning), it is replaced before its next page.
            error = session.result.error
            outcome = "browser" if error == PAGE_MEMORY else "tab" if error in (PAGE_TIMEOUT, PAGE_CRASHED) else "ok"
        finally:
            await self._release(slot, outcome)

    async def _watch_memory(self, slot: _Slot, result: RenderResult) -> None:
        """Kill the browser of a page whose processes grow past `max_browser_memory_mb`."""
        limit = self.max_browser_memory_mb * 2**20
        while slot.pid is not None:
            await asyncio.sleep(0.5)
            if slot.pid is not None and _tree_usage(slot.pid)[1] > limit:
                logger.warning("A page grew its browser past %d MB; killing it.", self.max_browser_memory_mb)
                slot.fault = result.error = PAGE_MEMORY
                if slot.crashed is not None:
                    slot.crashed.set()
                self._kill_browser(slot)
                return

    async def _open(self, slot: _Slot, host: str, body: str, viewport, timeout: float):
        """Load `body`, served at `host`, in the tab of `slot`; returns `(page, cdp, result)`."""
        result = RenderResult(ok=False)
        start = time.monotonic()
        viewport = tuple(viewport) if viewport is not None else self.viewport

        def bounded(awaitable):
            return asyncio.wait_for(awaitable, max(0.5, timeout - (time.monotonic() - start)))

        try:
            page = await self._tab(slot, viewport, bounded)
            cdp = slot.cdp
        except asyncio.TimeoutError as error:
            # A tab that cannot be made or resized in time: the browser is wedged or the machine starved.
            raise _BrowserGone() from error
        except Exception as error:
            if not slot.alive() or _looks_closed(error):
                raise _BrowserGone() from error
            raise
        slot.host, slot.body, slot.requests = host, body, 0
        slot.result = result
        slot.crashed = crashed = asyncio.Event()
        slot.watch = asyncio.ensure_future(self._watch_memory(slot, result))
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
            remaining = max(0.5, timeout - (time.monotonic() - start))
            done, _ = await asyncio.wait({load_task, crash_wait}, timeout=remaining, return_when="FIRST_COMPLETED")
            if crash_wait in done:
                result.error = slot.fault or PAGE_CRASHED
            elif load_task in done:
                load_task.result()  # re-raise a load error
                if not _at_home(page, host):
                    result.error = PAGE_ERROR
                    slot._error(f"navigated away from its own document to {_short(page.url, 120)}")
            else:
                result.error = PAGE_TIMEOUT
        except Exception as error:
            if slot.fault is not None:
                result.error = slot.fault
            elif not slot.alive() or _looks_closed(error):
                raise _BrowserGone() from error
            else:
                result.error = PAGE_ERROR
                slot._error(f"load: {_short(str(error))}")
        finally:
            crash_wait.cancel()
            if not load_task.done():
                load_task.cancel()
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(load_task, 2)
        result.elapsed = time.monotonic() - start
        return page, cdp, result

    async def arender_local(
        self, html: str, measure: bool = True, interact: Interact | None = None, _slot=None
    ) -> RenderResult:
        """Render one page; must run on the pool's loop (use [`~BrowserPool.arender`] from elsewhere)."""
        start = time.monotonic()
        self.stats.pages += 1
        async with self.session(html, _slot=_slot) as session:
            result = session.result
            if result.error is not None:  # the load timed out, crashed or failed: nothing to capture
                self.stats.failures[result.error] += 1
                result.elapsed = time.monotonic() - start
                return result
            remaining = self.page_timeout - (time.monotonic() - start)
            try:
                await asyncio.wait_for(self._capture(session, measure), timeout=max(remaining, 0.5))
                if not _at_home(session.page, session.host):
                    raise _NavigatedAway(session.page.url)
                result.ok = True
                if interact is not None:
                    # The interaction hook runs in the same loaded page (one page load per completion) and bounds
                    # its own time (`interact_timeout` is the backstop). It gets the page back at the render
                    # viewport, with two frames drawn.
                    result.interaction = await asyncio.wait_for(
                        self._interact(session, interact), timeout=self.interact_timeout
                    )
            except asyncio.TimeoutError:
                # The renderer is stuck (e.g. a JS loop started after load, a busy resize handler): the error makes
                # the session replace the browser.
                result.ok = False
                result.error = PAGE_TIMEOUT
                self.stats.failures[PAGE_TIMEOUT] += 1
            except _NavigatedAway as away:
                result.ok = False
                result.error = PAGE_ERROR
                session.result.console_errors.append(f"navigated away from its own document to {_short(str(away))}")
                self.stats.failures[PAGE_ERROR] += 1
            except Exception as error:
                if result.error == PAGE_MEMORY:
                    self.stats.failures[PAGE_MEMORY] += 1
                    result.ok = False
                elif _looks_closed(error) or not session._slot.alive():
                    raise
                else:
                    result.ok = False
                    result.error = PAGE_ERROR
                    result.console_errors.append(f"capture: {_short(str(error))}")
                    self.stats.failures[PAGE_ERROR] += 1
        result.elapsed = time.monotonic() - start
        return result

    async def _interact(self, session: PageSession, interact: Interact) -> Any:
        page = session.page
        if page.viewport_size != {"width": self.viewport[0], "height": self.viewport[1]}:
            await page.set_viewport_size({"width": self.viewport[0], "height": self.viewport[1]})
            await page.evaluate(_FRAMES_JS)
        return await interact(session)

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
            [`InfrastructureError`] (or its subclass [`BrowserCrashedError`]): the machine failed, not the page.
        """
        return await self.acall(self.arender_confirmed, html, measure, interact)

    async def arender_confirmed(
        self, html: str, measure: bool = True, interact: Interact | None = None
    ) -> RenderResult:
        """
        [`~BrowserPool.arender_local`] with crash recovery and, with `confirm_faults`, a page that timed out or
        crashed rendered again alone in a fresh browser before it is blamed (pool loop only).
        """
        result = await self._arender_with_retry(html, measure, interact)
        if not self.confirm_faults or result.error not in (PAGE_TIMEOUT, PAGE_CRASHED):
            return result
        return await self._confirm_fault(html, measure, interact, result)

    async def _confirm_fault(self, html: str, measure: bool, interact: Interact | None, first: RenderResult):
        async with self._alone_lock:  # one lone retry at a time, in a browser of its own
            self.stats.fault_retries += 1
            slot = _Slot(-1)
            try:
                await self._launch(slot)
                try:
                    retry = await self.arender_local(html, measure, interact, _slot=slot)
                except InfrastructureError:
                    raise
                except Exception as error:  # it took its lone browser down with it
                    logger.warning("A page's lone retry lost its browser: %s", _short(str(error)))
                    retry = first
                if retry.error not in (PAGE_TIMEOUT, PAGE_CRASHED):
                    self.stats.fault_retries_passed += retry.ok
                    return retry
                # Failed again, alone: the page is to blame unless the machine cannot render a trivial page either.
                started = time.monotonic()
                try:
                    control = await self.arender_local(CONTROL_PAGE, measure=False, _slot=slot)
                except InfrastructureError:
                    raise
                except Exception as error:
                    control = RenderResult(ok=False, error=f"control page failed: {_short(str(error))}")
                if not control.ok or time.monotonic() - started > 0.5 * self.page_timeout:
                    self.stats.failures[INFRASTRUCTURE] += 1
                    logger.warning(
                        "A page failed twice (%s) and a control page took %.1f s (%s): counted as an infrastructure "
                        "failure, not the page's.",
                        retry.error,
                        time.monotonic() - started,
                        control.error or "ok",
                    )
                    raise InfrastructureError(f"the machine is too slow: a control page {control.error or 'lagged'}")
                return retry
            finally:
                self._kill_browser(slot)

    async def _arender_with_retry(self, html: str, measure: bool, interact: Interact | None = None) -> RenderResult:
        for attempt in range(2):
            try:
                return await self.arender_local(html, measure, interact)
            except InfrastructureError:
                raise
            except Exception as error:
                if not _looks_closed(error) and not isinstance(error, _BrowserGone):
                    raise
                if attempt == 1:
                    self.stats.failures[BROWSER_CRASHED] += 1
                    raise BrowserCrashedError(f"the browser crashed twice on the same page: {error}") from error
                self.stats.retries += 1
                self.stats.browser_restarts += 1
        raise AssertionError("unreachable")

    def render(self, html: str, measure: bool = True, interact: Interact | None = None) -> RenderResult:
        """Synchronous [`~BrowserPool.arender`]."""
        return self.call(self.arender_confirmed, html, measure, interact, timeout=self.render_timeout())

    def render_many(
        self, documents: Sequence[str], measure: bool = True, interact: Interact | None = None
    ) -> list[RenderResult | BaseException]:
        """Render several documents concurrently (at most `size` at once); failures are returned, not raised."""

        async def run_all():
            return await asyncio.gather(
                *(self.arender_confirmed(html, measure, interact) for html in documents), return_exceptions=True
            )

        rounds = -(-len(documents) // self.size) + 1
        return self.call(run_all, timeout=rounds * self.render_timeout())

    def browser_pids(self) -> list[int]:
        """Process ids of the browsers and their children (renderers, GPU/utility processes), for memory accounting."""
        return _descendants(os.getpid(), lambda command: "chrom" in command)

    async def _aclose(self) -> None:
        for slot in self._all_slots:
            if slot.browser is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(slot.browser.close(), 5)
            self._kill_browser(slot)
        for pid in list(self._browser_pids):
            _kill_group(pid)
        self._browser_pids.clear()
        if self._background:
            await asyncio.wait(list(self._background), timeout=5)
        if self._playwright is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._playwright.stop(), 10)
        self._playwright = self._slots = None

    def close(self) -> None:
        """Close the browsers and the Playwright driver and stop the pool's loop (no process is left). Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is not None:
            if _running_loop() is loop:
                raise RuntimeError("BrowserPool.close() cannot be called from the pool's own loop.")
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._aclose(), loop).result(timeout=40)
            for pid in list(self._browser_pids):  # if the loop was stuck
                _kill_group(pid)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            if not thread.is_alive():
                loop.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)

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


class _NavigatedAway(Exception):
    """The page left its own document (for a blocked URL: Chromium's error page would be scored as its work)."""


def _at_home(page, host: str) -> bool:
    return urlsplit(page.url).hostname == host


async def _refuse_websocket(websocket) -> None:
    # Never connected to a server: the page's WebSocket is closed before it could reach anything.
    await _quietly(websocket.close())


async def _quietly(awaitable, timeout: float = 5) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(awaitable, timeout)


_EXIT_HOOKS: list[Callable[[], Any]] = []


def _register_exit(hook: Callable[[], Any]) -> None:
    """Run `hook` at interpreter exit (pools close their browsers even when nobody called `close`)."""
    if not _EXIT_HOOKS:
        atexit.register(lambda: [hook() for hook in reversed(_EXIT_HOOKS)])
    _EXIT_HOOKS.append(hook)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _kill_group(pid: int | None) -> None:
    """SIGKILL the process group `pid` leads (a browser: its sandbox, the browser and every child it started)."""
    if pid is None:
        return
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            command = f.read()
        if not any(name in command for name in (b"chrom", b"unshare", b"bwrap", b"trl_ext_browser_")):
            return  # the pid was reused by a process that is not ours
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except (OSError, ProcessLookupError):
        pass


def _tree_usage(root: int) -> tuple[float, int]:
    """CPU seconds used so far and resident bytes of `root` and all its descendants."""
    children: dict[int, list[int]] = {}
    usage: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        children.setdefault(int(fields[1]), []).append(pid)
        usage[pid] = (int(fields[11]) + int(fields[12]), int(fields[21]))
    ticks = rss = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        cpu, pages = usage.get(pid, (0, 0))
        ticks, rss = ticks + cpu, rss + pages
        stack.extend(children.get(pid, []))
    return ticks / _CLOCK_TICKS, rss * _PAGE_SIZE


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


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
        if len(result.blocked_requests) < MAX_RECORDED_ERRORS:
            result.blocked_requests.append(request.url)
        return
    if len(result.failed_requests) < MAX_RECORDED_ERRORS:
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
