"""
Pages scored per second: the pooled renderer (long-lived Chromium contexts) against a new browser per page, both at
the same concurrency and doing the same work (load, settle, design measurements, full-page screenshot), plus the
whole agentic reward (lint + render + design judge + GUI agent). Peak memory is the summed PSS of every Chromium
process (this Python process, which holds torch for the trainer, is left out), sampled every 50 ms.

    python benchmarks/agentic_reward.py [--pages 48] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time

from trl_ext.rewards.agentic import AgenticAestheticReward
from trl_ext.web import BrowserPool
from trl_ext.web.browser import _CAPTURE_JS, _MOBILE_JS, CHROMIUM_ARGS, capture_png, find_chromium, screenshot_params

PAGES = [
    """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Page {i}</title><style>
body {{ font-family: sans-serif; margin: 0; background: #f7f7fb; color: #222; }}
header {{ background: #2d3a8c; color: #fff; padding: 32px; }} main {{ max-width: 900px; margin: auto; padding: 24px; }}
.card {{ background: #fff; border-radius: 8px; padding: 16px; margin: 12px 0; box-shadow: 0 1px 4px #0002; }}
</style></head><body><header><h1>Product {i}</h1><p>Landing page number {i}</p></header><main>
<div class="card"><h2>Features</h2><ul><li>Fast</li><li>Reliable</li><li>Offline</li></ul></div>
<div class="card"><h2>Pricing</h2><p id="p">$ {i}9 / month</p>
<button onclick="document.getElementById('p').textContent = 'Thanks!'">Buy</button></div>
<div class="card"><h2>Contact</h2><input placeholder="Email"><button>Send</button></div></main></body></html>""",
    """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Chart {i}</title></head><body>
<h1>Canvas chart {i}</h1><canvas id="c" width="600" height="300"></canvas><script>
const ctx = document.getElementById('c').getContext('2d');
for (let k = 0; k < 12; k++) {{ ctx.fillStyle = `hsl(${{k * 30}}, 70%, 50%)`; ctx.fillRect(20 + k * 48, 300 - (k * 37 + {i}) % 280, 36, 300); }}
</script></body></html>""",
]


def chromium_pids():
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if b"chrom" in f.read(200):
                        pids.append(entry)
            except OSError:
                pass
    return pids


def wait_for_no_chromium(timeout=30.0):
    """Let the previous measurement's Chromium processes exit, so they are not counted in the next one."""
    deadline = time.monotonic() + timeout
    while chromium_pids() and time.monotonic() < deadline:
        time.sleep(0.1)


class PeakMemory:
    """
    Peak of the Chromium processes' summed proportional set size (PSS: memory shared between processes, such as the
    browser's libraries, is split between them instead of counted once per process), sampled in a thread.
    """

    def __init__(self, interval=0.05):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    @staticmethod
    def _pss(pid):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(self._pss(pid) for pid in chromium_pids()))
            time.sleep(self.interval)

    def __enter__(self):
        wait_for_no_chromium()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


async def browser_per_page(documents, concurrency):
    """The naive renderer: launch Chromium, render one page, close it."""
    from playwright.async_api import async_playwright

    executable = find_chromium()
    semaphore = asyncio.Semaphore(concurrency)
    async with async_playwright() as playwright:

        async def one(html):
            async with semaphore:
                browser = await playwright.chromium.launch(executable_path=executable, args=list(CHROMIUM_ARGS))
                try:
                    context = await browser.new_context(viewport={"width": 1280, "height": 960})
                    page = await context.new_page()
                    cdp = await context.new_cdp_session(page)

                    async def serve(route):
                        if route.request.url.startswith("http://bench.invalid/"):
                            await route.fulfill(status=200, content_type="text/html", body=html)
                        else:
                            await route.abort("internetdisconnected")

                    await page.route("**/*", serve)
                    # The same calls as the pool makes for one page.
                    await page.goto("http://bench.invalid/", wait_until="load")
                    await page.evaluate(
                        "() => document.fonts.ready.then(() => new Promise(r => requestAnimationFrame(() => "
                        "requestAnimationFrame(r)))).then(() => new Promise(r => setTimeout(r, 100)))"
                    )
                    metrics = await page.evaluate(_CAPTURE_JS)
                    await capture_png(cdp, screenshot_params((1280, 960), metrics["page_height"], 6000))
                    await page.set_viewport_size({"width": 390, "height": 844})
                    await page.evaluate(_MOBILE_JS)
                finally:
                    await browser.close()

        await asyncio.gather(*(one(html) for html in documents))


def run_naive(documents, concurrency):
    start = time.perf_counter()
    asyncio.run(browser_per_page(documents, concurrency))
    return time.perf_counter() - start


def run_pooled(documents, concurrency):
    pool = BrowserPool(size=concurrency, settle_ms=100)
    # Start-up (the browser, and each slot's context and tab) is paid once per run, not per page: warm every slot.
    pool.render_many(documents[:concurrency])
    start = time.perf_counter()
    results = pool.render_many(documents)
    seconds = time.perf_counter() - start
    pool.close()
    assert all(not isinstance(r, BaseException) and r.ok for r in results)
    return seconds


def run_full_reward(documents, concurrency):
    pool = BrowserPool(size=concurrency, settle_ms=100)
    reward = AgenticAestheticReward(pool=pool, agent_time_budget=15)
    pool.render_many(documents[:concurrency])
    start = time.perf_counter()
    scores = reward.combined(prompts=["A product landing page"] * len(documents), completions=documents)
    seconds = time.perf_counter() - start
    reward.close()
    pool.close()
    assert all(s is not None for s in scores)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    documents = [PAGES[i % len(PAGES)].format(i=i) for i in range(args.pages)]
    rows = []
    for name, run in [
        ("new browser per page", run_naive),
        ("pooled contexts", run_pooled),
        ("full agentic reward (pooled, + judge + GUI agent)", run_full_reward),
    ]:
        # Timed without the memory sampler (reading /proc costs CPU, more so with many short-lived processes), then
        # run again under the sampler for the peak.
        wait_for_no_chromium()
        seconds = run(documents, args.concurrency)
        with PeakMemory() as memory:
            run(documents, args.concurrency)
        rows.append((name, seconds, memory.peak))

    (_, naive, naive_peak), (_, pooled, pooled_peak) = rows[:2]
    print(f"{args.pages} pages, concurrency {args.concurrency}, {os.cpu_count()} CPU cores")
    print("| renderer | pages/s | s/page | peak PSS (MiB) |\n|---|---|---|---|")
    for name, seconds, peak in rows:
        print(f"| {name} | {args.pages / seconds:.2f} | {seconds / args.pages:.3f} | {peak / 2**20:.0f} |")
    print(
        f"pooled vs new browser per page: {naive / pooled:.1f}x pages/s, {pooled_peak / naive_peak:.2f}x peak memory"
    )


if __name__ == "__main__":
    main()
