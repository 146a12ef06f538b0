"""The browser pool and the interactive agent, against Debian's real Chromium."""

import asyncio
import io
import os
import signal
import threading
import time

import pytest
from PIL import Image

from trl_ext.web import BrowserPool, chromium_available
from trl_ext.web.agent import InteractiveAgent
from trl_ext.web.design_judge import HeuristicInteractionJudge
from trl_ext.web.lint import lint_html

HAVE_CHROMIUM = chromium_available()

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Chromium: `apt-get install chromium` (make installs it)"),
]


def page(body: str, head: str = "", title: str = "Test page") -> str:
    return f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n{head}\n</head>\n<body>\n{body}\n</body>\n</html>\n'


GOOD = page('<h1 id="title">Bakery</h1>\n<p>Fresh bread every morning.</p>\n<button id="b">Order</button>')


@pytest.fixture(scope="module")
def pool():
    with BrowserPool(size=2, page_timeout=6.0, settle_ms=100) as pool:
        yield pool


def test_well_formed_page_passes_lint_and_renders(pool):
    assert lint_html(GOOD).passed
    result = pool.render(GOOD)
    assert result.ok and result.error is None
    assert result.console_errors == [] and result.failed_requests == []
    image = Image.open(io.BytesIO(result.screenshot))
    assert image.format == "PNG" and image.size[0] == 1280 and image.size[1] >= 960
    assert result.metrics["headings"] == 1 and "Fresh bread" in result.metrics["text_sample"]
    assert result.metrics["mobile"]["width"] == 390


def test_full_page_screenshot_covers_tall_page_and_is_capped(pool):
    tall = page('<div style="height:3000px;background:linear-gradient(#fff,#00f)">tall</div>')
    image = Image.open(io.BytesIO(pool.render(tall).screenshot))
    assert image.size[1] >= 3000
    endless = page('<div style="height:100000px">endless</div>')
    image = Image.open(io.BytesIO(pool.render(endless).screenshot))
    assert image.size[1] == pool.max_screenshot_height


def test_broken_page_fails_lint_with_reasons():
    broken = "<html><head></head><body><DIV id=a><p id=a>unclosed<img src=''></body></html>"
    result = lint_html(broken)
    assert not result.passed
    assert {"doctype-first", "title-require", "id-unique", "src-not-empty", "tag-pair", "tagname-lowercase"} <= (
        result.failed_rules
    )


def test_javascript_errors_and_failed_resources_are_caught(pool):
    html = page(
        "<p>hi</p>\n<img src='missing.png' alt='x'>\n<script>undefinedFunction();</script>\n"
        "<script>console.error('custom failure')</script>"
    )
    result = pool.render(html)
    assert result.ok
    assert any("undefinedFunction" in error for error in result.console_errors)
    assert any("custom failure" in error for error in result.console_errors)
    assert any("missing.png" in failure and "404" in failure for failure in result.failed_requests)


def test_external_requests_are_blocked_fast_and_kept_apart(pool):
    html = page('<script src="https://cdn.example.com/lib.js"></script><img src="https://images.example.com/a.jpg">')
    start = time.monotonic()
    result = pool.render(html)
    assert result.ok and time.monotonic() - start < 4
    assert sorted(result.blocked_requests) == ["https://cdn.example.com/lib.js", "https://images.example.com/a.jpg"]
    assert result.failed_requests == []


def test_each_page_gets_a_fresh_origin(pool):
    writer = page("<script>localStorage.setItem('k', 'leak'); document.title = location.host;</script>")
    reader = page(
        "<p id=v></p><script>document.getElementById('v').textContent = localStorage.getItem('k') || 'clean';</script>"
    )
    pool.render(writer)
    assert "clean" in pool.render(reader).metrics["text_sample"]


def test_page_that_never_finishes_loading_is_cut_at_the_timeout():
    async def hang(route):
        await asyncio.sleep(3600)

    never = page('<p>waiting</p><script src="https://slow.example.com/never.js"></script>')
    with BrowserPool(size=1, page_timeout=3.0, router=hang) as pool:
        start = time.monotonic()
        result = pool.render(never)
        # Cut at the timeout, then rendered once more alone in a fresh browser (where it hangs again) before it is
        # blamed, with a control page showing that the machine is not the cause.
        assert time.monotonic() - start < 3 * pool.page_timeout + 8
        assert not result.ok and result.error == "page_timeout"
        assert pool.stats.fault_retries == 1 and pool.stats.fault_retries_passed == 0


@pytest.mark.parametrize(
    "script",
    ["while (true) {}", "setTimeout(() => { while (true) {} }, 50)"],
    ids=["loop-before-load", "loop-after-load"],
)
def test_infinite_javascript_loop_is_cut_and_the_pool_recovers(pool, script):
    start = time.monotonic()
    result = pool.render(page(f"<p>spin</p><script>{script}</script>"))
    # Cut at the timeout, and again in the lone retry (a control page clears the machine).
    assert time.monotonic() - start < 2 * pool.page_timeout + 8
    assert not result.ok and result.error == "page_timeout"
    # The stuck renderer's browser was replaced: both slots still render.
    assert all(r.ok for r in pool.render_many([GOOD, GOOD]))


def test_browser_killed_mid_batch_is_recovered():
    slow = page("<p>slow</p><script>const t = Date.now(); while (Date.now() - t < 400) {}</script>")
    with BrowserPool(size=2, page_timeout=10.0, settle_ms=100) as pool:
        assert pool.render(GOOD).ok
        pids = pool.browser_pids()
        assert pids, "the browser's processes should be visible"

        def killer():
            time.sleep(0.6)
            for pid in pool.browser_pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

        thread = threading.Thread(target=killer)
        thread.start()
        results = pool.render_many([slow] * 6)
        thread.join()
        assert all(not isinstance(r, BaseException) and r.ok for r in results), results
        assert pool.stats.browser_restarts >= 1 and pool.stats.retries >= 1
        assert pool.render(GOOD).ok


def test_pool_is_usable_from_another_event_loop(pool):
    async def two_pages():
        return await asyncio.gather(pool.arender(GOOD), pool.arender(GOOD))

    assert all(r.ok for r in asyncio.run(two_pages()))


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="size"):
        BrowserPool(size=0)
    with pytest.raises(ValueError, match="viewport"):
        BrowserPool(viewport=(0, 10))
    with pytest.raises(ValueError, match="page_timeout"):
        BrowserPool(page_timeout=0)


COUNTER = page(
    '<h1>Counter</h1>\n<p id="count">0</p>\n'
    "<button onclick=\"const c = document.getElementById('count'); c.textContent = Number(c.textContent) + 1; "
    "document.body.style.background = '#ffd';\">Add one</button>"
)
DEAD = page("<h1>Counter</h1>\n<p>0</p>\n<button>Add one</button>")


def test_interactive_agent_clicks_a_real_button_and_sees_the_change(pool):
    agent = InteractiveAgent(HeuristicInteractionJudge(), time_budget=15)
    result = pool.render(COUNTER, interact=agent.run_on("A counter with a button that adds one"))
    report = result.interaction
    assert report.elements == 1 and report.error is None
    assert [g.action.kind for g in report.graded] == ["click"]
    assert report.score == 1
    dead = pool.render(DEAD, interact=agent.run_on("A counter with a button that adds one")).interaction
    assert dead.elements == 1 and dead.score == 0


def test_interactive_agent_types_and_presses_keys(pool):
    game = page(
        '<canvas id="c" width="200" height="200"></canvas>\n<input id="name" placeholder="Your name">\n'
        "<script>const ctx = document.getElementById('c').getContext('2d'); let x = 10;\n"
        "function draw() { ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, 200, 200); ctx.fillStyle = '#c00'; "
        "ctx.fillRect(x, 90, 20, 20); }\ndraw();\n"
        "document.addEventListener('keydown', e => { if (e.key === 'ArrowRight') { x += 40; draw(); } });</script>"
    )
    agent = InteractiveAgent(HeuristicInteractionJudge(), time_budget=15)
    report = pool.render(game, interact=agent.run_on("A tiny game")).interaction
    kinds = [g.action.kind for g in report.graded]
    assert kinds[:2] == ["key", "type"]
    assert all(g.success for g in report.graded[:2]), report


def test_interactive_agent_respects_its_time_budget(pool):
    class SlowPlanner(HeuristicInteractionJudge):
        async def plan_interactions(self, *args, **kwargs):
            await asyncio.sleep(60)

    agent = InteractiveAgent(SlowPlanner(), time_budget=1.0)
    start = time.monotonic()
    report = pool.render(COUNTER, interact=agent.run_on("x")).interaction
    assert time.monotonic() - start < 6
    assert report.error == "agent_timeout" and report.score == 0


def test_cdn_page_renders_with_the_local_copies():
    from trl_ext.web.vendor import CDNRouter

    router = CDNRouter()
    if not router.available:
        pytest.skip("vendored CDN libraries not installed: `python -m trl_ext.web.vendor install` (make does it)")
    html = page(
        '<div id="box" class="bg-blue-500 text-white p-8 rounded-lg">Tailwind</div>\n'
        '<canvas id="chart" width="400" height="200"></canvas>\n'
        "<script>new Chart(document.getElementById('chart'), {type: 'bar', data: {labels: ['a', 'b', 'c'], "
        "datasets: [{data: [3, 5, 2], backgroundColor: '#e33'}]}, options: {animation: false}});</script>",
        head='<script src="https://cdn.tailwindcss.com"></script>\n'
        '<script src="https://cdn.jsdelivr.net/npm/chart.js@4.4.0/dist/chart.umd.min.js" '
        'integrity="sha384-not-the-hash-of-our-copy" crossorigin="anonymous"></script>',
    )
    with BrowserPool(size=1, router=router.handle, settle_ms=300) as pool:
        check = (
            "() => [getComputedStyle(document.getElementById('box')).paddingTop, "
            # The whole canvas: Chart.js is responsive, so its size follows the viewport changes of the render.
            "(c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"
            ".some((v, i) => i % 4 === 0 && v > 200))(document.getElementById('chart'))]"
        )

        async def render_and_check(session):
            return await session.page.evaluate(check)

        result = pool.render(html, interact=render_and_check)
    assert result.ok and result.console_errors == [] and result.failed_requests == [], result
    padding, chart_drawn = result.interaction
    assert padding == "32px"  # Tailwind's p-8 applied
    assert chart_drawn  # Chart.js drew red bars (despite the page's integrity attribute)
    assert router.served and not router.missed


def test_a_browser_busy_without_a_page_is_noticed():
    """The check that replaces a poisoned browser (a GPU process still spinning after its page is gone)."""
    import subprocess
    import sys

    from trl_ext.web.browser import _Slot

    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        slots = {}
        for name, process in (("busy", busy), ("idle", idle)):
            slots[name] = _Slot(0)
            slots[name].pid = process.pid
            slots[name].mark_idle()
        time.sleep(1.0)
        assert slots["busy"].busy_while_idle(0.05)  # even on a loaded machine it gets a share of a core
        assert not slots["idle"].busy_while_idle(0.05)
    finally:
        for process in (busy, idle):
            process.kill()
            process.wait()
