"""
Render generated Python plotting code (matplotlib, seaborn, pandas plotting, plotly) to an image, in the sandbox.

The plot half of AesCode-358K and PandasPlotBench ask a model for plotting code; the reward needs the picture. The code
runs in [`~trl_ext.sandbox.LocalSandbox`] (no network, read-only system, private `/tmp`, resource limits) through a
small harness that:

- forces matplotlib's non-interactive `Agg` backend, so `plt.show()` draws nothing and keeps the figures open;
- remembers every figure shown or saved (`savefig` to a read-only or missing directory is reported on stderr and does
  not stop the script);
- after the script, renders **the last figure** (pyplot's current figure if any is open, else the last one shown or
  saved) to PNG at `dpi`, so the image is `figsize * dpi` pixels, and counts the figures;
- for plotly, replaces `fig.show()`, `plotly.io.show`, `write_html`, `write_image` (no kaleido needed) and
  `plotly.offline.plot/iplot` by a recorder, and returns the last figure as standalone HTML that loads plotly.js from
  `cdn.plot.ly` (without plotly's integrity hash), which [`~trl_ext.web.vendor.CDNRouter`] serves offline: screenshot
  it with the browser pool. A figure never shown but left in a global variable is used too.

Whatever the code does (raise, loop forever, print megabytes, draw nothing, build a 100,000-pixel-wide figure), the
result is a [`PlotRender`] with `ok=False` and a reason; only a failure of the sandbox itself raises
[`~trl_ext.sandbox.SandboxInfraError`] (a reward should then exclude the sample rather than score it 0).

seaborn and plotly must be installed in the sandbox interpreter's environment (`pip install seaborn plotly`).
"""

from __future__ import annotations

import ast
import atexit
import base64
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..sandbox.base import CodeSandbox, ScriptResult
from ..sandbox.local import LocalSandbox
from .vendor import strip_integrity

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 25_000_000
DEFAULT_MAX_PNG_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_HTML_BYTES = 16 * 1024 * 1024
_STDOUT_TAIL = 4000
_ERROR_TAIL = 2000

_default_sandbox: LocalSandbox | None = None
_default_lock = threading.Lock()
_mpl_cache: str | None = None
_mpl_cache_lock = threading.Lock()


@dataclass
class PlotRender:
    """
    The image produced by a piece of plotting code.

    Args:
        ok (`bool`):
            Whether the code ran without error (exit status 0, in time) and produced a figure.
        png (`bytes`, *optional*):
            PNG of the last matplotlib/seaborn/pandas figure, `figsize * dpi` pixels.
        html (`str`, *optional*):
            Standalone HTML of the last plotly figure (plotly.js from `cdn.plot.ly`); render it in the browser pool.
        error (`str`, *optional*):
            Why `ok` is `False`: the exception (`"ZeroDivisionError: division by zero"`), `"timeout after 30s"`,
            `"no figure produced"`, `"figure too large ..."`, `"output too large ..."`.
        stdout (`str`, *optional*, defaults to `""`):
            The end of what the code printed.
        stderr (`str`, *optional*, defaults to `""`):
            The end of its standard error (the traceback when it raised, warnings).
        figures (`int`, *optional*, defaults to `0`):
            Number of non-empty matplotlib figures the code created (only the last is rendered).
        plotly_figures (`int`, *optional*, defaults to `0`):
            Number of plotly figures shown or written.
        timed_out (`bool`, *optional*, defaults to `False`):
            Whether the code was stopped at the timeout.
        elapsed (`float`, *optional*, defaults to `0.0`):
            Wall time in seconds, sandbox start-up included.
    """

    ok: bool
    png: bytes | None = None
    html: str | None = None
    error: str | None = None
    stdout: str = ""
    stderr: str = ""
    figures: int = 0
    plotly_figures: int = 0
    timed_out: bool = False
    elapsed: float = 0.0

    @property
    def png_size(self) -> tuple[int, int] | None:
        """`(width, height)` of the PNG in pixels, read from its header."""
        if not self.png or len(self.png) < 24 or self.png[:8] != b"\x89PNG\r\n\x1a\n":
            return None
        return int.from_bytes(self.png[16:20], "big"), int.from_bytes(self.png[20:24], "big")


# The harness runs inside the sandbox. It receives its settings as a JSON literal and the plotting code as a string,
# and prints one JSON record between two copies of a per-run marker.
_HARNESS = r"""
import base64, builtins, io, json, os, sys, traceback, warnings

_CFG = json.loads(__CONFIG__)
_USER_CODE = __CODE__
_OUT_FD = os.dup(1)  # the report goes here even if the code replaces or closes sys.stdout
os.environ["MPLBACKEND"] = "Agg"
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
if _CFG["mpl_cache"] and "MPLCONFIGDIR" not in os.environ:
    # A font cache built outside: matplotlib otherwise rescans the system fonts on every run (seconds).
    _config_dir = os.path.join(os.environ.get("TMPDIR", "/tmp"), ".matplotlib")
    try:
        os.makedirs(_config_dir, exist_ok=True)
        for _name in os.listdir(_CFG["mpl_cache"]):
            if _name.endswith(".json"):
                with open(os.path.join(_CFG["mpl_cache"], _name), "rb") as _src, open(os.path.join(_config_dir, _name), "wb") as _dst:
                    _dst.write(_src.read())
        os.environ["MPLCONFIGDIR"] = _config_dir
    except OSError:
        pass


class _Tail(io.TextIOBase):
    def __init__(self, limit):
        self.limit, self.text = limit, ""

    def writable(self):
        return True

    def write(self, text):
        self.text = (self.text + str(text))[-self.limit:]
        return len(text)


_stdout = _Tail(_CFG["stdout_tail"])
sys.stdout = _stdout
_seen = []  # matplotlib figures shown or saved, in order
_plotly = []  # plotly figures shown or written, in order
_patched = set()


def _note(message):
    print(f"[plot harness] {message}", file=sys.stderr)


def _remember(figure):
    if figure in _seen:
        _seen.remove(figure)
    _seen.append(figure)


def _patch_pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib._pylab_helpers import Gcf

    def show(*args, **kwargs):
        for manager in Gcf.get_all_fig_managers():
            _remember(manager.canvas.figure)

    plt.show = show


def _patch_figure():
    from matplotlib.figure import Figure

    original_savefig = Figure.savefig

    def savefig(self, fname, *args, **kwargs):
        _remember(self)
        try:
            return original_savefig(self, fname, *args, **kwargs)
        except OSError as error:  # e.g. a read-only or missing directory: the figure is still rendered
            _note(f"savefig({fname!r}) failed: {error}")

    Figure.savefig = savefig
    Figure.show = lambda self, *args, **kwargs: _remember(self)


def _patch_plotly():
    import plotly.io as pio

    def record(fig, *args, **kwargs):
        _plotly.append(fig)

    original_write_html = pio.write_html

    def write_html(fig, file, *args, **kwargs):
        _plotly.append(fig)
        try:
            return original_write_html(fig, file, *args, **kwargs)
        except OSError as error:
            _note(f"write_html({file!r}) failed: {error}")

    pio.show = record
    pio.write_html = write_html
    pio.write_image = record  # needs kaleido and a browser: the figure is returned as HTML instead


def _patch_plotly_offline():
    import plotly.offline as offline

    original_plot = offline.plot

    def plot(figure_or_data, *args, **kwargs):
        if kwargs.get("output_type") == "div":
            return original_plot(figure_or_data, *args, **kwargs)
        _plotly.append(figure_or_data)
        return kwargs.get("filename", "temp-plot.html")

    offline.plot = plot
    offline.iplot = lambda figure_or_data, *args, **kwargs: _plotly.append(figure_or_data)


# (module, an attribute that exists once the module finished initializing, patch)
_HOOKS = (
    ("matplotlib.figure", "Figure", _patch_figure),
    ("matplotlib.pyplot", "show", _patch_pyplot),
    ("plotly.io", "write_html", _patch_plotly),
    ("plotly.offline", "plot", _patch_plotly_offline),
)
_original_import = builtins.__import__


def _import(name, globals=None, locals=None, fromlist=(), level=0):
    module = _original_import(name, globals, locals, fromlist, level)
    for module_name, attribute, patch in _HOOKS:
        if module_name in _patched or module_name not in sys.modules:
            continue
        try:
            ready = hasattr(sys.modules[module_name], attribute)
        except Exception:
            ready = False
        if ready:  # not while the module is still being imported (circular imports inside the package)
            _patched.add(module_name)
            try:
                patch()
            except Exception as error:
                _note(f"could not patch {module_name}: {error!r}")
    return module


builtins.__import__ = _import
_namespace = {"__name__": "__main__", "__file__": sys.argv[0], "__builtins__": builtins}
_error = None
try:
    exec(compile(_USER_CODE, sys.argv[0], "exec"), _namespace)
except SystemExit as _exit:
    if _exit.code not in (None, 0):
        _error = f"SystemExit: {_exit.code}"
except BaseException as _exception:
    _kind, _value, _trace = sys.exc_info()
    traceback.print_exception(_kind, _value, _trace.tb_next)
    _error = "".join(traceback.format_exception_only(_kind, _value)).strip().splitlines()[-1]
    if isinstance(_value, SyntaxError) and _value.lineno:
        _error += f" (line {_value.lineno})"
builtins.__import__ = _original_import
sys.stdout = sys.__stdout__
_record = {"error": _error, "stdout": _stdout.text, "figures": 0, "plotly_figures": 0, "png": None, "html": None}


def _has_content(figure):
    return len(figure.get_children()) > 1  # more than the background patch


def _render_matplotlib():
    if "matplotlib.figure" not in sys.modules:
        return
    import matplotlib

    figures = list(_seen)
    active = None
    if "matplotlib.pyplot" in sys.modules:
        from matplotlib._pylab_helpers import Gcf

        for manager in Gcf.get_all_fig_managers():
            if manager.canvas.figure not in figures:
                figures.append(manager.canvas.figure)
        active = Gcf.get_active()
    figures = [f for f in figures if _has_content(f)]
    _record["figures"] = len(figures)
    if not figures:
        return
    figure = active.canvas.figure if active is not None and active.canvas.figure in figures else _seen_last(figures)
    width, height = (float(v) * _CFG["dpi"] for v in figure.get_size_inches())
    if width * height > _CFG["max_pixels"]:
        _record["render_error"] = f"figure too large: {width:.0f}x{height:.0f} px (limit {_CFG['max_pixels']} px)"
        return
    buffer = io.BytesIO()
    with matplotlib.rc_context({"savefig.bbox": "standard"}):  # exactly figsize * dpi, whatever the code set
        figure.savefig(buffer, format="png", dpi=_CFG["dpi"])
    data = buffer.getvalue()
    if len(data) > _CFG["max_png_bytes"]:
        _record["render_error"] = f"output too large: {len(data)} bytes of PNG (limit {_CFG['max_png_bytes']})"
        return
    _record["png"] = base64.b64encode(data).decode()


def _seen_last(figures):
    shown = [f for f in _seen if f in figures]
    return shown[-1] if shown else figures[-1]


def _render_plotly():
    if "plotly" not in sys.modules:
        return
    import plotly.io as pio
    from plotly.basedatatypes import BaseFigure

    figures = list(_plotly)
    if not figures:
        figures = [v for v in _namespace.values() if isinstance(v, BaseFigure)]
    _record["plotly_figures"] = len(figures)
    if not figures:
        return
    html = pio.to_html(figures[-1], include_plotlyjs=_CFG["plotlyjs"], full_html=True)
    if len(html) > _CFG["max_html_bytes"]:
        _record["render_error"] = f"output too large: {len(html)} bytes of HTML (limit {_CFG['max_html_bytes']})"
        return
    _record["html"] = html


for _render in (_render_matplotlib, _render_plotly):
    try:
        _render()
    except BaseException as _exception:
        _record["render_error"] = "rendering failed: " + "".join(
            traceback.format_exception_only(type(_exception), _exception)
        ).strip()
_payload = (_CFG["marker"] + json.dumps(_record) + _CFG["marker"]).encode()
while _payload:
    _payload = _payload[os.write(_OUT_FD, _payload):]
"""


def _default() -> LocalSandbox:
    global _default_sandbox
    with _default_lock:
        if _default_sandbox is None:
            # Plotting stacks (numpy, pandas, matplotlib, plotly) need more address space than test snippets.
            _default_sandbox = LocalSandbox(max_workers=min(4, os.cpu_count() or 1), memory_limit_mb=4096)
            atexit.register(_default_sandbox.close)
        return _default_sandbox


def _matplotlib_cache() -> str | None:
    """A directory holding matplotlib's font cache for this interpreter, built once per process (or `None`)."""
    global _mpl_cache
    with _mpl_cache_lock:
        if _mpl_cache is None:
            directory = tempfile.mkdtemp(prefix="trl_ext-mplcache-")
            os.chmod(directory, 0o755)  # readable by the sandbox's `nobody`
            atexit.register(shutil.rmtree, directory, True)
            try:
                subprocess.run(
                    [sys.executable, "-c", "import matplotlib.font_manager"],
                    env={**os.environ, "MPLCONFIGDIR": directory, "MPLBACKEND": "Agg"},
                    capture_output=True,
                    timeout=120,
                    check=True,
                )
                for name in os.listdir(directory):
                    os.chmod(os.path.join(directory, name), 0o644)
            except (OSError, subprocess.SubprocessError) as error:
                logger.warning("Could not prepare matplotlib's font cache (%s): each plot will rebuild it.", error)
            _mpl_cache = directory
        return _mpl_cache if any(name.endswith(".json") for name in os.listdir(_mpl_cache)) else None


# Standard-library modules that plotting stacks import lazily (numpy.random needs `secrets`, narwhals too, ...).
_LAZY_STDLIB = (
    "ast", "base64", "bz2", "calendar", "colorsys", "concurrent.futures", "contextlib", "copy", "csv", "dataclasses",
    "datetime", "decimal", "difflib", "dis", "email", "encodings.idna", "fnmatch", "fractions", "gettext", "glob",
    "gzip", "hashlib", "hmac", "html", "html.parser", "importlib.metadata", "importlib.resources", "inspect", "locale",
    "logging", "lzma", "multiprocessing", "numbers", "pickle", "platform", "pprint", "queue", "secrets", "shlex",
    "shutil", "statistics", "sysconfig", "tempfile", "textwrap", "tokenize", "unicodedata", "urllib.parse",
    "urllib.request", "uuid", "weakref", "webbrowser", "http.server", "mimetypes", "binascii", "xml.etree.ElementTree",
    "zipfile", "zoneinfo",
)  # fmt: skip


def _preload_modules(code: str) -> list[str]:
    """Modules the code imports (and what the harness needs), for the trusted runner to import first."""
    names = [*_LAZY_STDLIB, "matplotlib", "matplotlib.pyplot", "matplotlib.backends.backend_agg", "PIL.PngImagePlugin"]
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return names
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names if alias.name != "*")
    roots = {name.split(".")[0] for name in names}
    if "numpy" in roots or "pandas" in roots or "seaborn" in roots:
        names.append("numpy.random")
    if "plotly" in roots:
        names += ["plotly.io", "plotly.graph_objects", "plotly.offline", "plotly.express"]
    return list(dict.fromkeys(names))


def _build(code: str, dpi: int, max_pixels: int, max_png_bytes: int, max_html_bytes: int, plotlyjs: str):
    if not isinstance(code, str):
        raise TypeError(f"code must be a string, got {type(code).__name__}")
    if not isinstance(dpi, int) or not 10 <= dpi <= 600:
        raise ValueError(f"dpi must be an integer between 10 and 600, got {dpi!r}")
    marker = f"@@trl_ext-plot-{uuid.uuid4().hex}@@"
    config = {
        "dpi": dpi,
        "marker": marker,
        "max_pixels": int(max_pixels),
        "max_png_bytes": int(max_png_bytes),
        "max_html_bytes": int(max_html_bytes),
        "plotlyjs": plotlyjs,
        "stdout_tail": _STDOUT_TAIL,
        "mpl_cache": None,
    }
    return config, marker


def _script(code: str, config: dict[str, Any]) -> str:
    return _HARNESS.replace("__CONFIG__", repr(json.dumps(config)), 1).replace("__CODE__", repr(code), 1)


def _local_options(sandbox: CodeSandbox, code: str, config: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(sandbox, LocalSandbox):
        return {}
    options: dict[str, Any] = {}
    cache = _matplotlib_cache()
    if cache is not None:
        config["mpl_cache"] = cache
        if sandbox.uses_bwrap:
            options["ro_binds"] = [cache]
    if not sandbox.uses_bwrap and os.geteuid() == 0:
        # The script runs as `nobody`, who may not be able to read the interpreter's files: import them first.
        options["preload"] = _preload_modules(code)
    return options


def _parse(result: ScriptResult, marker: str, timeout: float, elapsed: float) -> PlotRender:
    stdout = result.stdout.decode(errors="replace")
    stderr = result.stderr_text[-_ERROR_TAIL:]
    end = stdout.rfind(marker)
    start = stdout.rfind(marker, 0, end) if end > 0 else -1
    record = None
    if start >= 0:
        try:
            record = json.loads(stdout[start + len(marker) : end])
        except ValueError:
            record = None
    if result.timed_out:
        return PlotRender(
            ok=False, error=f"timeout after {timeout:g}s", stderr=stderr, timed_out=True, elapsed=elapsed
        )
    if record is None:
        if result.stdout_truncated:
            error = "output too large: the code printed more than the sandbox keeps"
        elif result.exit_code is not None and result.exit_code < 0:
            error = f"killed by signal {-result.exit_code} (memory or CPU limit)"
        else:
            last_line = stderr.strip().splitlines()[-1] if stderr.strip() else ""
            error = last_line or f"the harness exited with status {result.exit_code} without a result"
        return PlotRender(ok=False, error=error, stdout=stdout[-_STDOUT_TAIL:], stderr=stderr, elapsed=elapsed)
    png = base64.b64decode(record["png"]) if record.get("png") else None
    # plotly pins the CDN script with a hash; the vendored plotly.js is another build, which the browser would reject.
    html = strip_integrity(record["html"]) if record.get("html") else None
    error = record.get("error") or record.get("render_error")
    if error is None and png is None and html is None:
        error = "no figure produced"
    if error is None and result.exit_code != 0:
        error = f"exited with status {result.exit_code}"
    return PlotRender(
        ok=error is None,
        png=png,
        html=html,
        error=error,
        stdout=record.get("stdout", ""),
        stderr=stderr,
        figures=int(record.get("figures", 0)),
        plotly_figures=int(record.get("plotly_figures", 0)),
        elapsed=elapsed,
    )


def render_python_plot(
    code: str,
    sandbox: CodeSandbox | None = None,
    timeout: float = 30.0,
    dpi: int = 100,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_png_bytes: int = DEFAULT_MAX_PNG_BYTES,
    max_html_bytes: int = DEFAULT_MAX_HTML_BYTES,
    plotlyjs: str = "cdn",
) -> PlotRender:
    """
    Run plotting code in the sandbox and return its last figure as PNG (matplotlib, seaborn, pandas) or HTML (plotly).

    Args:
        code (`str`):
            The Python code, e.g. the ```python block of a completion.
        sandbox ([`~trl_ext.sandbox.CodeSandbox`], *optional*):
            Where to run it; must implement `run_script` ([`~trl_ext.sandbox.LocalSandbox`] does). Defaults to a
            shared `LocalSandbox` with a 4 GiB address-space limit.
        timeout (`float`, *optional*, defaults to `30.0`):
            Seconds the code (imports included) may run.
        dpi (`int`, *optional*, defaults to `100`):
            Resolution of the PNG: a `figsize=(6, 4)` figure gives 600x400 pixels at 100.
        max_pixels (`int`, *optional*, defaults to `25_000_000`):
            Largest figure rendered, in pixels; larger ones give `ok=False`.
        max_png_bytes (`int`, *optional*, defaults to `8 MiB`):
            Largest PNG returned.
        max_html_bytes (`int`, *optional*, defaults to `16 MiB`):
            Largest plotly HTML returned.
        plotlyjs (`str`, *optional*, defaults to `"cdn"`):
            `include_plotlyjs` of `plotly.io.to_html`: `"cdn"` references `https://cdn.plot.ly/plotly-<ver>.min.js`
            (served by [`~trl_ext.web.vendor.CDNRouter`]), or the URL of a `.js` file to load instead.

    Returns:
        [`PlotRender`]
    """
    config, marker = _build(code, dpi, max_pixels, max_png_bytes, max_html_bytes, plotlyjs)
    sandbox = sandbox if sandbox is not None else _default()
    options = _local_options(sandbox, code, config)
    start = time.monotonic()
    result = sandbox.run_script(
        _script(code, config), timeout, allow_site_packages=True, max_output_bytes=_output_limit(config), **options
    )
    return _parse(result, marker, timeout, time.monotonic() - start)


async def arender_python_plot(
    code: str,
    sandbox: CodeSandbox | None = None,
    timeout: float = 30.0,
    dpi: int = 100,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_png_bytes: int = DEFAULT_MAX_PNG_BYTES,
    max_html_bytes: int = DEFAULT_MAX_HTML_BYTES,
    plotlyjs: str = "cdn",
) -> PlotRender:
    """Asynchronous version of [`render_python_plot`]: the event loop stays free while the code runs."""
    config, marker = _build(code, dpi, max_pixels, max_png_bytes, max_html_bytes, plotlyjs)
    sandbox = sandbox if sandbox is not None else _default()
    options = _local_options(sandbox, code, config)
    start = time.monotonic()
    result = await sandbox.arun_script(
        _script(code, config), timeout, allow_site_packages=True, max_output_bytes=_output_limit(config), **options
    )
    return _parse(result, marker, timeout, time.monotonic() - start)


def _output_limit(config: dict[str, Any]) -> int:
    # Room for the record (base64 PNG, HTML, stdout tail) plus what the code wrote to the file descriptor directly.
    return (config["max_png_bytes"] * 4) // 3 + config["max_html_bytes"] + 1024 * 1024
