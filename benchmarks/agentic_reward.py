"""
Pages scored per second: the pooled renderer (long-lived Chromium contexts) against a new browser per page, both at
the same concurrency and doing the same work (load, settle, design measurements, full-page screenshot), plus the
whole agentic reward (lint + render + design judge + GUI agent). Peak memory is the summed RSS of every Chromium
process (this Python process, which holds torch for the trainer, is left out), sampled every 20 ms.

    python benchmarks/agentic_reward.py [--pages 24] [--concurrency 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time

from trl_ext.rewards.agentic import AgenticAestheticReward
from trl_ext.web import BrowserPool
from trl_ext.web.browser import _CAPTURE_JS, _MOBILE_JS, CHROMIUM_ARGS, find_chromium

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


class PeakMemory:
    """Peak of the Chromium processes' summed resident memory, sampled in a thread."""

    def __init__(self, interval=0.02):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    @staticmethod
    def _rss(pid):
        try:
            with open(f"/proc/{pid}/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            return 0

    def _sample(self):
        while not self._stop.is_set():
            total = 0
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        with open(f"/proc/{entry}/cmdline", "rb") as f:
                            if b"chrom" in f.read(200):
                                total += self._rss(entry)
                    except OSError:
                        pass
            self.peak = max(self.peak, total)
            time.sleep(self.interval)

    def __enter__(self):
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
                    page = await (await browser.new_context(viewport={"width": 1280, "height": 960})).new_page()

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
                    await page.screenshot(full_page=metrics["page_height"] > 960, caret="hide")
                    await page.set_viewport_size({"width": 390, "height": 844})
                    await page.evaluate(_MOBILE_JS)
                finally:
                    await browser.close()

        await asyncio.gather(*(one(html) for html in documents))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=24)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    documents = [PAGES[i % len(PAGES)].format(i=i) for i in range(args.pages)]
    rows = []

    with PeakMemory() as memory:
        start = time.perf_counter()
        asyncio.run(browser_per_page(documents, args.concurrency))
        naive = time.perf_counter() - start
    rows.append(("new browser per page", naive, memory.peak))

    with PeakMemory() as memory:
        pool = BrowserPool(size=args.concurrency, settle_ms=100)
        pool.render(documents[0])  # start-up is paid once per run, not per page: measured apart
        start = time.perf_counter()
        results = pool.render_many(documents)
        pooled = time.perf_counter() - start
        pool.close()
    assert all(not isinstance(r, BaseException) and r.ok for r in results)
    rows.append(("pooled contexts", pooled, memory.peak))

    with PeakMemory() as memory:
        pool = BrowserPool(size=args.concurrency, settle_ms=100)
        reward = AgenticAestheticReward(pool=pool, agent_time_budget=15)
        pool.render(documents[0])
        start = time.perf_counter()
        scores = reward.combined(prompts=["A product landing page"] * len(documents), completions=documents)
        full = time.perf_counter() - start
        reward.close()
        pool.close()
    assert all(s is not None for s in scores)
    rows.append(("full agentic reward (pooled, + judge + GUI agent)", full, memory.peak))

    print(f"{args.pages} pages, concurrency {args.concurrency}, {os.cpu_count()} CPU cores")
    print("| renderer | pages/s | s/page | peak RSS (MiB) |\n|---|---|---|---|")
    for name, seconds, peak in rows:
        print(f"| {name} | {args.pages / seconds:.2f} | {seconds / args.pages:.3f} | {peak / 2**20:.0f} |")
    print(f"pooled vs new browser per page: {naive / pooled:.1f}x pages/s, {rows[1][2] / rows[0][2]:.2f}x peak memory")


if __name__ == "__main__":
    main()
