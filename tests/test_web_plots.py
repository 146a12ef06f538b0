"""
Plot code rendered in the sandbox (`trl_ext.web.plots`) and the sandbox's script mode it relies on
(`LocalSandbox.run_script`).
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
import re
import time

import numpy as np
import pytest

from trl_ext.sandbox import CodeSandbox, LocalSandbox
from trl_ext.web import vendor as vendor_module
from trl_ext.web.plots import PlotRender, arender_python_plot, render_python_plot

pytest.importorskip("matplotlib")
Image = pytest.importorskip("PIL.Image")

BAR_CHART = """
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(6, 4))
ax.bar(["a", "b", "c"], [3, 1, 2], color="#ff0000")
ax.set_title("Sales")
print("drawn")
plt.show()
"""


@pytest.fixture(scope="module")
def sandbox():
    box = LocalSandbox(max_workers=2, memory_limit_mb=4096)
    yield box
    box.close()


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def render_here(code: str, dpi: int) -> np.ndarray:
    """The slow, obviously right reference: run the code in this process with Agg and save the current figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.close("all")
    namespace = {"__name__": "__main__"}
    exec(compile(code, "<reference>", "exec"), namespace)
    buffer = io.BytesIO()
    plt.gcf().savefig(buffer, format="png", dpi=dpi)
    plt.close("all")
    return pixels(buffer.getvalue())


def test_matplotlib_bar_chart_matches_an_in_process_render(sandbox):
    result = render_python_plot(BAR_CHART, sandbox=sandbox, dpi=50)
    assert result.ok, result
    assert result.error is None and result.figures == 1 and result.html is None
    assert result.png_size == (300, 200)  # figsize (6, 4) * dpi 50
    image = pixels(result.png)
    assert image.shape == (200, 300, 4)
    red = (image[..., 0] == 255) & (image[..., 1] == 0) & (image[..., 2] == 0)
    assert red.sum() > 1000  # the bars
    reference = render_here(BAR_CHART, dpi=50)
    assert np.abs(image.astype(int) - reference.astype(int)).max() <= 2  # same figure, same pixels
    assert result.stdout == "drawn\n"


@pytest.mark.parametrize("dpi, size", [(100, (600, 400)), (80, (480, 320))])
def test_png_size_is_figsize_times_dpi_even_with_tight_bbox(sandbox, dpi, size):
    code = BAR_CHART.replace("plt.show()", "plt.rcParams['savefig.bbox'] = 'tight'\nplt.show()")
    assert render_python_plot(code, sandbox=sandbox, dpi=dpi).png_size == size


def test_seaborn_plot_saved_to_a_missing_directory_then_closed(sandbox):
    code = """
import pandas as pd
import seaborn as sns
import matplotlib.pyplot as plt
df = pd.DataFrame({"x": list(range(20)) * 2, "y": [i * i for i in range(40)], "g": ["a"] * 20 + ["b"] * 20})
sns.set_theme(style="whitegrid")
sns.lineplot(data=df, x="x", y="y", hue="g")
plt.savefig("/mnt/data/chart.png")
plt.close()
"""
    result = render_python_plot(code, sandbox=sandbox)
    assert result.ok, result
    assert result.png_size == (640, 480)  # seaborn's default figure, 6.4 x 4.8 in
    assert "savefig('/mnt/data/chart.png') failed" in result.stderr


def test_the_last_of_several_figures_is_rendered(sandbox):
    code = """
import matplotlib.pyplot as plt
plt.figure(figsize=(2, 2)); plt.plot([1, 2])
plt.figure(figsize=(3, 1)); plt.plot([2, 1])
plt.figure(figsize=(4, 4))  # empty: not counted
plt.figure(2)
"""
    result = render_python_plot(code, sandbox=sandbox)
    assert result.ok and result.figures == 2 and result.png_size == (300, 100)


def test_object_oriented_figure_without_pyplot(sandbox):
    code = """
from matplotlib.figure import Figure
fig = Figure(figsize=(3, 2))
fig.add_subplot().scatter([1, 2, 3], [3, 1, 2])
fig.savefig("scatter.png")
"""
    result = render_python_plot(code, sandbox=sandbox)
    assert result.ok, result
    assert result.png_size == (300, 200)


PLOTLY = """
import plotly.express as px
fig = px.bar(x=["north", "south"], y=[17, 42], title="Regions")
fig.show()
"""


def test_plotly_figure_yields_html(sandbox):
    result = render_python_plot(PLOTLY, sandbox=sandbox)
    assert result.ok, result
    assert result.png is None and result.plotly_figures == 1
    assert result.html.startswith("<!doctype html>") and "Plotly.newPlot" in result.html
    assert '"x":["north","south"]' in result.html
    # plotly encodes numeric arrays as base64 typed arrays.
    match = re.search(r'"y":\{"dtype":"(\w+)","bdata":"([^"]+)"\}', result.html)
    assert np.frombuffer(base64.b64decode(match[2]), dtype=match[1]).tolist() == [17, 42]
    assert 'src="https://cdn.plot.ly/plotly-' in result.html  # served offline by the CDN router
    assert "integrity=" not in result.html  # plotly's hash would reject the vendored build


@pytest.mark.parametrize(
    "code",
    [
        "import plotly.graph_objects as go\nfig = go.Figure(go.Bar(x=[1, 2], y=[3, 1]))\nfig.write_image('out.png')",
        "import plotly.graph_objects as go\nfrom plotly.offline import plot\nplot(go.Figure(go.Bar(x=[1, 2], y=[3, 1])))",
        "import plotly.graph_objects as go\nfig = go.Figure(go.Bar(x=[1, 2], y=[3, 1]))",  # never shown
    ],
    ids=["write_image", "offline_plot", "global_variable"],
)
def test_plotly_figures_are_found_however_they_are_output(sandbox, code):
    result = render_python_plot(code, sandbox=sandbox)
    assert result.ok, result
    assert "Plotly.newPlot" in result.html


def test_plotly_html_renders_offline_in_chromium(sandbox):
    if not os.path.exists("/usr/bin/chromium") or not vendor_module.vendor_status()["installed"]:
        pytest.skip("needs /usr/bin/chromium and `python -m trl_ext.web.vendor install`")
    from playwright.sync_api import sync_playwright

    html = render_python_plot(PLOTLY, sandbox=sandbox).html
    router = vendor_module.CDNRouter()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        page = browser.new_page(viewport={"width": 800, "height": 600})
        router.attach_sync(page)
        page.set_content(html, wait_until="load")
        page.wait_for_selector(".plot-container .bars path", timeout=10_000)
        bars = page.evaluate("document.querySelectorAll('.plot-container .bars path').length")
        browser.close()
    assert bars == 2
    assert any(key.startswith("plotly.js-dist-min@") for key in router.served) and not router.missed


def test_code_that_raises(sandbox):
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nscale = 1 / 0\n"
    result = render_python_plot(code, sandbox=sandbox)
    assert not result.ok
    assert result.error == "ZeroDivisionError: division by zero"
    assert 'script.py", line 3, in <module>' in result.stderr and "[plot harness]" not in result.stderr
    assert result.png is not None  # what was drawn before the error is still available


def test_syntax_error_and_exit_status(sandbox):
    result = render_python_plot("import matplotlib.pyplot as plt\nplt.plot([1,\n", sandbox=sandbox)
    assert not result.ok and result.error == "SyntaxError: '[' was never closed (line 2)"
    result = render_python_plot(
        "import sys\nimport matplotlib.pyplot as plt\nplt.plot([1])\nsys.exit(0)", sandbox=sandbox
    )
    assert result.ok
    result = render_python_plot("import sys\nsys.exit(3)", sandbox=sandbox)
    assert not result.ok and result.error == "SystemExit: 3"


def test_infinite_loop_is_cut_at_the_timeout(sandbox):
    start = time.monotonic()
    result = render_python_plot(
        "import matplotlib.pyplot as plt\nplt.plot([1])\nwhile True:\n    pass\n", sandbox=sandbox, timeout=3
    )
    elapsed = time.monotonic() - start
    assert not result.ok and result.timed_out and result.error == "timeout after 3s"
    assert elapsed < 3 + 5, elapsed


def test_no_figure_huge_figure_and_huge_output(sandbox):
    assert render_python_plot("print(sum(range(10)))", sandbox=sandbox) == PlotRender(
        ok=False, error="no figure produced", stdout="45\n", elapsed=pytest.approx(0, abs=60)
    )
    huge = render_python_plot(
        "import matplotlib.pyplot as plt\nplt.figure(figsize=(500, 500))\nplt.plot([1])", sandbox=sandbox
    )
    assert not huge.ok and huge.error.startswith("figure too large: 50000x50000 px") and huge.png is None
    # Prints are kept as a short tail; writes to the raw file descriptor are cut by the sandbox, the result survives.
    code = (
        "import os\nfor i in range(2000):\n    print('line', i)\n"
        "for _ in range(400):\n    os.write(1, b'x' * 100_000)\n"
        "import matplotlib.pyplot as plt\nplt.plot([1, 2])\n"
    )
    spam = render_python_plot(code, sandbox=sandbox)
    assert spam.ok, spam.error
    assert spam.stdout.endswith("line 1999\n") and len(spam.stdout) <= 4000


def test_network_and_outside_files_are_contained(sandbox, tmp_path):
    if sandbox.isolation != "bwrap" and os.geteuid() != 0:
        pytest.skip("without bubblewrap or root, the fallback can write wherever this user can")
    target = tmp_path / "escaped.txt"
    code = f"""
import socket, urllib.request
try:
    urllib.request.urlopen("http://example.com", timeout=2)
    print("network: reached")
except Exception as error:
    print("network:", type(error).__name__)
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2)
    print("socket: connected")
except OSError as error:
    print("socket:", type(error).__name__)
for path in ({str(target)!r}, "/etc/trl_ext_plot_escape", "/usr/trl_ext_plot_escape"):
    try:
        open(path, "w").write("x")
        print("write: ok", path)
    except OSError as error:
        print("write:", type(error).__name__)
import matplotlib.pyplot as plt
plt.plot([1, 2, 3])
"""
    result = render_python_plot(code, sandbox=sandbox)
    assert result.ok, result
    assert "reached" not in result.stdout and "connected" not in result.stdout and "write: ok" not in result.stdout
    assert result.stdout.count("write:") == 3 and result.stdout.count("network:") == 1
    assert not target.exists() and not os.path.exists("/etc/trl_ext_plot_escape")


def test_async_variant_runs_concurrently(sandbox):
    async def main():
        codes = [f"import matplotlib.pyplot as plt\nplt.figure(figsize=({w}, 1))\nplt.plot([1, 2])" for w in (2, 3, 4)]
        return await asyncio.gather(*(arender_python_plot(code, sandbox=sandbox, dpi=10) for code in codes))

    results = asyncio.run(main())
    assert [r.png_size for r in results] == [(20, 10), (30, 10), (40, 10)]


def test_default_sandbox_and_bad_arguments():
    assert render_python_plot("import matplotlib.pyplot as plt\nplt.plot([1])", dpi=20).png_size == (128, 96)
    with pytest.raises(ValueError, match="dpi"):
        render_python_plot("x = 1", dpi=0)
    with pytest.raises(TypeError, match="code must be a string"):
        render_python_plot(b"x = 1")

    class TestsOnly(CodeSandbox):
        def run(self, code, tests, timeout):
            return []

        async def arun(self, code, tests, timeout):
            return []

    with pytest.raises(NotImplementedError, match="cannot run standalone scripts"):
        render_python_plot("x = 1", sandbox=TestsOnly())


# ----------------------------------------------------------------------------------------------------------------------
# LocalSandbox.run_script


def test_run_script_output_exit_status_and_limits(sandbox):
    result = sandbox.run_script("import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(4)", timeout=5)
    assert (result.exit_code, result.stdout, result.stderr, result.timed_out) == (4, b"out\n", b"err\n", False)
    assert not result.ok
    result = sandbox.run_script("print('x' * 5000 + 'END')", timeout=5, max_output_bytes=100)
    assert result.stdout == b"x" * 96 + b"END\n" and result.stdout_truncated  # the end is kept
    result = sandbox.run_script("raise KeyError('k')", timeout=5)
    assert result.exit_code == 1 and result.stderr.endswith(b"KeyError: 'k'\n")
    assert b"_script_child" not in result.stderr  # the runner's own frame is not shown
    result = sandbox.run_script("import os\nprint(os.environ['MY_FLAG'], __name__)", timeout=5, env={"MY_FLAG": "on"})
    assert result.ok and result.stdout == b"on __main__\n"
    result = sandbox.run_script("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", timeout=5)
    assert result.exit_code == -9 and not result.timed_out
    start = time.monotonic()
    result = sandbox.run_script("import time\nprint('started', flush=True)\ntime.sleep(60)", timeout=1)
    assert result.timed_out and result.exit_code is None and result.stdout == b"started\n"
    assert time.monotonic() - start < 1 + 5


def test_run_script_site_packages_are_opt_in(sandbox):
    assert sandbox.run_script("import numpy", timeout=10).ok
    result = sandbox.run_script("import numpy", timeout=10, allow_site_packages=False)
    assert result.exit_code == 1 and b"ModuleNotFoundError" in result.stderr
    with pytest.raises(ValueError, match="env"):
        sandbox.run_script("x = 1", timeout=5, env={"BAD NAME": "1"})
    with pytest.raises(ValueError, match="ro_binds"):
        sandbox.run_script("x = 1", timeout=5, ro_binds=["relative/path"])
