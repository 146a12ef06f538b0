"""
Offline CDN for rendering generated web pages.

Generated pages load their libraries from public CDNs. The renderer has no internet, so without help a Tailwind page
renders unstyled and a three.js page renders blank, and the aesthetic judges score the missing network instead of the
page. [`CDNRouter`] answers those requests from local copies of the npm packages pinned in `vendor_packages.json`
(installed once with `python -m trl_ext.web.vendor install`, which needs `npm`), and aborts every other external
request at once so that pages never wait for network timeouts.

Attach it to a Playwright page or context (`await router.attach(context)`, or `context.route("**/*", router.handle)`).

**CDNs served.**

| URL pattern | What is served |
|---|---|
| `cdn.jsdelivr.net/npm/<pkg>[@<ver>][/<file>]` (and the `fastly`/`gcore`/`testingcf` mirrors) | the file; a bare package gets its browser build (`jsdelivr`, `browser`, `unpkg` field, else `main`; minified when the package has it) |
| `cdn.jsdelivr.net/npm/<pkg>[@<ver>][/<file>]/+esm`, `esm.run/<pkg>`, `esm.sh/<pkg>` | a module re-exporting the package's ES-module entry, only when that file imports no bare specifiers (`three`, `vue`, `lodash-es`-style self-contained builds); jsDelivr's bundling of other packages is not reproduced: they are aborted and counted in `missed` |
| `unpkg.com/<pkg>[@<ver>][/<file>]` | the file; a bare package gets its browser build (`unpkg`, `browser`, `jsdelivr` field, else `main`) |
| `ga.jspm.io/npm:<pkg>@<ver>/<file>` | the file |
| `cdnjs.cloudflare.com/ajax/libs/<lib>/<ver>/<file>` | cdnjs library names mapped to npm packages (`three.js` -> `three`, `Chart.js` -> `chart.js`, `font-awesome` -> Font Awesome 4 or 6 by version, ...); the file is looked up at the same path, under `dist/`, `build/`, `lib/`, `umd/`, then by file name anywhere in the package |
| `ajax.googleapis.com/ajax/libs/<lib>/<ver>/<file>` | `jquery`, `jqueryui`, `threejs`, `d3js`, `hammerjs` |
| `code.jquery.com/jquery-<ver>[.slim][.min].js`, `code.jquery.com/ui/<ver>/<file>` | jQuery 3, jQuery UI |
| `stackpath.bootstrapcdn.com/<lib>/<ver>/<file>` (and `maxcdn`, `netdna`) | Bootstrap 4/5, Font Awesome 4, Bootstrap Icons |
| `d3js.org/d3.v<N>[.min].js`, `d3js.org/d3-<module>.v<N>[.min].js` | D3 7 and its modules |
| `cdn.plot.ly/plotly-<ver>[.min].js` | plotly.js (what `fig.to_html(include_plotlyjs="cdn")` references) |
| `cdn.tailwindcss.com[/<ver>][?plugins=...]` | Tailwind v4's browser build behind a v3 compatibility layer (below) |
| `kit.fontawesome.com/<id>.js`, `use.fontawesome.com/releases/v<ver>/<file>` | Font Awesome 6 Free (a kit becomes a script that adds its stylesheets) |
| `fonts.googleapis.com/css`, `/css2`, `/icon` (and `fonts.bunny.net`) | `@font-face` rules for the vendored families (Fontsource packages: Inter, Roboto, Poppins, Montserrat, Open Sans, Lato, Playfair Display, ..., Material Icons and Material Symbols Outlined) pointing at local font files; other families get an empty, valid stylesheet, so the page falls back to its next font |

Versions in URLs choose among the installed copies of a package (`three` r128 pages get the UMD build of three 0.147,
which still ships `build/three.min.js` and `examples/js/`; newer pages get the current release; Bootstrap 4 and Vue 2
pages get their major), otherwise the pinned version is served whatever the URL asks for; a different major is logged
at debug level. Libraries served: Tailwind (v4 browser build, v2 prebuilt CSS), Bootstrap 4/5 (+ Popper 1/2,
Bootstrap Icons), Bulma, daisyUI 4, Animate.css, normalize.css, AOS, Font Awesome 4.7/6 Free (with webfonts),
Lucide, Feather, Remix Icon, jQuery 3 + jQuery UI, three.js (current and r147), Chart.js 4 (+ datalabels), D3 7,
GSAP 3, anime.js 3, p5.js 1, Alpine.js 3, Vue 3 and 2, React/ReactDOM 18 (UMD) + Babel standalone, lodash,
plotly.js, ECharts, ApexCharts, Leaflet, Swiper, Typed.js, canvas-confetti, marked, Prism, highlight.js, Matter.js,
Howler, particles.js, KaTeX, axios, Day.js, Moment, cannon.js / cannon-es, tween.js, SortableJS, htmx, vanilla-tilt,
Tippy.js, SweetAlert2, Vanta and Hammer.js (`python -m trl_ext.web.vendor list` prints the exact versions).

**`cdn.tailwindcss.com`.** The v3 Play CDN script is not published on npm, so that URL gets `@tailwindcss/browser`
(v4, the same in-browser compiler) preceded by a small compatibility layer: `tailwind.config = {...}` keeps working
(`theme`/`theme.extend` colors, fonts, font sizes, spacing, radii, shadows, breakpoints, max-widths, line heights,
letter spacings, easings, animations and keyframes become a v4 `@theme`; `darkMode: "class"` becomes a `dark`
variant on `.dark`), v3's `@tailwind base/components/utilities` directives are dropped from `text/tailwindcss` styles,
and v3's default border color, button cursor, placeholder color and 3px ring are restored. What v4 changed remains:
the `?plugins=` query is ignored (no `prose` typography, no forms reset), `bg-opacity-*`-style opacity utilities do
nothing (v4 uses `bg-black/50`), a few utilities were renamed (`shadow-sm` is v3's `shadow`, `rounded-sm` v3's
`rounded`, `outline-none` v4's `outline-hidden`), and function-valued config entries and `prefix` are ignored.

**Subresource integrity.** Pages pasted from library docs often carry `integrity="sha384-..."`: the browser rejects a
served file whose hash differs (another version, or another build of the same one). Pass the HTML through
[`strip_integrity`] before loading it.

**What is not served**: other hosts (images, tile servers, analytics, APIs) are aborted with `internetdisconnected`
and counted in [`CDNRouter.missed`], and so are GitHub files (`cdn.jsdelivr.net/gh/...`), unknown packages and files,
and `+esm` bundles of packages with dependencies. Loopback and other local origins are aborted too unless allow-listed
(a page must not reach services on the training host). WebSockets do not go through Playwright routes; offline they
fail on their own.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import posixpath
import re
import shutil
import subprocess
import sys
import threading
import warnings
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

logger = logging.getLogger(__name__)

VENDOR_ENV = "TRL_EXT_WEB_VENDOR"
PACKAGES_FILE = Path(__file__).with_name("vendor_packages.json")
STAMP_FILE = ".trl_ext_vendor.json"
ABORT_ERROR = "internetdisconnected"
# Installed from `vendor_packages.json` but never requested by a page load: source maps are only fetched by open
# DevTools, typings and READMEs never. Removing them halves the install.
_PRUNE_SUFFIXES = (".map", ".d.ts", ".d.mts", ".d.cts", ".md", ".markdown")
_INSTALL_HINT = "run `python -m trl_ext.web.vendor install` (needs Node.js and npm)"
_JSDELIVR = "https://cdn.jsdelivr.net/npm"

_JSDELIVR_HOSTS = frozenset(
    {"cdn.jsdelivr.net", "fastly.jsdelivr.net", "gcore.jsdelivr.net", "testingcf.jsdelivr.net", "quantil.jsdelivr.net"}
)
_UNPKG_HOSTS = frozenset({"unpkg.com", "www.unpkg.com", "npmcdn.com"})
_ESM_HOSTS = frozenset({"esm.sh", "esm.run", "cdn.skypack.dev"})
_BOOTSTRAPCDN_HOSTS = frozenset({"stackpath.bootstrapcdn.com", "maxcdn.bootstrapcdn.com", "netdna.bootstrapcdn.com"})
_GOOGLE_FONTS_HOSTS = frozenset({"fonts.googleapis.com", "fonts.bunny.net"})
_PASS_SCHEMES = frozenset({"data", "blob", "about"})

# cdnjs library name (lower case) -> npm package. Names not listed fall back to the name itself, without a `.js`
# suffix. A list picks the first entry whose package major is at least the requested one.
_CDNJS_LIBS: dict[str, str | list[tuple[int, str]]] = {
    "three.js": "three",
    "chart.js": "chart.js",
    "lodash.js": "lodash",
    "moment.js": "moment",
    "p5.js": "p5",
    "babel-standalone": "@babel/standalone",
    "twitter-bootstrap": "bootstrap",
    "font-awesome": [(4, "font-awesome"), (99, "@fortawesome/fontawesome-free")],
    "popper.js": [(1, "popper.js"), (99, "@popperjs/core")],
    "prism": "prismjs",
    "highlight.js": "@highlightjs/cdn-assets",
    "plotly.js": "plotly.js-dist-min",
    "tween.js": "@tweenjs/tween.js",
    "sortable": "sortablejs",
    "htmx": "htmx.org",
    "cannon.js": "cannon",
    "hammer.js": "hammerjs",
    "jqueryui": "jquery-ui",
    "tailwindcss": "tailwindcss",
    "normalize": "normalize.css",
    "vue-router": "vue-router",
}
_GOOGLE_AJAX_LIBS = {
    "jquery": "jquery",
    "jqueryui": "jquery-ui",
    "threejs": "three",
    "d3js": "d3",
    "hammerjs": "hammerjs",
}
# Package -> (first major with the current layout, {file name of older majors (lower case): file serving it}).
_LEGACY_FILES: dict[str, tuple[int, dict[str, str]]] = {
    # Chart.js 2/3 shipped UMD builds as `Chart(.bundle)(.min).js`; in 4 `dist/chart.js` is an ES module.
    "chart.js": (
        4,
        {
            name: "dist/chart.umd.min.js"
            for name in ("chart.js", "chart.min.js", "chart.bundle.js", "chart.bundle.min.js")
        },
    ),
    # marked <= 4 shipped `marked.min.js` at the root; now the UMD build is `lib/marked.umd.js`.
    "marked": (999, {"marked.min.js": "lib/marked.umd.js", "marked.js": "lib/marked.umd.js"}),
}
# ES-module entries for `+esm`/esm.sh where the package's `exports`/`module` entry is a bundler build that imports
# bare specifiers, but a self-contained browser module exists.
_ESM_ENTRIES = {
    "vue": "dist/vue.esm-browser.prod.js",
    "echarts": "dist/echarts.esm.min.js",
    "swiper": "swiper-bundle.mjs",
}
# package.json fields naming the file of a bare package URL. The CDNs fall back to `main`, which for many current
# packages is a CommonJS build that cannot run in a page; the `unpkg`/`browser` fields name the browser build that
# older versions had as `main`.
_JSDELIVR_ENTRY = ("jsdelivr", "browser", "unpkg", "main")
_UNPKG_ENTRY = ("unpkg", "browser", "jsdelivr", "main")
# Directories tried, in order, when a cdnjs-style path (relative to the library root) is not found as is.
_SEARCH_PREFIXES = ("", "dist/", "build/", "lib/", "umd/", "dist/umd/", "css/", "dist/css/", "dist/js/", "js/")
_BARE_IMPORT_RE = re.compile(
    r"""(?:^|[;\n}])\s*(?:import|export)\b[^'"`;]*?\bfrom\s*['"]([^'"./][^'"]*)['"]|(?:^|[;\n])\s*import\s*['"]([^'"./][^'"]*)['"]"""
)
_DEFAULT_EXPORT_RE = re.compile(r"(?:^|[;\n}])\s*export\s+default\b|\bas\s+default\s*[,}]")
_INTEGRITY_RE = re.compile(r"""(<(?:script|link)\b[^>]*?)\s+integrity\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+)""", re.I)
_NPM_NAME_RE = re.compile(r"^(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*$", re.I)
_CONTENT_TYPES = {
    ".js": "application/javascript; charset=utf-8",
    ".mjs": "application/javascript; charset=utf-8",
    ".cjs": "application/javascript; charset=utf-8",
    ".jsx": "application/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".eot": "application/vnd.ms-fontobject",
    ".wasm": "application/wasm",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".wav": "audio/wav",
}
_BASE_HEADERS = {
    # Fonts and module scripts are CORS requests: without these the browser drops the response.
    "access-control-allow-origin": "*",
    "cross-origin-resource-policy": "cross-origin",
    "timing-allow-origin": "*",
    "cache-control": "public, max-age=31536000, immutable",
}
_MAX_INDEXED_FILES = 100_000
_RESOLVE_CACHE_SIZE = 4096


def default_vendor_dir() -> Path:
    """
    Directory holding the vendored npm packages: `$TRL_EXT_WEB_VENDOR` if set, else `~/.cache/trl_ext/web_vendor`.
    """
    env = os.environ.get(VENDOR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "trl_ext" / "web_vendor"


def load_vendor_packages() -> dict[str, Any]:
    """The pinned package list (`vendor_packages.json`), an npm `package.json` with a `trlExt.prune` list."""
    with open(PACKAGES_FILE) as f:
        return json.load(f)


def _spec_hash(spec: dict[str, Any]) -> str:
    relevant = {"dependencies": spec.get("dependencies", {}), "prune": spec.get("trlExt", {}).get("prune", [])}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def _read_stamp(vendor_dir: Path) -> dict[str, Any] | None:
    try:
        with open(vendor_dir / STAMP_FILE) as f:
            stamp = json.load(f)
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def vendor_status(vendor_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """
    State of a vendor directory.

    Returns:
        `dict`: `installed` (`bool`), `up_to_date` (`bool`, the install matches this version's pinned list),
        `vendor_dir` (`str`), `packages` (`dict[str, str]`, name -> installed version) and `size_mb` (`float`, as
        measured at install time).
    """
    vendor_dir = Path(vendor_dir).expanduser() if vendor_dir is not None else default_vendor_dir()
    stamp = _read_stamp(vendor_dir)
    installed = stamp is not None and (vendor_dir / "node_modules").is_dir()
    return {
        "installed": installed,
        "up_to_date": installed and stamp.get("spec_hash") == _spec_hash(load_vendor_packages()),
        "vendor_dir": str(vendor_dir),
        "packages": dict(stamp.get("packages", {})) if installed else {},
        "size_mb": float(stamp.get("size_mb", 0.0)) if installed else 0.0,
    }


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_plain_relative(relative: str) -> bool:
    """A relative POSIX path without `.`/`..` components, backslashes or NUL bytes."""
    if not relative or "\x00" in relative or "\\" in relative or relative.startswith("/"):
        return False
    return not any(part in ("..", ".") for part in relative.split("/"))


def _safe_join(root: Path, relative: str) -> Path | None:
    """`root / relative` when `relative` is a plain relative path that stays inside `root` (symlinks resolved)."""
    if not _is_plain_relative(relative):
        return None
    parts = relative.split("/")
    candidate = root.joinpath(*[p for p in parts if p])
    try:
        real_root = os.path.realpath(root)
        real = os.path.realpath(candidate)
    except (OSError, ValueError):
        return None
    if real != real_root and not real.startswith(real_root + os.sep):
        return None
    return candidate


def _prune(vendor_dir: Path, paths: Iterable[str]) -> None:
    node_modules = vendor_dir / "node_modules"
    for relative in paths:
        target = _safe_join(node_modules, relative)
        if target is None:
            raise ValueError(
                f"vendor_packages.json: trlExt.prune entry {relative!r} must be a path inside node_modules"
            )
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        elif target.exists() or target.is_symlink():
            target.unlink()
    for root, _, files in os.walk(node_modules):
        for name in files:
            if name.endswith(_PRUNE_SUFFIXES):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(root, name))


def _tree_size_mb(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return round(total / 2**20, 1)


def install_vendor(
    vendor_dir: str | os.PathLike | None = None, npm: str = "npm", force: bool = False, timeout: float = 1800.0
) -> Path:
    """
    Install the pinned browser libraries (`vendor_packages.json`) with `npm install --prefix <vendor_dir>`.

    Idempotent: an install that matches the pinned list is kept unless `force=True`. Safe to call from several
    processes at once (a file lock serializes them). Install scripts of the packages are not run (`--ignore-scripts`),
    and source maps, typings and the paths listed under `trlExt.prune` are removed afterwards.

    Args:
        vendor_dir (`str` or `os.PathLike`, *optional*):
            Target directory. Defaults to [`default_vendor_dir`].
        npm (`str`, *optional*, defaults to `"npm"`):
            The npm executable (name on the `PATH` or path).
        force (`bool`, *optional*, defaults to `False`):
            Reinstall even if the directory is up to date.
        timeout (`float`, *optional*, defaults to `1800.0`):
            Seconds `npm install` may take.

    Returns:
        `Path`: The vendor directory.
    """
    vendor_dir = Path(vendor_dir).expanduser() if vendor_dir is not None else default_vendor_dir()
    npm_path = shutil.which(npm)
    if npm_path is None:
        raise RuntimeError(
            f"npm executable {npm!r} not found: install Node.js 18+ and npm (e.g. `apt-get install nodejs npm`) or pass "
            "the path of npm (`install_vendor(npm=...)`, `--npm` on the command line)."
        )
    spec = load_vendor_packages()
    vendor_dir.mkdir(parents=True, exist_ok=True)
    with _locked(vendor_dir / ".install.lock"):
        if not force and vendor_status(vendor_dir)["up_to_date"]:
            logger.info("Vendored web libraries already installed in %s", vendor_dir)
            return vendor_dir
        (vendor_dir / STAMP_FILE).unlink(missing_ok=True)
        # npm would keep a previous install, pruned files missing: start from scratch (its cache makes this cheap).
        shutil.rmtree(vendor_dir / "node_modules", ignore_errors=True)
        (vendor_dir / "package-lock.json").unlink(missing_ok=True)
        package_json = {k: v for k, v in spec.items() if k != "trlExt"}
        with open(vendor_dir / "package.json", "w") as f:
            json.dump(package_json, f, indent=2)
        command = [
            npm_path, "install", "--prefix", str(vendor_dir), "--no-audit", "--no-fund", "--ignore-scripts",
            "--omit=optional", "--omit=dev", "--legacy-peer-deps", "--loglevel=error",
        ]  # fmt: skip
        logger.info("Installing %d browser libraries into %s", len(spec["dependencies"]), vendor_dir)
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as error:
            raise RuntimeError(f"`npm install` did not finish within {timeout:.0f}s") from error
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip()[-2000:]
            raise RuntimeError(f"`{' '.join(command)}` failed (exit {result.returncode}):\n{tail}")
        _prune(vendor_dir, spec.get("trlExt", {}).get("prune", []))
        packages = {}
        for name in spec["dependencies"]:
            manifest = vendor_dir / "node_modules" / name / "package.json"
            if not manifest.is_file():
                raise RuntimeError(f"npm reported success but {name} is missing from {vendor_dir / 'node_modules'}")
            with open(manifest) as f:
                packages[name] = json.load(f).get("version", "")
        stamp = {"spec_hash": _spec_hash(spec), "packages": packages, "size_mb": _tree_size_mb(vendor_dir)}
        with open(vendor_dir / STAMP_FILE, "w") as f:
            json.dump(stamp, f, indent=2)
        logger.info("Installed %d browser libraries (%.0f MB) into %s", len(packages), stamp["size_mb"], vendor_dir)
    return vendor_dir


def strip_integrity(html: str) -> str:
    """
    Remove `integrity="..."` attributes from `<script>` and `<link>` tags.

    Subresource-integrity hashes pin the exact bytes of one CDN build; the vendored copy (often another version) would
    be rejected by the browser. The attributes matter only for trusting a CDN, which the offline renderer replaces.
    """
    previous = None
    while previous != html:
        previous, html = html, _INTEGRITY_RE.sub(r"\1", html)
    return html


def _parse_version(text: str | None) -> tuple[int, ...] | None:
    """Leading numeric components of a version or range (`"^3.2"` -> `(3, 2)`, `"r128"` -> `(0, 128)`)."""
    if not text:
        return None
    text = text.strip().lstrip("^~=>v").strip()
    if re.fullmatch(r"r\d+", text):  # three.js release names (cdnjs, Google's CDN)
        return (0, int(text[1:]))
    numbers = []
    for part in text.split("."):
        match = re.match(r"\d+", part)
        if not match:
            break
        numbers.append(int(match.group()))
        if match.end() != len(part):
            break
    return tuple(numbers) or None


def _major(version: tuple[int, ...]) -> tuple[int, ...]:
    # For 0.x releases the minor number plays the role of the major one (semver's caret rule).
    return version[:2] if version and version[0] == 0 else version[:1]


def _content_type(path: str) -> str:
    lowered = path.lower()
    for suffix in sorted(_CONTENT_TYPES, key=len, reverse=True):
        if lowered.endswith(suffix):
            return _CONTENT_TYPES[suffix]
    return "application/octet-stream"


def _min_variants(path: str) -> list[str]:
    """`a.js` -> `a.min.js` and `a.min.js` -> `a.js` (CDNs serve both; packages often ship one)."""
    match = re.match(r"^(.*?)(\.min)?(\.(?:js|mjs|cjs|css))$", path, re.I)
    if not match:
        return []
    stem, minified, suffix = match.groups()
    return [stem + suffix] if minified else [stem + ".min" + suffix]


@dataclass
class VendoredAsset:
    """
    A response the router serves for an intercepted request.

    Args:
        url (`str`):
            The requested URL.
        content_type (`str`):
            MIME type of the body.
        path (`Path`, *optional*):
            File holding the body (vendored files).
        body (`bytes`, *optional*):
            The body itself (generated responses: Google Fonts stylesheets, the Tailwind compatibility script, kits).
        status (`int`, *optional*, defaults to `200`):
            HTTP status.
        headers (`dict[str, str]`):
            Extra response headers (CORS and caching headers are always added).
        package (`str`, *optional*):
            npm package the asset comes from.
        version (`str`, *optional*):
            Version of that package.
    """

    url: str
    content_type: str
    path: Path | None = None
    body: bytes | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    package: str | None = None
    version: str | None = None

    def read_bytes(self) -> bytes:
        """The response body."""
        if self.body is not None:
            return self.body
        return self.path.read_bytes() if self.path is not None else b""

    def response_headers(self) -> dict[str, str]:
        """All response headers, content type included."""
        return {**_BASE_HEADERS, "content-type": self.content_type, **self.headers}


@dataclass
class _Package:
    name: str  # the real package name (`three` for the `three-legacy` alias)
    directory: Path
    version: str
    manifest: dict[str, Any]

    @cached_property
    def version_tuple(self) -> tuple[int, ...]:
        return _parse_version(self.version) or (0,)

    @cached_property
    def primary(self) -> bool:
        # Installed under its own name rather than an npm alias.
        return self.directory.name == self.name.split("/")[-1]

    @cached_property
    def files_by_name(self) -> dict[str, list[str]]:
        """Lower-cased file name -> relative paths, shallowest first."""
        index: dict[str, list[str]] = {}
        count = 0
        for root, dirs, files in os.walk(self.directory):
            dirs[:] = sorted(d for d in dirs if d != "node_modules")
            relative_root = os.path.relpath(root, self.directory)
            for name in files:
                count += 1
                if count > _MAX_INDEXED_FILES:
                    return index
                relative = name if relative_root == "." else f"{relative_root}/{name}"
                index.setdefault(name.lower(), []).append(relative.replace(os.sep, "/"))
        for paths in index.values():
            paths.sort(key=lambda p: (p.count("/"), not p.startswith(("dist/", "build/", "umd/")), p))
        return index

    def file(self, relative: str) -> Path | None:
        path = _safe_join(self.directory, relative)
        return path if path is not None and path.is_file() else None


class CDNRouter:
    """
    Serves the CDN requests of generated pages from the vendored npm packages and aborts every other external request.

    Args:
        vendor_dir (`str` or `os.PathLike`, *optional*):
            Where [`install_vendor`] put the packages. Defaults to [`default_vendor_dir`].
        allowed_origins (`Sequence[str]`, *optional*, defaults to `()`):
            Origins whose requests continue untouched (passed on to the next route handler), e.g. the local server the
            pages are loaded from: `"http://127.0.0.1:8765"`, or `"http://127.0.0.1"` for any port, or `"file://"`.
            Loopback addresses are not allowed by default: an untrusted page must not reach services on the host.

    Attributes:
        missed (`collections.Counter`):
            External requests that were aborted, keyed by host (`"images.unsplash.com"`) or, for known CDNs, by library
            (`"cdn.jsdelivr.net/npm/phaser"`, `"fonts.googleapis.com/Comic Neue"`): the libraries worth vendoring.
        served (`collections.Counter`):
            Requests answered, keyed by package (`"three@0.147.0"`) or generated response kind.
    """

    def __init__(self, vendor_dir: str | os.PathLike | None = None, allowed_origins: Sequence[str] = ()):
        self.vendor_dir = Path(vendor_dir).expanduser() if vendor_dir is not None else default_vendor_dir()
        self.allowed_origins = tuple(self._parse_origin(origin) for origin in allowed_origins)
        self.missed: Counter[str] = Counter()
        self.served: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._warned = False
        self._cache: OrderedDict[str, tuple[VendoredAsset | None, tuple[str, ...]]] = OrderedDict()
        self._generated: dict[str, bytes] = {}
        status = vendor_status(self.vendor_dir)
        self.available: bool = status["installed"]
        """Whether the vendored packages are installed (otherwise every external request is aborted)."""
        if self.available and not status["up_to_date"]:
            logger.warning(
                "The vendored web libraries in %s were installed from another package list; run "
                "`python -m trl_ext.web.vendor install` to update them.",
                self.vendor_dir,
            )

    @staticmethod
    def _parse_origin(origin: str) -> tuple[str, str, int | None]:
        parts = urlsplit(origin)
        if not parts.scheme or (parts.scheme != "file" and not parts.hostname):
            raise ValueError(f"allowed_origins: {origin!r} is not an origin such as 'http://127.0.0.1:8000'")
        return parts.scheme, (parts.hostname or "").lower(), parts.port

    @property
    def unavailable_reason(self) -> str | None:
        """Why nothing is served (`None` when the vendored packages are installed)."""
        if self.available:
            return None
        return f"the vendored web libraries are not installed in {self.vendor_dir}: {_INSTALL_HINT}"

    # ----------------------------------------------------------------------------------------------------------------
    # Packages

    @cached_property
    def _packages(self) -> dict[str, list[_Package]]:
        """Real package name -> installed copies (an npm alias is another copy of the same package)."""
        groups: dict[str, list[_Package]] = {}
        node_modules = self.vendor_dir / "node_modules"
        if not node_modules.is_dir():
            return groups
        directories = []
        for entry in sorted(node_modules.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.name.startswith("@") and entry.is_dir():
                directories.extend(sorted(p for p in entry.iterdir() if p.is_dir()))
            elif entry.is_dir():
                directories.append(entry)
        for directory in directories:
            try:
                with open(directory / "package.json") as f:
                    manifest = json.load(f)
            except (OSError, ValueError):
                continue
            name = manifest.get("name") or directory.name
            package = _Package(
                name=name, directory=directory, version=str(manifest.get("version", "")), manifest=manifest
            )
            groups.setdefault(name.lower(), []).append(package)
        for copies in groups.values():
            copies.sort(key=lambda p: p.version_tuple)
        return groups

    def _candidates(self, name: str, version: str | None) -> list[_Package]:
        """Installed copies of `name`, best match for `version` first."""
        copies = self._packages.get(name.lower(), [])
        if len(copies) <= 1:
            return list(copies)
        wanted = _parse_version(version) if version and version != "latest" else None
        if wanted is None:
            primary = [p for p in copies if p.primary] or [copies[-1]]
            first = primary[0]
        else:
            # The oldest copy at least as new as the request (libraries stay mostly backward compatible, rarely
            # forward), else the newest.
            newer = [p for p in copies if p.version_tuple[: len(wanted)] >= wanted]
            first = newer[0] if newer else copies[-1]
        return [first] + [p for p in reversed(copies) if p is not first]

    @cached_property
    def _fonts(self) -> dict[str, list[_Package]]:
        """Lower-cased font family -> Fontsource packages (variable fonts first)."""
        fonts: dict[str, list[_Package]] = {}
        for copies in self._packages.values():
            for package in copies:
                if not package.name.startswith(("@fontsource/", "@fontsource-variable/")):
                    continue
                try:
                    with open(package.directory / "metadata.json") as f:
                        family = json.load(f)["family"]
                except (OSError, ValueError, KeyError):
                    continue
                fonts.setdefault(family.lower(), []).append(package)
        for packages in fonts.values():
            packages.sort(key=lambda p: not p.name.startswith("@fontsource-variable/"))
        return fonts

    @staticmethod
    def _entry(package: _Package, fields: Sequence[str], prefer_minified: bool) -> Path | None:
        """The default file of a bare package URL: the first of `fields` naming an existing file."""
        for key in fields:
            value = package.manifest.get(key)
            if not isinstance(value, str) or not value:
                continue
            relative = posixpath.normpath(value)
            candidates = [relative, relative + ".js", relative + "/index.js"]
            if prefer_minified and re.search(r"(?<!\.min)\.(?:js|css)$", relative):
                candidates = _min_variants(relative) + candidates  # jsDelivr minifies default files
            for candidate in candidates:
                path = package.file(candidate)
                if path is not None:
                    return path
        return None

    def _esm_entry(self, package: _Package) -> Path | None:
        if package.name in _ESM_ENTRIES:
            return package.file(_ESM_ENTRIES[package.name])

        def pick(target: Any) -> str | None:
            if isinstance(target, str):
                return target
            if isinstance(target, dict):
                for condition in ("browser", "import", "module", "default"):
                    if condition in target:
                        chosen = pick(target[condition])
                        if chosen is not None:
                            return chosen
            return None

        exports = package.manifest.get("exports")
        relative = None
        if isinstance(exports, dict) and "." in exports:
            relative = pick(exports["."])
        elif exports is not None:
            relative = pick(exports)
        if relative is None or not relative.endswith((".js", ".mjs")):
            relative = package.manifest.get("module") if isinstance(package.manifest.get("module"), str) else None
        if relative is None:
            return None
        return package.file(posixpath.normpath(relative))

    def _find_file(
        self,
        name: str,
        version: str | None,
        subpath: str,
        *,
        entry_fields: Sequence[str] = _JSDELIVR_ENTRY,
        prefer_minified: bool = True,
        prefixes: Sequence[str] = ("",),
        by_name: bool = False,
    ) -> tuple[_Package, Path] | None:
        subpath = subpath.strip("/")
        if subpath and not _is_plain_relative(subpath):
            return None  # traversal, backslashes or NUL: never looked up
        for package in self._candidates(name, version):
            if not subpath:
                path = self._entry(package, entry_fields, prefer_minified)
                if path is not None:
                    return package, path
                continue
            legacy = _LEGACY_FILES.get(package.name)
            wanted = _parse_version(version) if version not in (None, "latest") else None
            if legacy is not None and wanted is not None and wanted[0] < legacy[0]:
                replacement = legacy[1].get(subpath.rsplit("/", 1)[-1].lower())
                path = package.file(replacement) if replacement else None
                if path is not None:
                    return package, path
            # The exact name under every prefix before the (un)minified sibling: `gsap/ScrollTrigger.js` at the root
            # is an ES module while `dist/ScrollTrigger.min.js` is the UMD build that `ScrollTrigger.min.js` means.
            for candidate in (subpath, *_min_variants(subpath)):
                for prefix in prefixes:
                    path = package.file(prefix + candidate)
                    if path is not None:
                        return package, path
            if legacy is not None and wanted is None:
                replacement = legacy[1].get(subpath.rsplit("/", 1)[-1].lower())
                path = package.file(replacement) if replacement else None
                if path is not None:
                    return package, path
            if by_name:
                basename = subpath.rsplit("/", 1)[-1]
                for candidate in (basename, *_min_variants(basename)):
                    for relative in package.files_by_name.get(candidate.lower(), []):
                        path = package.file(relative)
                        if path is not None:
                            return package, path
        return None

    def _file_asset(
        self, url: str, found: tuple[_Package, Path] | None, requested_version: str | None
    ) -> VendoredAsset | None:
        if found is None:
            return None
        package, path = found
        wanted = _parse_version(requested_version) if requested_version not in (None, "latest") else None
        if wanted is not None and _major(wanted) != _major(package.version_tuple)[: len(_major(wanted))]:
            logger.debug("Serving %s@%s for %s (requested %s)", package.name, package.version, url, requested_version)
        return VendoredAsset(
            url=url, content_type=_content_type(path.name), path=path, package=package.name, version=package.version
        )

    # ----------------------------------------------------------------------------------------------------------------
    # URL patterns

    @staticmethod
    def _split_npm(spec: str) -> tuple[str, str | None, str] | None:
        """`"@scope/pkg@1.2/dist/x.js"` -> `("@scope/pkg", "1.2", "dist/x.js")`."""
        parts = spec.split("/")
        if parts[0].startswith("@"):
            if len(parts) < 2:
                return None
            head, rest = parts[0] + "/" + parts[1], parts[2:]
        else:
            head, rest = parts[0], parts[1:]
        at = head.rfind("@")
        if at > 0:
            name, version = head[:at], head[at + 1 :] or None
        else:
            name, version = head, None
        if not _NPM_NAME_RE.match(name):
            return None
        return name, version, "/".join(rest)

    def _resolve_npm_cdn(
        self, url: str, spec: str, entry_fields: Sequence[str], prefer_minified: bool
    ) -> tuple[VendoredAsset | None, str]:
        esm = False
        if spec.endswith("/+esm") or spec == "+esm":
            esm, spec = True, spec[: -len("+esm")].rstrip("/")
        parsed = self._split_npm(spec)
        if parsed is None:
            return None, ""
        name, version, subpath = parsed
        if spec.endswith("/"):  # a directory listing on the real CDN
            return None, name
        if esm:
            return self._esm_module(url, name, version, subpath), name
        found = self._find_file(name, version, subpath, entry_fields=entry_fields, prefer_minified=prefer_minified)
        return self._file_asset(url, found, version), name

    def _esm_module(self, url: str, name: str, version: str | None, subpath: str) -> VendoredAsset | None:
        if subpath and not _is_plain_relative(subpath):
            return None
        for package in self._candidates(name, version):
            path = package.file(subpath) if subpath else self._esm_entry(package)
            if path is None:
                continue
            try:
                source = path.read_text(errors="replace")
            except OSError:
                continue
            if any(any(group) for group in _BARE_IMPORT_RE.findall(source)):
                logger.debug("Not serving %s: %s imports bare specifiers (jsDelivr bundles them)", url, path)
                return None
            relative = path.relative_to(package.directory).as_posix()
            target = json.dumps(f"{_JSDELIVR}/{package.name}@{package.version}/{relative}")
            # A re-exporting module rather than a redirect: Playwright routes only the first request of a redirect
            # chain, and the target's relative imports resolve against its own URL either way.
            body = f"export * from {target};\n"
            if _DEFAULT_EXPORT_RE.search(source):
                body += f"export {{ default }} from {target};\n"
            return VendoredAsset(
                url=url,
                content_type=_CONTENT_TYPES[".js"],
                body=body.encode(),
                package=package.name,
                version=package.version,
            )
        return None

    def _resolve_library(
        self, url: str, library: str, version: str | None, subpath: str, table: dict[str, Any]
    ) -> tuple[VendoredAsset | None, str]:
        key = library.lower()
        mapped = table.get(key)
        if isinstance(mapped, list):
            wanted = _parse_version(version)
            name = mapped[-1][1]
            if wanted is not None:
                name = next((package for bound, package in mapped if wanted[0] <= bound), name)
        elif mapped is not None:
            name = mapped
        elif key not in self._packages and key.endswith(".js") and key[:-3] in self._packages:
            name = key[:-3]
        else:
            name = key
        if not _NPM_NAME_RE.match(name):
            return None, library
        found = self._find_file(name, version, subpath, prefixes=_SEARCH_PREFIXES, by_name=True)
        return self._file_asset(url, found, version), library

    def _resolve_jquery(self, url: str, path: str) -> tuple[VendoredAsset | None, str]:
        match = re.fullmatch(r"/jquery(?:-(?P<ver>[\w.]+?))?(?P<slim>\.slim)?(?P<min>\.min)?\.js", path)
        if match:
            version = match["ver"] if match["ver"] not in (None, "latest", "git") else None
            subpath = f"dist/jquery{match['slim'] or ''}{match['min'] or ''}.js"
            return self._file_asset(url, self._find_file("jquery", version, subpath), version), "jquery"
        match = re.fullmatch(r"/ui/(?P<ver>[^/]+)/(?P<path>.+)", path)
        if match:
            found = self._find_file("jquery-ui", match["ver"], match["path"], prefixes=("", "dist/"), by_name=True)
            return self._file_asset(url, found, match["ver"]), "ui"
        return None, path.strip("/").split("/")[0]

    def _resolve_d3js(self, url: str, path: str) -> tuple[VendoredAsset | None, str]:
        match = re.fullmatch(r"/(?P<module>d3(?:-[a-z-]+)?)\.v(?P<major>\d+)(?P<min>\.min)?\.js", path)
        if not match:
            return None, path.strip("/")
        module = match["module"]
        found = self._find_file(module, match["major"], f"dist/{module}{match['min'] or ''}.js")
        return self._file_asset(url, found, match["major"]), module

    def _resolve_plotly(self, url: str, path: str) -> tuple[VendoredAsset | None, str]:
        match = re.fullmatch(r"/plotly(?:-(?P<ver>[\w.]+?))?(?:\.min)?\.js", path)
        if not match:
            return None, path.strip("/")
        version = match["ver"] if match["ver"] not in (None, "latest") else None
        return self._file_asset(
            url, self._find_file("plotly.js-dist-min", version, "plotly.min.js"), version
        ), "plotly"

    # ----------------------------------------------------------------------------------------------------------------
    # Generated responses

    def _generated_asset(self, url: str, key: str, content_type: str, build) -> VendoredAsset | None:
        body = self._generated.get(key)
        if body is None:
            built = build()
            if built is None:
                return None
            body = self._generated[key] = built
        return VendoredAsset(url=url, content_type=content_type, body=body, package=key)

    def _tailwind_play_cdn(self) -> bytes | None:
        found = self._find_file("@tailwindcss/browser", None, "")
        if found is None:
            return None
        return (_TAILWIND_V3_COMPAT_PREFIX + found[1].read_text() + "\n").encode()

    def _font_awesome_kit(self) -> bytes | None:
        candidates = self._candidates("@fortawesome/fontawesome-free", None)
        if not candidates:
            return None
        base = f"{_JSDELIVR}/@fortawesome/fontawesome-free@{candidates[0].version}/css"
        sheets = json.dumps([f"{base}/all.min.css", f"{base}/v4-shims.min.css"])
        return (
            "(function(){var d=document;" + f"{sheets}.forEach(function(h){{"
            "var l=d.createElement('link');l.rel='stylesheet';l.href=h;(d.head||d.documentElement).appendChild(l);});})();\n"
        ).encode()

    def _google_fonts_css(self, url: str) -> tuple[bytes, list[str]]:
        parts = urlsplit(url)
        query = parse_qs(parts.query, keep_blank_values=False)
        families = query.get("family", [])
        requests: list[tuple[str, set[tuple[int, bool]]]] = []
        if parts.path.rstrip("/").endswith("css2"):
            for family in families:
                requests.append(_parse_css2_family(family))
        else:  # css (v1) and icon: `family=A:400,700italic|B`
            for group in families:
                for family in group.split("|"):
                    requests.append(_parse_css1_family(family))
        blocks: list[str] = []
        missing: list[str] = []
        for family, variants in requests:
            if not family:
                continue
            css = self._font_face_css(family, variants)
            if css is None:
                missing.append(family)
                blocks.append(f"/* trl_ext: font family {family!r} is not vendored; the page falls back. */")
            else:
                blocks.append(css)
        return ("\n".join(blocks) + "\n").encode(), missing

    def _font_face_css(self, family: str, variants: set[tuple[int, bool]]) -> str | None:
        packages = self._fonts.get(family.lower())
        if not packages:
            return None
        package = packages[0]
        variants = variants or {(400, False)}
        sheets: list[str] = []
        if package.name.startswith("@fontsource-variable/"):
            sheets.append("wght.css" if package.file("wght.css") else "index.css")
            if any(italic for _, italic in variants) and package.file("wght-italic.css"):
                sheets.append("wght-italic.css")
        else:
            available = sorted(
                int(m.group(1)) for p in package.directory.glob("*.css") if (m := re.fullmatch(r"(\d+)\.css", p.name))
            )
            if not available:
                sheets.append("index.css")
            for weight, italic in sorted(variants):
                nearest = min(available, key=lambda w: (abs(w - weight), w)) if available else None
                if nearest is None:
                    continue
                sheet = (
                    f"{nearest}-italic.css" if italic and package.file(f"{nearest}-italic.css") else f"{nearest}.css"
                )
                if sheet not in sheets:
                    sheets.append(sheet)
        base = f"{_JSDELIVR}/{package.name}@{package.version}/"
        faces = []
        for sheet in sheets:
            path = package.file(sheet)
            if path is None:
                continue
            for block in re.findall(r"@font-face\s*\{[^}]*\}", path.read_text(errors="replace")):
                block = re.sub(r"font-family:\s*[^;]+;", f"font-family: '{family}';", block, count=1)
                block = re.sub(r"url\(\s*(['\"]?)\./", lambda m: f"url({m.group(1)}{base}", block)
                faces.append(block)
        icon_class = _ICON_FONT_CLASSES.get(family.lower())
        if icon_class:
            faces.append(icon_class.replace("{family}", family))
        return "\n".join(faces) if faces else None

    # ----------------------------------------------------------------------------------------------------------------
    # Public API

    def resolve(self, url: str) -> VendoredAsset | None:
        """
        The vendored response for `url`, or `None` if the URL is not served (unknown host, package or file).

        Pure lookup: nothing is counted in `missed` (see [`~CDNRouter.handle`]).
        """
        return self._resolve_with_key(url)[0]

    def _resolve_with_key(self, url: str) -> tuple[VendoredAsset | None, tuple[str, ...]]:
        with self._lock:
            cached = self._cache.get(url)
            if cached is not None:
                self._cache.move_to_end(url)
                return cached
        result = self._resolve_uncached(url)
        with self._lock:
            self._cache[url] = result
            while len(self._cache) > _RESOLVE_CACHE_SIZE:
                self._cache.popitem(last=False)
        return result

    def _resolve_uncached(self, url: str) -> tuple[VendoredAsset | None, tuple[str, ...]]:
        """`(asset or None, keys to count in missed)`."""
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
        except ValueError:
            return None, ("invalid-url",)
        if parts.scheme not in ("http", "https") or not host:
            return None, (f"{parts.scheme}:",)
        path = unquote(parts.path)
        # Google Fonts stylesheets need no vendored files: an empty sheet is still better than a failed request.
        if host in _GOOGLE_FONTS_HOSTS:
            body, missing = self._google_fonts_css(url) if self.available else (b"/* fonts not vendored */\n", [])
            asset = VendoredAsset(url=url, content_type="text/css; charset=utf-8", body=body, package="google-fonts")
            return asset, tuple(f"{host}/{family}" for family in missing)
        if not self.available:
            return None, (host,)
        asset: VendoredAsset | None = None
        library = ""
        if host in _JSDELIVR_HOSTS:
            if path.startswith("/npm/"):
                asset, library = self._resolve_npm_cdn(url, path[len("/npm/") :], _JSDELIVR_ENTRY, True)
                library = f"npm/{library}"
            else:
                library = "/".join(path.strip("/").split("/")[:3])
        elif host in _UNPKG_HOSTS:
            spec = path.lstrip("/")
            if spec.startswith("browse/"):
                return None, (f"{host}/browse",)
            asset, library = self._resolve_npm_cdn(url, spec, _UNPKG_ENTRY, False)
        elif host in _ESM_HOSTS:
            spec = re.sub(r"^/(?:v\d+/|stable/)?", "", path)
            if spec.startswith("npm:"):
                spec = spec[4:]
            parsed = self._split_npm(spec)
            if parsed is not None:
                library = parsed[0]
                asset = self._esm_module(url, parsed[0], parsed[1], parsed[2])
        elif host == "ga.jspm.io":
            match = re.fullmatch(r"/npm:(.+)", path)
            if match:
                asset, library = self._resolve_npm_cdn(url, match[1], ("browser", "module", "main"), False)
        elif host == "cdnjs.cloudflare.com":
            match = re.fullmatch(r"/ajax/libs/(?P<lib>[^/]+)/(?P<ver>[^/]+)/(?P<path>.+)", path)
            if match:
                asset, library = self._resolve_library(url, match["lib"], match["ver"], match["path"], _CDNJS_LIBS)
                library = f"ajax/libs/{library}"
        elif host == "ajax.googleapis.com":
            match = re.fullmatch(r"/ajax/libs/(?P<lib>[^/]+)/(?P<ver>[^/]+)/(?P<path>.+)", path)
            if match and match["lib"].lower() in _GOOGLE_AJAX_LIBS:
                asset, library = self._resolve_library(
                    url, match["lib"], match["ver"], match["path"], _GOOGLE_AJAX_LIBS
                )
            library = "ajax/libs/" + (match["lib"] if match else "")
        elif host in _BOOTSTRAPCDN_HOSTS:
            match = re.fullmatch(r"/(?P<lib>[^/]+)/(?P<ver>[^/]+)/(?P<path>.+)", path)
            if match:
                asset, library = self._resolve_library(url, match["lib"], match["ver"], match["path"], _CDNJS_LIBS)
        elif host == "code.jquery.com":
            asset, library = self._resolve_jquery(url, path)
        elif host in ("d3js.org", "www.d3js.org"):
            asset, library = self._resolve_d3js(url, path)
        elif host == "cdn.plot.ly":
            asset, library = self._resolve_plotly(url, path)
        elif host == "cdn.tailwindcss.com":
            asset = self._generated_asset(url, "tailwind-play-cdn", _CONTENT_TYPES[".js"], self._tailwind_play_cdn)
        elif host == "kit.fontawesome.com":
            asset = self._generated_asset(url, "fontawesome-kit", _CONTENT_TYPES[".js"], self._font_awesome_kit)
        elif host == "use.fontawesome.com":
            match = re.fullmatch(r"/releases/v?(?P<ver>[^/]+)/(?P<path>.+)", path)
            if match:
                name = (
                    "font-awesome"
                    if (_parse_version(match["ver"]) or (6,))[0] < 5
                    else "@fortawesome/fontawesome-free"
                )
                found = self._find_file(name, match["ver"], match["path"], prefixes=("",), by_name=True)
                asset = self._file_asset(url, found, match["ver"])
            library = "releases"
        else:
            return None, (host,)
        if asset is None:
            return None, (f"{host}/{library}".rstrip("/") if library else host,)
        return asset, ()

    def _passes(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
            scheme, host, port = parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
        except ValueError:
            return False
        if scheme in _PASS_SCHEMES:
            return True
        port = port or {"http": 80, "https": 443}.get(scheme)
        return any(
            scheme == allowed_scheme and host == allowed_host and allowed_port in (None, port)
            for allowed_scheme, allowed_host, allowed_port in self.allowed_origins
        )

    def classify(self, url: str) -> str:
        """`"pass"` (the request continues), `"serve"` (a vendored answer exists) or `"abort"`."""
        if self._passes(url):
            return "pass"
        return "serve" if self.resolve(url) is not None else "abort"

    def _decide(self, url: str) -> tuple[str, VendoredAsset | None]:
        if self._passes(url):
            return "pass", None
        asset, keys = self._resolve_with_key(url)
        with self._lock:
            if asset is not None:
                self.served[f"{asset.package}@{asset.version}" if asset.version else str(asset.package)] += 1
            self.missed.update(keys)
        if not self.available and not self._warned:
            self._warned = True
            message = f"External page resources are aborted and not served: {self.unavailable_reason}."
            logger.warning(message)
            warnings.warn(message, stacklevel=3)
        return ("serve", asset) if asset is not None else ("abort", None)

    @staticmethod
    def _fulfill_kwargs(asset: VendoredAsset) -> dict[str, Any]:
        return {"status": asset.status, "headers": asset.response_headers(), "body": asset.read_bytes()}

    async def handle(self, route) -> None:
        """
        Playwright (async API) route handler: fulfill vendored assets, abort other external requests with
        `internetdisconnected` (recorded in `missed`), and pass `data:`/`blob:`/`about:` and allow-listed origins to
        the next handler.
        """
        url = route.request.url
        verdict, asset = self._decide(url)
        try:
            if verdict == "pass":
                await route.fallback()
            elif verdict == "serve":
                await route.fulfill(**self._fulfill_kwargs(asset))
            else:
                await route.abort(ABORT_ERROR)
        except Exception as error:  # the page or context closed while the request was in flight
            logger.debug("Route for %s not handled: %s", url, error)

    def handle_sync(self, route) -> None:
        """Playwright (sync API) version of [`~CDNRouter.handle`]."""
        url = route.request.url
        verdict, asset = self._decide(url)
        try:
            if verdict == "pass":
                route.fallback()
            elif verdict == "serve":
                route.fulfill(**self._fulfill_kwargs(asset))
            else:
                route.abort(ABORT_ERROR)
        except Exception as error:
            logger.debug("Route for %s not handled: %s", url, error)

    async def attach(self, target) -> None:
        """Route every request of a Playwright (async) `BrowserContext` or `Page` through [`~CDNRouter.handle`]."""
        await target.route("**/*", self.handle)

    def attach_sync(self, target) -> None:
        """Sync-API version of [`~CDNRouter.attach`]."""
        target.route("**/*", self.handle_sync)

    def missed_report(self, top: int = 20) -> str:
        """The most frequently aborted hosts/libraries, one per line, for logs."""
        with self._lock:
            items = self.missed.most_common(top)
        return "\n".join(f"{count:6d}  {key}" for key, count in items)

    def list_packages(self) -> dict[str, list[str]]:
        """Installed package name -> versions."""
        return {name: [p.version for p in copies] for name, copies in sorted(self._packages.items())}


def _parse_css2_family(value: str) -> tuple[str, set[tuple[int, bool]]]:
    """`"Roboto:ital,wght@0,400;1,700"` -> `("Roboto", {(400, False), (700, True)})`."""
    name, _, spec = value.partition(":")
    variants: set[tuple[int, bool]] = set()
    if "@" in spec:
        axes_text, _, tuples_text = spec.partition("@")
        axes = [a.strip() for a in axes_text.split(",")]
        for values_text in tuples_text.split(";"):
            values = values_text.split(",")
            if len(values) != len(axes):
                continue
            italic, weight = False, 400
            for axis, raw in zip(axes, values):
                if axis == "ital":
                    italic = raw.strip() == "1"
                elif axis == "wght":
                    low = raw.split("..")[0].strip()
                    weight = int(low) if low.isdigit() else 400
            variants.add((weight, italic))
    elif spec.strip() == "ital":
        variants = {(400, False), (400, True)}
    return name.strip(), variants


def _parse_css1_family(value: str) -> tuple[str, set[tuple[int, bool]]]:
    """`"Open Sans:400,700italic"` -> `("Open Sans", {(400, False), (700, True)})`."""
    name, _, spec = value.partition(":")
    variants: set[tuple[int, bool]] = set()
    for item in filter(None, (s.strip().lower() for s in spec.split(","))):
        italic = item.endswith(("italic", "i"))
        digits = re.match(r"\d+", item)
        weight = int(digits.group()) if digits else (700 if item.startswith("bold") else 400)
        variants.add((weight, italic))
    return name.strip(), variants


# Google's stylesheets for icon fonts also define the class that turns ligatures into icons.
_ICON_FONT_CLASS = (
    ".{cls} {{ font-family: '{{family}}'; font-weight: normal; font-style: normal; font-size: 24px; line-height: 1; "
    "letter-spacing: normal; text-transform: none; display: inline-block; white-space: nowrap; word-wrap: normal; "
    "direction: ltr; -webkit-font-feature-settings: 'liga'; font-feature-settings: 'liga'; "
    "-webkit-font-smoothing: antialiased; }}"
)
_ICON_FONT_CLASSES = {
    "material icons": _ICON_FONT_CLASS.format(cls="material-icons"),
    "material symbols outlined": _ICON_FONT_CLASS.format(cls="material-symbols-outlined"),
}

# Runs before Tailwind v4's browser build in the script served for `cdn.tailwindcss.com` (see the module docstring).
_TAILWIND_V3_COMPAT_PREFIX = r"""/* trl_ext: Tailwind v3 Play CDN compatibility layer over @tailwindcss/browser (v4). */
(function () {
  "use strict";
  if (window.__trlExtTailwindCompat) return;
  window.__trlExtTailwindCompat = true;
  var TYPE = "text/tailwindcss";
  var NAMESPACES = {
    colors: "color", fontFamily: "font", fontSize: "text", fontWeight: "font-weight", spacing: "spacing",
    borderRadius: "radius", boxShadow: "shadow", dropShadow: "drop-shadow", blur: "blur", screens: "breakpoint",
    maxWidth: "container", lineHeight: "leading", letterSpacing: "tracking", transitionTimingFunction: "ease",
    animation: "animate", perspective: "perspective", aspectRatio: "aspect", textShadow: "text-shadow"
  };
  var BASE = "@theme { --default-ring-width: 3px; --default-ring-color: var(--color-blue-500); }\n" +
    "@layer base {\n" +
    "  *, ::after, ::before, ::backdrop, ::file-selector-button { border-color: var(--color-gray-200, currentColor); }\n" +
    "  input::placeholder, textarea::placeholder { color: var(--color-gray-400); }\n" +
    "  button:not(:disabled), [role=\"button\"]:not(:disabled) { cursor: pointer; }\n" +
    "}\n";
  var parent = document.head || document.documentElement;
  var baseStyle = document.createElement("style");
  baseStyle.setAttribute("type", TYPE);
  baseStyle.setAttribute("data-trl-ext", "tailwind-v3-base");
  baseStyle.textContent = BASE;
  parent.appendChild(baseStyle);
  var configStyle = null;
  var current = {};

  function kebab(text) { return String(text).replace(/[A-Z]/g, function (c) { return "-" + c.toLowerCase(); }); }
  function clean(value) { return String(value).replace(/<alpha-value>/g, "1"); }
  function fontList(value) {
    if (Array.isArray(value)) {
      if (value.length === 2 && Array.isArray(value[0])) value = value[0];
      return value.map(function (name) {
        name = String(name);
        return /\s/.test(name) && !/^['"]/.test(name) && !/\(/.test(name) ? '"' + name + '"' : name;
      }).join(", ");
    }
    return String(value);
  }
  function flatten(prefix, value, out) {
    if (value === null || value === undefined || typeof value === "function") return;
    if (typeof value === "object" && !Array.isArray(value)) {
      Object.keys(value).forEach(function (key) {
        flatten(key === "DEFAULT" ? prefix : prefix + "-" + key, value[key], out);
      });
      return;
    }
    out.push([prefix, value]);
  }
  function themeVariables(key, values, out) {
    var ns = NAMESPACES[key];
    if (!ns || !values || typeof values !== "object") return;
    Object.keys(values).forEach(function (name) {
      var value = values[name];
      var variable = "--" + ns + (name === "DEFAULT" ? "" : "-" + name);
      if (typeof value === "function" || value === null || value === undefined) return;
      if (key === "colors") {
        var entries = [];
        flatten(variable, value, entries);
        entries.forEach(function (e) { if (typeof e[1] !== "object") out.push(e[0] + ": " + clean(e[1]) + ";"); });
      } else if (key === "fontFamily") {
        out.push(variable + ": " + fontList(value) + ";");
      } else if (key === "fontSize") {
        if (Array.isArray(value)) {
          out.push(variable + ": " + value[0] + ";");
          var extra = value[1];
          if (typeof extra === "string") out.push(variable + "--line-height: " + extra + ";");
          else if (extra && typeof extra === "object") {
            Object.keys(extra).forEach(function (k) { out.push(variable + "--" + kebab(k) + ": " + extra[k] + ";"); });
          }
        } else out.push(variable + ": " + value + ";");
      } else if (key === "screens") {
        var width = typeof value === "object" ? value.min : value;
        if (typeof width === "string") out.push(variable + ": " + width + ";");
      } else if (typeof value === "string" || typeof value === "number") {
        out.push(variable + ": " + clean(value) + ";");
      } else if (Array.isArray(value)) {
        out.push(variable + ": " + value.join(", ") + ";");
      }
    });
  }
  function keyframesCss(frames) {
    var css = "";
    Object.keys(frames || {}).forEach(function (name) {
      var steps = frames[name];
      if (!steps || typeof steps !== "object") return;
      css += "@keyframes " + name + " {";
      Object.keys(steps).forEach(function (step) {
        var declarations = steps[step] || {};
        css += " " + step + " {";
        Object.keys(declarations).forEach(function (p) { css += " " + kebab(p) + ": " + declarations[p] + ";"; });
        css += " }";
      });
      css += " }\n";
    });
    return css;
  }
  function configCss(config) {
    var theme = (config && config.theme) || {};
    var extend = theme.extend || {};
    var variables = [];
    if (theme.colors && typeof theme.colors === "object") variables.push("--color-*: initial;");
    Object.keys(theme).forEach(function (key) { if (key !== "extend") themeVariables(key, theme[key], variables); });
    Object.keys(extend).forEach(function (key) { themeVariables(key, extend[key], variables); });
    var css = variables.length ? "@theme {\n  " + variables.join("\n  ") + "\n}\n" : "";
    css += keyframesCss(theme.keyframes) + keyframesCss(extend.keyframes);
    var dark = config && config.darkMode;
    if (dark === "class" || dark === "selector" || Array.isArray(dark)) {
      var selector = Array.isArray(dark) && typeof dark[1] === "string" ? dark[1] : ".dark";
      css += "@custom-variant dark (&:where(" + selector + ", " + selector + " *));\n";
    }
    return css;
  }
  function applyConfig(config) {
    current = config || {};
    var css;
    try { css = configCss(current); } catch (error) { console.warn("trl_ext tailwind compat:", error); return; }
    if (!configStyle) {
      configStyle = document.createElement("style");
      configStyle.setAttribute("type", TYPE);
      configStyle.setAttribute("data-trl-ext", "tailwind-v3-config");
      (document.head || document.documentElement).appendChild(configStyle);
    }
    configStyle.textContent = css;
  }
  var api = {};
  Object.defineProperty(api, "config", {
    get: function () { return current; },
    set: applyConfig,
    enumerable: true
  });
  window.tailwind = api;

  // v3 stylesheets start with `@tailwind base; @tailwind components; @tailwind utilities;`, which v4 rejects.
  function upgrade(style) {
    if (style.getAttribute("data-trl-ext")) return;
    var text = style.textContent || "";
    var upgraded = text.replace(/@tailwind\s+(base|components|utilities|variants|screens)\s*;/g, "")
      .replace(/@config\s+[^;]+;/g, "");
    if (upgraded !== text) style.textContent = upgraded;
  }
  function upgradeAll() {
    var styles = document.querySelectorAll('style[type="' + TYPE + '"]');
    for (var i = 0; i < styles.length; i++) upgrade(styles[i]);
  }
  // Registered before v4's own observers, so its rebuild reads the upgraded text.
  new MutationObserver(function (records) {
    records.forEach(function (record) {
      record.addedNodes.forEach(function (node) {
        if (node.nodeType === 1 && node.tagName === "STYLE" && node.getAttribute("type") === TYPE) upgrade(node);
      });
    });
  }).observe(document.documentElement, { childList: true, subtree: true });
  upgradeAll();
})();
"""


def _format_packages(packages: dict[str, str]) -> str:
    width = max((len(name) for name in packages), default=0)
    return "\n".join(f"{name:<{width}}  {version}" for name, version in sorted(packages.items()))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `python -m trl_ext.web.vendor install|list|resolve URL`."""
    parser = argparse.ArgumentParser(prog="python -m trl_ext.web.vendor", description=__doc__.split("\n\n")[0].strip())
    dir_help = f"vendor directory (default: ${VENDOR_ENV} or {default_vendor_dir()})"
    parser.add_argument("--dir", default=None, help=dir_help)
    commands = parser.add_subparsers(dest="command", required=True)
    install = commands.add_parser("install", help="npm-install the pinned browser libraries")
    install.add_argument("--npm", default="npm", help="npm executable")
    install.add_argument("--force", action="store_true", help="reinstall even if up to date")
    listing = commands.add_parser("list", help="installed (or pinned) packages and versions")
    resolve = commands.add_parser("resolve", help="what a URL is served from")
    resolve.add_argument("urls", nargs="+", metavar="URL")
    for command in (install, listing, resolve):
        # Also accepted after the command; SUPPRESS keeps the subcommand from resetting a --dir given before it.
        command.add_argument("--dir", default=argparse.SUPPRESS, help=dir_help)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "install":
        try:
            directory = install_vendor(args.dir, npm=args.npm, force=args.force)
        except RuntimeError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        status = vendor_status(directory)
        print(f"{len(status['packages'])} packages, {status['size_mb']:.0f} MB in {directory}")
        return 0
    if args.command == "list":
        status = vendor_status(args.dir)
        if status["installed"]:
            print(
                f"# installed in {status['vendor_dir']} ({status['size_mb']:.0f} MB)"
                + ("" if status["up_to_date"] else ", outdated")
            )
            print(_format_packages(status["packages"]))
        else:
            print(f"# not installed in {status['vendor_dir']}; pinned list ({_INSTALL_HINT}):")
            print(_format_packages(load_vendor_packages()["dependencies"]))
        return 0
    router = CDNRouter(args.dir)
    if not router.available:
        print(f"warning: {router.unavailable_reason}", file=sys.stderr)
    code = 0
    for url in args.urls:
        asset = router.resolve(url)
        if asset is None:
            print(f"{url}\n  -> not served (aborted)")
            code = 1
        else:
            origin = (
                str(asset.path) if asset.path is not None else f"<generated {asset.package}, {len(asset.body)} bytes>"
            )
            version = f"{asset.package}@{asset.version}" if asset.version else asset.package
            print(f"{url}\n  -> {origin}\n     {version}, {asset.content_type}")
    return code


if __name__ == "__main__":
    sys.exit(main())
