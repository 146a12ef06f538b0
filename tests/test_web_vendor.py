"""
The offline CDN (`trl_ext.web.vendor`): URL resolution against a small fake vendor tree whose layouts copy the real
packages', the same patterns against the real install, the install command, and real Chromium pages.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import threading
import time
from pathlib import Path

import pytest

from trl_ext.web import vendor as vendor_module
from trl_ext.web.vendor import (
    CDNRouter,
    VendoredAsset,
    default_vendor_dir,
    install_vendor,
    load_vendor_packages,
    strip_integrity,
    vendor_status,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# ----------------------------------------------------------------------------------------------------------------------
# A fake vendor tree: package.json fields and file layouts as in the pinned packages, one line of content per file.

FAKE_PACKAGES = {
    # directory: (name, version, extra manifest fields, files)
    "jquery": ("jquery", "3.8.0", {"main": "dist/jquery.js"}, ["dist/jquery.js", "dist/jquery.min.js", "dist/jquery.slim.min.js"]),
    "jquery-ui": ("jquery-ui", "1.14.2", {"main": "ui/widget.js"}, ["dist/jquery-ui.min.js", "dist/themes/base/jquery-ui.css", "ui/widget.js"]),
    "three": ("three", "0.187.0", {"main": "./build/three.cjs", "module": "./build/three.module.js"}, ["build/three.cjs", "build/three.module.js", "build/three.core.js", "examples/jsm/controls/OrbitControls.js"]),
    "three-legacy": ("three", "0.147.0", {"main": "./build/three.js", "module": "./build/three.module.js"}, ["build/three.js", "build/three.min.js", "build/three.module.js", "examples/js/controls/OrbitControls.js", "examples/fonts/helvetiker_regular.typeface.json"]),
    "chart.js": ("chart.js", "4.6.1", {"jsdelivr": "./dist/chart.umd.min.js", "main": "./dist/chart.cjs", "module": "./dist/chart.js"}, ["dist/chart.js", "dist/chart.cjs", "dist/chart.umd.js", "dist/chart.umd.min.js"]),
    "bootstrap": ("bootstrap", "5.3.9", {"main": "dist/js/bootstrap.js"}, ["dist/css/bootstrap.min.css", "dist/js/bootstrap.bundle.min.js", "dist/js/bootstrap.js"]),
    "bootstrap4": ("bootstrap", "4.6.2", {"main": "dist/js/bootstrap.js"}, ["dist/css/bootstrap.min.css", "dist/js/bootstrap.bundle.min.js", "dist/js/bootstrap.js"]),
    "font-awesome": ("font-awesome", "4.7.0", {}, ["css/font-awesome.min.css", "fonts/fontawesome-webfont.woff2"]),
    "@fortawesome/fontawesome-free": ("@fortawesome/fontawesome-free", "6.7.2", {}, ["css/all.css", "css/all.min.css", "css/v4-shims.min.css", "webfonts/fa-solid-900.woff2"]),
    "gsap": ("gsap", "3.15.0", {"main": "dist/gsap.js", "module": "index.js"}, ["index.js", "gsap-core.js", "ScrollTrigger.js", "dist/gsap.js", "dist/gsap.min.js", "dist/ScrollTrigger.min.js"]),
    "@tailwindcss/browser": ("@tailwindcss/browser", "4.3.4", {"main": "./dist/index.global.js"}, ["dist/index.global.js"]),
    "d3": ("d3", "7.9.2", {"jsdelivr": "dist/d3.min.js", "main": "dist/d3.mjs"}, ["dist/d3.min.js", "dist/d3.js", "dist/d3.mjs"]),
    "d3-scale": ("d3-scale", "4.0.2", {"main": "dist/d3-scale.js"}, ["dist/d3-scale.js", "dist/d3-scale.min.js"]),
    "plotly.js-dist-min": ("plotly.js-dist-min", "4.1.2", {"main": "plotly.min.js"}, ["plotly.min.js"]),
    "lodash": ("lodash", "4.18.1", {"main": "lodash.js"}, ["lodash.js", "lodash.min.js"]),
    "react": ("react", "18.3.1", {"main": "index.js"}, ["index.js", "umd/react.production.min.js"]),
    "@babel/standalone": ("@babel/standalone", "7.29.13", {"main": "./babel.js"}, ["babel.js", "babel.min.js"]),
    "popper.js": ("popper.js", "1.16.1", {"main": "dist/umd/popper.js"}, ["dist/umd/popper.js", "dist/umd/popper.min.js"]),
    "@popperjs/core": ("@popperjs/core", "2.11.8", {"main": "dist/cjs/popper.js"}, ["dist/cjs/popper.js", "dist/umd/popper.min.js"]),
    "alpinejs": ("alpinejs", "3.17.5", {"unpkg": "dist/cdn.min.js", "main": "dist/module.cjs.js"}, ["dist/cdn.js", "dist/cdn.min.js", "dist/module.cjs.js"]),
    "p5": ("p5", "1.11.13", {"main": "./lib/p5.min.js"}, ["lib/p5.js", "lib/p5.min.js", "lib/addons/p5.sound.min.js"]),
    "remixicon": ("remixicon", "4.9.1", {}, ["fonts/remixicon.css", "fonts/remixicon.woff2"]),
    "marked": ("marked", "18.2.1", {"browser": "./lib/marked.umd.js", "main": "./lib/marked.esm.js"}, ["lib/marked.umd.js", "lib/marked.esm.js"]),
    "typed.js": ("typed.js", "2.1.0", {"unpkg": "./dist/typed.umd.js", "main": "./dist/typed.cjs"}, ["dist/typed.umd.js", "dist/typed.cjs"]),
    "vue": ("vue", "3.5.45", {"unpkg": "dist/vue.global.js", "main": "index.js", "exports": {".": {"import": {"node": "./index.mjs", "default": "./dist/vue.runtime.esm-bundler.js"}}}}, ["index.js", "dist/vue.global.js", "dist/vue.global.prod.js", "dist/vue.runtime.esm-bundler.js", "dist/vue.esm-browser.prod.js"]),
    "@fontsource/poppins": ("@fontsource/poppins", "5.3.0", {}, ["files/poppins-latin-400-normal.woff2", "files/poppins-latin-700-italic.woff2", "files/poppins-latin-700-normal.woff2"]),
    "@fontsource-variable/inter": ("@fontsource-variable/inter", "5.3.0", {}, ["files/inter-latin-wght-normal.woff2"]),
    "@fontsource/material-icons": ("@fontsource/material-icons", "5.3.0", {}, ["files/material-icons-latin-400-normal.woff2"]),
}  # fmt: skip
MODULE_SOURCES = {
    "three/build/three.module.js": "import { REVISION } from './three.core.js';\nexport { REVISION };\n",
    "three/examples/jsm/controls/OrbitControls.js": "import { Vector3 } from 'three';\nexport class OrbitControls {}\n",
    "vue/dist/vue.runtime.esm-bundler.js": "import { h } from '@vue/runtime-dom';\nexport { h };\n",
    "vue/dist/vue.esm-browser.prod.js": "function h() {}\nexport { h };\n",
    "gsap/index.js": "import { gsap } from './gsap-core.js';\nexport { gsap, gsap as default };\n",
    "d3/dist/d3.mjs": 'export * from "d3-array";\n',
}


def _font_face(family, file, weight, style="normal"):
    return (
        f"/* {file} */\n@font-face {{\n  font-family: '{family}';\n  font-style: {style};\n  font-display: swap;\n"
        f"  font-weight: {weight};\n  src: url(./files/{file}) format('woff2');\n  unicode-range: U+0000-00FF;\n}}\n"
    )


FONT_SHEETS = {
    "@fontsource/poppins": {
        "metadata.json": json.dumps({"id": "poppins", "family": "Poppins", "weights": [400, 700], "variable": False}),
        "400.css": _font_face("Poppins", "poppins-latin-400-normal.woff2", 400),
        "700.css": _font_face("Poppins", "poppins-latin-700-normal.woff2", 700),
        "700-italic.css": _font_face("Poppins", "poppins-latin-700-italic.woff2", 700, "italic"),
    },
    "@fontsource-variable/inter": {
        "metadata.json": json.dumps({"id": "inter", "family": "Inter", "variable": {"wght": {}}}),
        "wght.css": _font_face("Inter Variable", "inter-latin-wght-normal.woff2", "100 900"),
    },
    "@fontsource/material-icons": {
        "metadata.json": json.dumps({"id": "material-icons", "family": "Material Icons"}),
        "400.css": _font_face("Material Icons", "material-icons-latin-400-normal.woff2", 400),
    },
}


def build_fake_vendor(root: Path) -> Path:
    node_modules = root / "node_modules"
    for directory, (name, version, fields, files) in FAKE_PACKAGES.items():
        package = node_modules / directory
        package.mkdir(parents=True)
        (package / "package.json").write_text(json.dumps({"name": name, "version": version, **fields}))
        for relative in files:
            path = package / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(MODULE_SOURCES.get(f"{directory}/{relative}", f"/* {name}@{version} {relative} */\n"))
        for relative, text in FONT_SHEETS.get(directory, {}).items():
            (package / relative).write_text(text)
    # A file outside every package, and a symlink inside jquery pointing to it: it must never be served.
    (root / "secret.txt").write_text("secret")
    os.symlink(root / "secret.txt", node_modules / "jquery" / "dist" / "evil.js")
    stamp = {
        "spec_hash": vendor_module._spec_hash(load_vendor_packages()),
        "packages": {d: v[1] for d, v in FAKE_PACKAGES.items()},
        "size_mb": 0.1,
    }
    (root / vendor_module.STAMP_FILE).write_text(json.dumps(stamp))
    return root


@pytest.fixture(scope="module")
def fake_vendor(tmp_path_factory):
    return build_fake_vendor(tmp_path_factory.mktemp("vendor"))


@pytest.fixture
def router(fake_vendor):
    return CDNRouter(fake_vendor)


def served(router, url):
    """`(directory/relative path, version)` of the file served for `url`, or `None`."""
    asset = router.resolve(url)
    if asset is None:
        return None
    assert asset.path is not None, f"{url} gave a generated response"
    relative = asset.path.relative_to(router.vendor_dir / "node_modules").as_posix()
    return relative, asset.version


RESOLUTION_CASES = [
    # jsDelivr: explicit files, versions ignored or used to pick among installed majors, bare packages.
    ("https://cdn.jsdelivr.net/npm/jquery@3.6.0/dist/jquery.min.js", "jquery/dist/jquery.min.js", "3.8.0"),
    ("https://cdn.jsdelivr.net/npm/jquery/dist/jquery.js", "jquery/dist/jquery.js", "3.8.0"),
    ("https://cdn.jsdelivr.net/npm/jquery@3", "jquery/dist/jquery.min.js", "3.8.0"),  # main, minified
    ("https://cdn.jsdelivr.net/npm/jquery@3.6.0/dist/jquery.js?v=1#x", "jquery/dist/jquery.js", "3.8.0"),
    ("https://cdn.jsdelivr.net/npm/chart.js", "chart.js/dist/chart.umd.min.js", "4.6.1"),  # `jsdelivr` field
    ("https://cdn.jsdelivr.net/npm/chart.js@4.4.0/dist/chart.js", "chart.js/dist/chart.js", "4.6.1"),
    ("https://cdn.jsdelivr.net/npm/chart.js@2.9.4/dist/Chart.min.js", "chart.js/dist/chart.umd.min.js", "4.6.1"),
    ("https://cdn.jsdelivr.net/npm/chart.js@3.9.1/dist/chart.min.js", "chart.js/dist/chart.umd.min.js", "4.6.1"),
    ("https://fastly.jsdelivr.net/npm/three@0.128.0/build/three.min.js", "three-legacy/build/three.min.js", "0.147.0"),
    ("https://cdn.jsdelivr.net/npm/three@0.128.0/examples/js/controls/OrbitControls.js", "three-legacy/examples/js/controls/OrbitControls.js", "0.147.0"),
    ("https://cdn.jsdelivr.net/npm/three@0.160.0/build/three.module.js", "three/build/three.module.js", "0.187.0"),
    ("https://cdn.jsdelivr.net/npm/three@0.160.0/build/three.min.js", "three-legacy/build/three.min.js", "0.147.0"),
    ("https://cdn.jsdelivr.net/npm/three@0.160/examples/fonts/helvetiker_regular.typeface.json", "three-legacy/examples/fonts/helvetiker_regular.typeface.json", "0.147.0"),
    ("https://cdn.jsdelivr.net/npm/three/examples/jsm/controls/OrbitControls.js", "three/examples/jsm/controls/OrbitControls.js", "0.187.0"),
    ("https://cdn.jsdelivr.net/npm/bootstrap@5.3.0/dist/css/bootstrap.min.css", "bootstrap/dist/css/bootstrap.min.css", "5.3.9"),
    ("https://cdn.jsdelivr.net/npm/bootstrap@4.6.1/dist/css/bootstrap.min.css", "bootstrap4/dist/css/bootstrap.min.css", "4.6.2"),
    ("https://cdn.jsdelivr.net/npm/bootstrap@3.4.1/dist/css/bootstrap.min.css", "bootstrap4/dist/css/bootstrap.min.css", "4.6.2"),
    ("https://cdn.jsdelivr.net/npm/@fortawesome/fontawesome-free@6.4.0/css/all.min.css", "@fortawesome/fontawesome-free/css/all.min.css", "6.7.2"),
    ("https://cdn.jsdelivr.net/npm/marked/marked.min.js", "marked/lib/marked.umd.js", "18.2.1"),
    ("https://cdn.jsdelivr.net/npm/marked", "marked/lib/marked.umd.js", "18.2.1"),  # `browser` field
    ("https://cdn.jsdelivr.net/npm/typed.js@2.0.12", "typed.js/dist/typed.umd.js", "2.1.0"),  # `unpkg` before `main`
    ("https://cdn.jsdelivr.net/npm/alpinejs@3.x.x/dist/cdn.min.js", "alpinejs/dist/cdn.min.js", "3.17.5"),
    ("https://cdn.jsdelivr.net/npm/alpinejs@3.x.x/dist/cdn.js", "alpinejs/dist/cdn.js", "3.17.5"),
    ("https://cdn.jsdelivr.net/npm/d3-scale@4/dist/d3-scale.min.js", "d3-scale/dist/d3-scale.min.js", "4.0.2"),
    # unpkg: `unpkg` field, no minification of default files.
    ("https://unpkg.com/react@18/umd/react.production.min.js", "react/umd/react.production.min.js", "18.3.1"),
    ("https://unpkg.com/alpinejs", "alpinejs/dist/cdn.min.js", "3.17.5"),
    ("https://unpkg.com/jquery@3.7.1", "jquery/dist/jquery.js", "3.8.0"),
    ("https://unpkg.com/@babel/standalone/babel.min.js", "@babel/standalone/babel.min.js", "7.29.13"),
    ("https://unpkg.com/vue@3", "vue/dist/vue.global.js", "3.5.45"),
    ("https://ga.jspm.io/npm:three@0.160.0/build/three.module.js", "three/build/three.module.js", "0.187.0"),
    # cdnjs: library names mapped to packages, files looked up under the usual build directories, then by name.
    ("https://cdnjs.cloudflare.com/ajax/libs/three.js/r128/three.min.js", "three-legacy/build/three.min.js", "0.147.0"),
    ("https://cdnjs.cloudflare.com/ajax/libs/three.js/0.160.0/three.module.js", "three/build/three.module.js", "0.187.0"),
    ("https://cdnjs.cloudflare.com/ajax/libs/jquery/3.7.1/jquery.min.js", "jquery/dist/jquery.min.js", "3.8.0"),
    ("https://cdnjs.cloudflare.com/ajax/libs/Chart.js/3.9.1/chart.min.js", "chart.js/dist/chart.umd.min.js", "4.6.1"),
    ("https://cdnjs.cloudflare.com/ajax/libs/Chart.js/4.4.1/chart.umd.min.js", "chart.js/dist/chart.umd.min.js", "4.6.1"),
    ("https://cdnjs.cloudflare.com/ajax/libs/font-awesome/4.7.0/css/font-awesome.min.css", "font-awesome/css/font-awesome.min.css", "4.7.0"),
    ("https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.4.0/css/all.min.css", "@fortawesome/fontawesome-free/css/all.min.css", "6.7.2"),
    ("https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.4.0/webfonts/fa-solid-900.woff2", "@fortawesome/fontawesome-free/webfonts/fa-solid-900.woff2", "6.7.2"),
    ("https://cdnjs.cloudflare.com/ajax/libs/gsap/3.12.2/gsap.min.js", "gsap/dist/gsap.min.js", "3.15.0"),
    # The root `ScrollTrigger.js` is an ES module: the UMD `dist/ScrollTrigger.min.js` must win.
    ("https://cdnjs.cloudflare.com/ajax/libs/gsap/3.12.2/ScrollTrigger.min.js", "gsap/dist/ScrollTrigger.min.js", "3.15.0"),
    ("https://cdnjs.cloudflare.com/ajax/libs/lodash.js/4.17.21/lodash.min.js", "lodash/lodash.min.js", "4.18.1"),
    ("https://cdnjs.cloudflare.com/ajax/libs/babel-standalone/7.23.5/babel.min.js", "@babel/standalone/babel.min.js", "7.29.13"),
    ("https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.16.1/umd/popper.min.js", "popper.js/dist/umd/popper.min.js", "1.16.1"),
    ("https://cdnjs.cloudflare.com/ajax/libs/popper.js/2.11.8/umd/popper.min.js", "@popperjs/core/dist/umd/popper.min.js", "2.11.8"),
    ("https://cdnjs.cloudflare.com/ajax/libs/p5.js/1.4.0/p5.min.js", "p5/lib/p5.min.js", "1.11.13"),
    ("https://cdnjs.cloudflare.com/ajax/libs/p5.js/1.4.0/addons/p5.sound.min.js", "p5/lib/addons/p5.sound.min.js", "1.11.13"),
    ("https://cdnjs.cloudflare.com/ajax/libs/remixicon/4.2.0/remixicon.css", "remixicon/fonts/remixicon.css", "4.9.1"),
    ("https://cdnjs.cloudflare.com/ajax/libs/remixicon/4.2.0/remixicon.min.css", "remixicon/fonts/remixicon.css", "4.9.1"),
    ("https://cdnjs.cloudflare.com/ajax/libs/vue/3.3.4/vue.global.prod.min.js", "vue/dist/vue.global.prod.js", "3.5.45"),
    ("https://cdnjs.cloudflare.com/ajax/libs/twitter-bootstrap/4.6.2/js/bootstrap.bundle.min.js", "bootstrap4/dist/js/bootstrap.bundle.min.js", "4.6.2"),
    # Google's, jQuery's, BootstrapCDN's, D3's and Plotly's own CDNs.
    ("https://ajax.googleapis.com/ajax/libs/jquery/3.6.0/jquery.min.js", "jquery/dist/jquery.min.js", "3.8.0"),
    ("https://ajax.googleapis.com/ajax/libs/threejs/r84/three.min.js", "three-legacy/build/three.min.js", "0.147.0"),
    ("https://ajax.googleapis.com/ajax/libs/jqueryui/1.12.1/jquery-ui.min.js", "jquery-ui/dist/jquery-ui.min.js", "1.14.2"),
    ("https://code.jquery.com/jquery-3.6.0.min.js", "jquery/dist/jquery.min.js", "3.8.0"),
    ("https://code.jquery.com/jquery-3.7.1.js", "jquery/dist/jquery.js", "3.8.0"),
    ("https://code.jquery.com/jquery-3.7.1.slim.min.js", "jquery/dist/jquery.slim.min.js", "3.8.0"),
    ("https://code.jquery.com/jquery-latest.min.js", "jquery/dist/jquery.min.js", "3.8.0"),
    ("https://code.jquery.com/ui/1.13.2/jquery-ui.min.js", "jquery-ui/dist/jquery-ui.min.js", "1.14.2"),
    ("https://code.jquery.com/ui/1.13.2/themes/base/jquery-ui.css", "jquery-ui/dist/themes/base/jquery-ui.css", "1.14.2"),
    ("https://stackpath.bootstrapcdn.com/bootstrap/4.5.2/css/bootstrap.min.css", "bootstrap4/dist/css/bootstrap.min.css", "4.6.2"),
    ("https://maxcdn.bootstrapcdn.com/bootstrap/5.0.0/js/bootstrap.bundle.min.js", "bootstrap/dist/js/bootstrap.bundle.min.js", "5.3.9"),
    ("https://maxcdn.bootstrapcdn.com/font-awesome/4.7.0/css/font-awesome.min.css", "font-awesome/css/font-awesome.min.css", "4.7.0"),
    ("https://d3js.org/d3.v7.min.js", "d3/dist/d3.min.js", "7.9.2"),
    ("https://d3js.org/d3.v5.js", "d3/dist/d3.js", "7.9.2"),
    ("https://d3js.org/d3-scale.v4.min.js", "d3-scale/dist/d3-scale.min.js", "4.0.2"),
    ("https://cdn.plot.ly/plotly-2.27.0.min.js", "plotly.js-dist-min/plotly.min.js", "4.1.2"),
    ("https://cdn.plot.ly/plotly-latest.min.js", "plotly.js-dist-min/plotly.min.js", "4.1.2"),
    ("https://use.fontawesome.com/releases/v5.15.4/css/all.css", "@fortawesome/fontawesome-free/css/all.css", "6.7.2"),
    ("https://use.fontawesome.com/releases/v6.4.0/webfonts/fa-solid-900.woff2", "@fortawesome/fontawesome-free/webfonts/fa-solid-900.woff2", "6.7.2"),
]  # fmt: skip


@pytest.mark.parametrize("url, expected, version", RESOLUTION_CASES)
def test_resolution(router, url, expected, version):
    assert served(router, url) == (expected, version)


NOT_SERVED = [
    "https://cdn.jsdelivr.net/npm/jquery@3.6.0/dist/nonexistent.js",
    "https://cdn.jsdelivr.net/npm/not-a-package@1.0.0/index.js",
    "https://cdn.jsdelivr.net/npm/@scope/not-a-package/index.js",
    "https://cdn.jsdelivr.net/gh/user/repo@main/lib.js",
    "https://cdn.jsdelivr.net/npm/jquery@3.6.0/",
    "https://unpkg.com/browse/jquery@3.7.1/",
    "https://cdnjs.cloudflare.com/ajax/libs/not-a-lib/1.0.0/lib.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/jquery/3.7.1/not-there.min.js",
    "https://ajax.googleapis.com/ajax/libs/angularjs/1.8.2/angular.min.js",
    "https://code.jquery.com/jquery-migrate-3.4.1.min.js",
    "https://d3js.org/topojson.v1.min.js",
    "https://images.unsplash.com/photo-1?w=800",
    "https://example.com/app.js",
    "ftp://example.com/x.js",
    # Path traversal, raw and encoded, and a symlink out of the package: never served.
    "https://cdn.jsdelivr.net/npm/jquery@3/../../../secret.txt",
    "https://cdn.jsdelivr.net/npm/jquery@3/dist/../../../secret.txt",
    "https://cdn.jsdelivr.net/npm/jquery@3/%2e%2e/%2e%2e/secret.txt",
    "https://cdn.jsdelivr.net/npm/jquery@3/dist/..%2f..%2f..%2fsecret.txt",
    "https://cdn.jsdelivr.net/npm/jquery@3/dist%5c..%5c..%5c..%5csecret.txt",
    "https://cdn.jsdelivr.net/npm/jquery@3/dist/evil.js",
    "https://cdn.jsdelivr.net/npm/../secret.txt",
    "https://cdn.jsdelivr.net/npm/..%2fsecret.txt",
    "https://cdnjs.cloudflare.com/ajax/libs/jquery/3.7.1/../../../../secret.txt",
    "https://cdnjs.cloudflare.com/ajax/libs/..%2f..%2fsecret.txt/1/x",
    "https://unpkg.com/jquery@3/%2e%2e/jquery-ui/dist/jquery-ui.min.js",
    "https://code.jquery.com/ui/1.13.2/../../../secret.txt",
    "https://cdn.jsdelivr.net/npm/jquery@3/dist/jquery.js%00.css",
]


@pytest.mark.parametrize("url", NOT_SERVED)
def test_not_served(router, url):
    assert router.resolve(url) is None


def test_every_served_path_stays_in_the_vendor_dir(router, fake_vendor):
    root = os.path.realpath(fake_vendor / "node_modules")
    for url, _, _ in RESOLUTION_CASES:
        assert os.path.realpath(router.resolve(url).path).startswith(root + os.sep)


def test_other_major_is_logged_at_debug(router, caplog):
    with caplog.at_level("DEBUG", logger="trl_ext.web.vendor"):
        router.resolve("https://cdn.jsdelivr.net/npm/jquery@2.2.4/dist/jquery.min.js")
        router.resolve("https://cdn.jsdelivr.net/npm/jquery@3.1.0/dist/jquery.js")
    assert [r.getMessage() for r in caplog.records] == [
        "Serving jquery@3.8.0 for https://cdn.jsdelivr.net/npm/jquery@2.2.4/dist/jquery.min.js (requested 2.2.4)"
    ]


def test_asset_headers_and_content_types(router):
    css = router.resolve("https://cdn.jsdelivr.net/npm/bootstrap@5/dist/css/bootstrap.min.css")
    font = router.resolve("https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.4.0/webfonts/fa-solid-900.woff2")
    js = router.resolve("https://code.jquery.com/jquery-3.6.0.min.js")
    assert css.content_type == "text/css; charset=utf-8"
    assert font.content_type == "font/woff2"
    assert js.content_type == "application/javascript; charset=utf-8"
    # Fonts and module scripts are CORS requests from the page's origin.
    assert js.response_headers()["access-control-allow-origin"] == "*"
    assert js.read_bytes() == b"/* jquery@3.8.0 dist/jquery.min.js */\n"


def test_tailwind_play_cdn_serves_v4_behind_the_v3_layer(router):
    for url in ("https://cdn.tailwindcss.com", "https://cdn.tailwindcss.com/3.4.16?plugins=forms,typography"):
        asset = router.resolve(url)
        body = asset.read_bytes().decode()
        assert asset.content_type.startswith("application/javascript")
        assert body.startswith("/* trl_ext: Tailwind v3 Play CDN compatibility layer")
        assert body.index("window.tailwind = api") < body.index("@tailwindcss/browser@4.3.4 dist/index.global.js")
    direct = served(router, "https://cdn.jsdelivr.net/npm/@tailwindcss/browser@4")
    assert direct == ("@tailwindcss/browser/dist/index.global.js", "4.3.4")


def test_esm_endpoints_reexport_self_contained_modules(router):
    target = '"https://cdn.jsdelivr.net/npm/three@0.187.0/build/three.module.js"'
    for url in (
        "https://cdn.jsdelivr.net/npm/three@0.160/+esm",
        "https://esm.sh/three@0.160.0",
        "https://esm.run/three",
        "https://cdn.skypack.dev/three",
    ):
        body = router.resolve(url).read_bytes().decode()
        assert body == f"export * from {target};\n", url
    # A default export is re-exported only when the module has one (a missing one is a link error).
    gsap = router.resolve("https://cdn.jsdelivr.net/npm/gsap@3/+esm").read_bytes().decode()
    assert 'export { default } from "https://cdn.jsdelivr.net/npm/gsap@3.15.0/index.js";' in gsap
    vue = router.resolve("https://cdn.jsdelivr.net/npm/vue@3/+esm").read_bytes().decode()
    assert "vue@3.5.45/dist/vue.esm-browser.prod.js" in vue  # not the bundler build with bare imports
    # Modules importing bare specifiers would need jsDelivr's bundling: not served.
    assert router.resolve("https://cdn.jsdelivr.net/npm/d3@7/+esm") is None
    assert router.resolve("https://esm.sh/three@0.160.0/examples/jsm/controls/OrbitControls.js") is None
    assert router.resolve("https://cdn.jsdelivr.net/npm/three@0.160/../../secret.txt/+esm") is None


def test_font_awesome_kit(router):
    body = router.resolve("https://kit.fontawesome.com/0123abcd.js").read_bytes().decode()
    assert "https://cdn.jsdelivr.net/npm/@fortawesome/fontawesome-free@6.7.2/css/all.min.css" in body
    assert served(router, "https://cdn.jsdelivr.net/npm/@fortawesome/fontawesome-free@6.7.2/css/all.min.css")


def test_google_fonts_css2(router):
    url = "https://fonts.googleapis.com/css2?family=Poppins:ital,wght@0,400;1,700&family=Inter:wght@300..800&display=swap"
    css = router.resolve(url).read_bytes().decode()
    base = "https://cdn.jsdelivr.net/npm/@fontsource/poppins@5.3.0/files/"
    assert f"url({base}poppins-latin-400-normal.woff2)" in css
    assert f"url({base}poppins-latin-700-italic.woff2)" in css
    assert "poppins-latin-700-normal" not in css  # only the requested styles
    # The variable font is renamed from "Inter Variable" to the family the page asked for.
    assert "font-family: 'Inter';" in css and "Inter Variable" not in css
    assert "@fontsource-variable/inter@5.3.0/files/inter-latin-wght-normal.woff2" in css
    for font_url in (f"{base}poppins-latin-400-normal.woff2", f"{base}poppins-latin-700-italic.woff2"):
        assert router.resolve(font_url).content_type == "font/woff2"


def test_google_fonts_css1_icons_and_unknown_families(router):
    css = router.resolve("https://fonts.googleapis.com/css?family=Poppins:400,700italic|Comic+Neue").read_bytes()
    assert b"poppins-latin-700-italic.woff2" in css and b"Comic Neue" in css
    icons = router.resolve("https://fonts.googleapis.com/icon?family=Material+Icons").read_bytes().decode()
    assert ".material-icons {" in icons and "font-family: 'Material Icons'" in icons
    unknown = router.resolve("https://fonts.bunny.net/css2?family=Comic+Neue:wght@700")
    assert unknown.read_bytes().decode().startswith("/* trl_ext: font family 'Comic Neue' is not vendored")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("Roboto:ital,wght@0,400;1,700", ("Roboto", {(400, False), (700, True)})),
        ("Inter:wght@100..900", ("Inter", {(100, False)})),
        ("Open Sans", ("Open Sans", set())),
        ("Lato:ital", ("Lato", {(400, False), (400, True)})),
        ("Material Symbols Outlined:opsz,wght,FILL,GRAD@20..48,100..700,0..1,-50..200", ("Material Symbols Outlined", {(100, False)})),
    ],
)  # fmt: skip
def test_parse_css2_family(value, expected):
    assert vendor_module._parse_css2_family(value) == expected


def test_parse_css1_family():
    parse = vendor_module._parse_css1_family
    assert parse("Roboto:300,400italic,700i,bold") == (
        "Roboto",
        {(300, False), (400, True), (700, True), (700, False)},
    )
    assert parse("Open Sans") == ("Open Sans", set())


@pytest.mark.parametrize(
    "text, expected",
    [("3.7.1", (3, 7, 1)), ("^3.2", (3, 2)), ("~1.2.3", (1, 2, 3)), ("3.x.x", (3,)), ("v5.15.4", (5, 15, 4)),
     ("r128", (0, 128)), ("0.160", (0, 160)), ("4.0.0-beta.1", (4, 0, 0)), ("latest", None), ("", None), (None, None)],
)  # fmt: skip
def test_parse_version(text, expected):
    assert vendor_module._parse_version(text) == expected


def test_strip_integrity():
    html = (
        '<link rel="stylesheet" href="a.css" integrity="sha384-abc" crossorigin="anonymous">'
        "<script src='b.js' integrity='sha256-x'></script><script integrity=sha512-y src=c.js></script>"
        '<p integrity="kept">text integrity="kept"</p>'
    )
    assert strip_integrity(html) == (
        '<link rel="stylesheet" href="a.css" crossorigin="anonymous">'
        "<script src='b.js'></script><script src=c.js></script>"
        '<p integrity="kept">text integrity="kept"</p>'
    )


# ----------------------------------------------------------------------------------------------------------------------
# The Playwright handlers, with a stand-in for Playwright's Route


class FakeRequest:
    def __init__(self, url):
        self.url = url
        self.method = "GET"


class FakeRoute:
    def __init__(self, url):
        self.request = FakeRequest(url)
        self.calls = []

    def fulfill(self, **kwargs):
        self.calls.append(("fulfill", kwargs))

    def abort(self, error_code=None):
        self.calls.append(("abort", error_code))

    def fallback(self, **kwargs):
        self.calls.append(("fallback", None))


class AsyncFakeRoute(FakeRoute):
    async def fulfill(self, **kwargs):
        super().fulfill(**kwargs)

    async def abort(self, error_code=None):
        super().abort(error_code)

    async def fallback(self, **kwargs):
        super().fallback()


def test_handle_fulfills_aborts_and_passes(router):
    router = CDNRouter(router.vendor_dir, allowed_origins=["http://127.0.0.1:8765", "http://page.test"])
    urls = {
        "https://code.jquery.com/jquery-3.6.0.min.js": "fulfill",
        "https://unknown.example.com/lib.js": "abort",
        "https://images.unsplash.com/photo-1": "abort",
        "https://images.unsplash.com/photo-2": "abort",
        "https://cdn.jsdelivr.net/npm/phaser@3/dist/phaser.min.js": "abort",
        "https://fonts.googleapis.com/css2?family=Comic+Neue": "fulfill",
        "data:text/plain,hi": "fallback",
        "blob:http://page.test/1234": "fallback",
        "about:blank": "fallback",
        "http://127.0.0.1:8765/index.html": "fallback",
        "http://page.test:80/app.js": "fallback",
        "http://127.0.0.1:9999/admin": "abort",  # another port: a host service the page must not reach
        "http://localhost:8765/index.html": "abort",
    }
    for url, expected in urls.items():
        route = FakeRoute(url)
        router.handle_sync(route)
        assert [call[0] for call in route.calls] == [expected], url
        if expected == "abort":
            assert route.calls[0][1] == "internetdisconnected"
        if expected == "fulfill":
            assert route.calls[0][1]["status"] == 200 and route.calls[0][1]["body"]
    assert router.missed == {
        "unknown.example.com": 1,
        "images.unsplash.com": 2,
        "cdn.jsdelivr.net/npm/phaser": 1,
        "fonts.googleapis.com/Comic Neue": 1,
        "127.0.0.1": 1,
        "localhost": 1,
    }
    assert router.served["jquery@3.8.0"] == 1
    assert "images.unsplash.com" in router.missed_report().splitlines()[0]

    route = AsyncFakeRoute("https://code.jquery.com/jquery-3.6.0.min.js")
    asyncio.run(router.handle(route))
    assert route.calls[0][0] == "fulfill" and route.calls[0][1]["headers"]["content-type"].startswith(
        "application/javascript"
    )
    route = AsyncFakeRoute("https://example.org/x.js")
    asyncio.run(router.handle(route))
    assert route.calls == [("abort", "internetdisconnected")]


def test_handle_survives_a_closed_page(router):
    class ClosedRoute(FakeRoute):
        def fulfill(self, **kwargs):
            raise RuntimeError("Target page, context or browser has been closed")

    router.handle_sync(ClosedRoute("https://code.jquery.com/jquery-3.6.0.min.js"))  # no exception


def test_unavailable_router_aborts_and_warns_once(tmp_path):
    router = CDNRouter(tmp_path / "nothing-here")
    assert not router.available
    assert "python -m trl_ext.web.vendor install" in router.unavailable_reason
    with pytest.warns(UserWarning, match="trl_ext.web.vendor install") as record:
        for url in ("https://cdn.tailwindcss.com", "https://code.jquery.com/jquery-3.6.0.min.js"):
            route = FakeRoute(url)
            router.handle_sync(route)
            assert route.calls == [("abort", "internetdisconnected")]
    assert len(record) == 1
    route = FakeRoute("https://fonts.googleapis.com/css2?family=Inter")
    router.handle_sync(route)  # an empty stylesheet needs no install
    assert route.calls[0][0] == "fulfill"
    assert router.missed == {"cdn.tailwindcss.com": 1, "code.jquery.com": 1}


def test_allowed_origins_are_validated():
    with pytest.raises(ValueError, match="allowed_origins"):
        CDNRouter("/nonexistent", allowed_origins=["127.0.0.1:8000"])


# ----------------------------------------------------------------------------------------------------------------------
# Install and command line


def _fake_npm(tmp_path, log):
    """An `npm` that records its arguments and creates every dependency of package.json (plus a source map)."""
    script = tmp_path / "npm"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "prefix = sys.argv[sys.argv.index('--prefix') + 1]\n"
        "deps = json.load(open(os.path.join(prefix, 'package.json')))['dependencies']\n"
        "for name, spec in deps.items():\n"
        "    d = os.path.join(prefix, 'node_modules', name)\n"
        "    os.makedirs(d, exist_ok=True)\n"
        "    version = spec.rsplit('@', 1)[-1] if spec.startswith('npm:') else spec\n"
        "    json.dump({'name': name, 'version': version}, open(os.path.join(d, 'package.json'), 'w'))\n"
        "    open(os.path.join(d, 'index.js.map'), 'w').write('{}')\n"
        "    os.makedirs(os.path.join(d, 'src'), exist_ok=True)\n"
        "    open(os.path.join(d, 'src', 'a.js'), 'w').write('')\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def test_install_vendor_is_idempotent_and_prunes(tmp_path):
    log = tmp_path / "npm.log"
    npm = _fake_npm(tmp_path, log)
    target = tmp_path / "vendor"
    assert install_vendor(target, npm=str(npm)) == target
    [args] = [json.loads(line) for line in log.read_text().splitlines()]
    assert args[:3] == ["install", "--prefix", str(target)] and "--ignore-scripts" in args
    spec = load_vendor_packages()
    assert json.loads((target / "package.json").read_text())["dependencies"] == spec["dependencies"]
    status = vendor_status(target)
    assert status["installed"] and status["up_to_date"] and set(status["packages"]) == set(spec["dependencies"])
    assert not list(target.rglob("*.map"))  # source maps pruned
    assert not (target / "node_modules" / "three" / "src").exists()  # listed in trlExt.prune
    assert (target / "node_modules" / "jquery" / "src" / "a.js").exists()  # not listed: kept
    install_vendor(target, npm=str(npm))
    assert len(log.read_text().splitlines()) == 1, "an up-to-date install must not run npm again"
    install_vendor(target, npm=str(npm), force=True)
    assert len(log.read_text().splitlines()) == 2


def test_install_vendor_errors(tmp_path):
    with pytest.raises(RuntimeError, match="npm executable 'no-such-npm' not found"):
        install_vendor(tmp_path / "v", npm="no-such-npm")
    failing = tmp_path / "failing-npm"
    failing.write_text("#!/bin/sh\necho 'E404 no such package' >&2\nexit 1\n")
    failing.chmod(0o755)
    with pytest.raises(RuntimeError, match="E404 no such package"):
        install_vendor(tmp_path / "v", npm=str(failing))
    assert not vendor_status(tmp_path / "v")["installed"]


def test_default_vendor_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("TRL_EXT_WEB_VENDOR", str(tmp_path / "x"))
    assert default_vendor_dir() == tmp_path / "x"
    monkeypatch.delenv("TRL_EXT_WEB_VENDOR")
    assert default_vendor_dir() == Path.home() / ".cache" / "trl_ext" / "web_vendor"


def test_cli(fake_vendor, capsys):
    url = "https://cdnjs.cloudflare.com/ajax/libs/three.js/r128/three.min.js"
    assert vendor_module.main(["--dir", str(fake_vendor), "resolve", url]) == 0
    assert "three-legacy/build/three.min.js" in capsys.readouterr().out
    assert vendor_module.main(["resolve", "--dir", str(fake_vendor), "https://example.com/x.js"]) == 1
    assert "not served" in capsys.readouterr().out
    assert vendor_module.main(["list", "--dir", str(fake_vendor)]) == 0
    assert "three-legacy" in capsys.readouterr().out


def test_pinned_packages_are_exact_versions():
    spec = load_vendor_packages()
    for name, version in spec["dependencies"].items():
        pinned = version.rsplit("@", 1)[-1] if version.startswith("npm:") else version
        assert vendor_module._parse_version(pinned) and pinned[0].isdigit(), f"{name} is not pinned: {version}"


# ----------------------------------------------------------------------------------------------------------------------
# The real install (`python -m trl_ext.web.vendor install`)

REAL = vendor_status()
needs_install = pytest.mark.skipif(
    not REAL["installed"],
    reason=f"vendored web libraries not installed in {REAL['vendor_dir']}: run `python -m trl_ext.web.vendor install`",
)

REAL_URLS = [
    "https://cdn.tailwindcss.com/3.4.16",
    "https://cdn.jsdelivr.net/npm/@tailwindcss/browser@4",
    "https://cdn.jsdelivr.net/npm/tailwindcss@2.2.19/dist/tailwind.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/three.js/r128/three.min.js",
    "https://cdn.jsdelivr.net/npm/three@0.128.0/examples/js/controls/OrbitControls.js",
    "https://unpkg.com/three@0.160.0/examples/jsm/controls/OrbitControls.js",
    "https://cdn.jsdelivr.net/npm/three@0.160/+esm",
    "https://cdn.jsdelivr.net/npm/chart.js",
    "https://cdnjs.cloudflare.com/ajax/libs/Chart.js/3.9.1/chart.min.js",
    "https://d3js.org/d3.v7.min.js",
    "https://code.jquery.com/jquery-3.6.0.min.js",
    "https://code.jquery.com/ui/1.13.2/themes/base/jquery-ui.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.5.2/css/bootstrap.min.css",
    "https://cdn.jsdelivr.net/npm/bootstrap@5.3.0/dist/js/bootstrap.bundle.min.js",
    "https://cdn.jsdelivr.net/npm/bootstrap-icons@1.11.3/font/fonts/bootstrap-icons.woff2",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.4.0/webfonts/fa-solid-900.woff2",
    "https://maxcdn.bootstrapcdn.com/font-awesome/4.7.0/fonts/fontawesome-webfont.woff2?v=4.7.0",
    "https://kit.fontawesome.com/0123abcd.js",
    "https://cdnjs.cloudflare.com/ajax/libs/gsap/3.12.2/ScrollTrigger.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/animejs/3.2.1/anime.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/p5.js/1.4.0/p5.min.js",
    "https://cdn.jsdelivr.net/npm/alpinejs@3.x.x/dist/cdn.min.js",
    "https://unpkg.com/vue@3/dist/vue.global.js",
    "https://cdn.jsdelivr.net/npm/vue@2.6.14/dist/vue.js",
    "https://unpkg.com/react@18/umd/react.production.min.js",
    "https://unpkg.com/react-dom@18/umd/react-dom.production.min.js",
    "https://unpkg.com/@babel/standalone/babel.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/lodash.js/4.17.21/lodash.min.js",
    "https://cdn.plot.ly/plotly-2.27.0.min.js",
    "https://cdn.jsdelivr.net/npm/echarts@5.4.3/dist/echarts.min.js",
    "https://cdn.jsdelivr.net/npm/apexcharts",
    "https://unpkg.com/leaflet@1.9.4/dist/leaflet.css",
    "https://unpkg.com/leaflet@1.9.4/dist/images/marker-icon.png",
    "https://unpkg.com/aos@2.3.1/dist/aos.js",
    "https://cdnjs.cloudflare.com/ajax/libs/animate.css/4.1.1/animate.min.css",
    "https://unpkg.com/lucide@latest",
    "https://unpkg.com/feather-icons",
    "https://cdn.jsdelivr.net/npm/remixicon@4.2.0/fonts/remixicon.css",
    "https://cdn.jsdelivr.net/npm/swiper@11/swiper-bundle.min.js",
    "https://cdn.jsdelivr.net/npm/typed.js@2.0.12",
    "https://cdn.jsdelivr.net/npm/canvas-confetti@1.6.0/dist/confetti.browser.min.js",
    "https://cdn.jsdelivr.net/npm/marked/marked.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/prism/1.29.0/prism.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/highlight.js/11.9.0/styles/github-dark.min.css",
    "https://cdn.jsdelivr.net/npm/katex@0.16.9/dist/fonts/KaTeX_Main-Regular.woff2",
    "https://cdn.jsdelivr.net/npm/daisyui@4.12.10/dist/full.min.css",
    "https://cdn.jsdelivr.net/npm/vanta@latest/dist/vanta.globe.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/matter-js/0.19.0/matter.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/howler/2.2.4/howler.min.js",
    "https://cdn.jsdelivr.net/npm/sweetalert2@11",
    "https://cdn.jsdelivr.net/npm/bulma@0.9.4/css/bulma.min.css",
]


@needs_install
def test_real_install_serves_the_documented_patterns():
    router = CDNRouter()
    missing = [url for url in REAL_URLS if router.resolve(url) is None]
    assert not missing
    css = router.resolve("https://fonts.googleapis.com/css2?family=Inter:wght@400;700&family=Poppins:wght@600")
    text = css.read_bytes().decode()
    assert "font-family: 'Inter'" in text and "font-family: 'Poppins'" in text
    # Every font file the stylesheet references is served too.
    for font_url in {u for u in __import__("re").findall(r"url\((https://[^)]+)\)", text)}:
        assert router.resolve(font_url) is not None, font_url
    assert REAL["up_to_date"] and set(REAL["packages"]) == set(load_vendor_packages()["dependencies"])


# ----------------------------------------------------------------------------------------------------------------------
# Real Chromium


def _browser_skip_reason():
    if not os.path.exists(CHROMIUM):
        return f"Debian's chromium not found at {CHROMIUM}"
    if not REAL["installed"]:
        return (
            f"vendored web libraries not installed in {REAL['vendor_dir']}: run `python -m trl_ext.web.vendor install`"
        )
    return None


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page_with_router(browser):
    router = CDNRouter()
    context = browser.new_context(viewport={"width": 800, "height": 600})
    router.attach_sync(context)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page, router, errors
    context.close()


def load(page, html, timeout=10_000):
    start = time.monotonic()
    page.set_content(html, wait_until="load", timeout=timeout)
    return time.monotonic() - start


TAILWIND_PAGE = """<!DOCTYPE html><html><head><title>t</title>
<script src="https://cdn.tailwindcss.com?plugins=forms,typography"></script>
<script>
  tailwind.config = {
    darkMode: 'class',
    theme: { extend: { colors: { primary: '#ff0000', brand: { 500: '#00ff00', DEFAULT: '#0000ff' } },
                       fontFamily: { display: ['Playfair Display', 'serif'] }, spacing: { header: '64px' } } }
  }
</script>
<style type="text/tailwindcss">
  @tailwind base; @tailwind components; @tailwind utilities;
  @layer components { .btn { @apply px-4 py-2 rounded-lg; } }
</style></head>
<body class="dark">
  <div id="plain" class="p-4 mt-2 bg-blue-500 text-white font-bold flex">plain</div>
  <div id="config" class="bg-primary font-display h-header">config</div>
  <div id="dark" class="bg-brand-500 dark:bg-brand">dark</div>
  <button id="btn" class="btn border">button</button>
</body></html>"""


@pytest.mark.browser
@pytest.mark.skipif(_browser_skip_reason() is not None, reason=str(_browser_skip_reason()))
def test_tailwind_play_cdn_applies_utilities_and_v3_config(page_with_router):
    page, router, errors = page_with_router
    load(page, TAILWIND_PAGE)
    page.wait_for_function("getComputedStyle(document.getElementById('config')).backgroundColor === 'rgb(255, 0, 0)'")
    style = page.evaluate(
        """() => Object.fromEntries(['plain', 'config', 'dark', 'btn'].map(id => {
            const s = getComputedStyle(document.getElementById(id));
            return [id, {padding: s.paddingTop, margin: s.marginTop, bg: s.backgroundColor, weight: s.fontWeight,
                         display: s.display, font: s.fontFamily, height: s.height, cursor: s.cursor,
                         paddingX: s.paddingLeft, radius: s.borderTopLeftRadius, border: s.borderTopColor}];
        }))"""
    )
    assert style["plain"]["padding"] == "16px" and style["plain"]["margin"] == "8px"
    assert style["plain"]["display"] == "flex" and style["plain"]["weight"] == "700"
    assert style["plain"]["bg"] != "rgba(0, 0, 0, 0)"  # blue-500 (an oklch color in v4)
    assert style["config"]["bg"] == "rgb(255, 0, 0)"  # theme.extend.colors
    assert style["config"]["font"].startswith('"Playfair Display"')  # theme.extend.fontFamily
    assert style["config"]["height"] == "64px"  # theme.extend.spacing
    assert style["dark"]["bg"] == "rgb(0, 0, 255)"  # darkMode: 'class' with <body class="dark">
    assert style["btn"]["paddingX"] == "16px" and style["btn"]["radius"] == "8px"  # @apply after @tailwind lines
    assert style["btn"]["cursor"] == "pointer"  # v3's button cursor restored
    assert not errors, errors
    assert router.served["tailwind-play-cdn"] == 1 and not router.missed


@pytest.mark.browser
@pytest.mark.skipif(_browser_skip_reason() is not None, reason=str(_browser_skip_reason()))
def test_chartjs_draws_on_its_canvas(page_with_router):
    page, router, errors = page_with_router
    load(
        page,
        """<!DOCTYPE html><html><head><title>c</title>
        <script src="https://cdn.jsdelivr.net/npm/chart.js@4.4.0/dist/chart.umd.min.js"></script></head>
        <body><canvas id="c" width="400" height="300"></canvas><script>
        new Chart(document.getElementById('c'), {type: 'bar', options: {animation: false, responsive: false},
          data: {labels: ['a', 'b', 'c'], datasets: [{data: [3, 7, 5], backgroundColor: 'rgb(255, 0, 0)'}]}});
        </script></body></html>""",
    )
    pixels = page.evaluate(
        """() => { const c = document.getElementById('c'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let drawn = 0, red = 0; for (let i = 0; i < d.length; i += 4) { if (d[i + 3] > 0) drawn++;
        if (d[i] === 255 && d[i + 1] === 0 && d[i + 2] === 0 && d[i + 3] === 255) red++; } return {drawn, red}; }"""
    )
    assert pixels["red"] > 1000, pixels  # the three bars
    assert pixels["drawn"] > pixels["red"]  # plus axes and labels
    assert not errors, errors


@pytest.mark.browser
@pytest.mark.skipif(_browser_skip_reason() is not None, reason=str(_browser_skip_reason()))
def test_threejs_r128_umd_and_addons_render(page_with_router):
    page, router, errors = page_with_router
    load(
        page,
        """<!DOCTYPE html><html><head><title>3</title>
        <script src="https://cdnjs.cloudflare.com/ajax/libs/three.js/r128/three.min.js"></script>
        <script src="https://cdn.jsdelivr.net/npm/three@0.128.0/examples/js/controls/OrbitControls.js"></script></head>
        <body style="margin:0"><script>
        window.result = {three: typeof THREE, orbit: typeof THREE.OrbitControls};
        try {
          const renderer = new THREE.WebGLRenderer({preserveDrawingBuffer: true}); renderer.setSize(200, 200);
          document.body.appendChild(renderer.domElement);
          const scene = new THREE.Scene(); scene.background = new THREE.Color(0x000000);
          const camera = new THREE.PerspectiveCamera(50, 1, 0.1, 100); camera.position.z = 3;
          new THREE.OrbitControls(camera, renderer.domElement);
          scene.add(new THREE.Mesh(new THREE.BoxGeometry(), new THREE.MeshBasicMaterial({color: 0xff0000})));
          renderer.render(scene, camera);
          const gl = renderer.getContext(), px = new Uint8Array(4);
          gl.readPixels(100, 100, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, px); window.result.center = Array.from(px);
        } catch (e) { window.result.webgl_error = String(e); }
        </script></body></html>""",
    )
    result = page.evaluate("window.result")
    assert result["three"] == "object" and result["orbit"] == "function"
    if "webgl_error" not in result:  # WebGL (SwiftShader) is available in Debian's chromium with --disable-gpu
        assert result["center"] == [255, 0, 0, 255]
    assert not errors, errors


@pytest.mark.browser
@pytest.mark.skipif(_browser_skip_reason() is not None, reason=str(_browser_skip_reason()))
def test_threejs_esm_importmap_and_plus_esm(page_with_router):
    page, router, errors = page_with_router
    load(
        page,
        """<!DOCTYPE html><html><head><title>m</title>
        <script type="importmap">{"imports": {"three": "https://unpkg.com/three@0.160.0/build/three.module.js",
          "three/addons/": "https://unpkg.com/three@0.160.0/examples/jsm/"}}</script>
        <script type="module">
          import * as THREE from 'three';
          import { OrbitControls } from 'three/addons/controls/OrbitControls.js';
          import * as ESM from 'https://cdn.jsdelivr.net/npm/three@0.160/+esm';
          window.result = {revision: THREE.REVISION, orbit: typeof OrbitControls, same: ESM.REVISION === THREE.REVISION};
        </script></head><body></body></html>""",
    )
    page.wait_for_function("window.result !== undefined")
    result = page.evaluate("window.result")
    assert result == {"revision": REAL["packages"]["three"].split(".")[1], "orbit": "function", "same": True}
    assert not errors, errors


@pytest.mark.browser
@pytest.mark.skipif(_browser_skip_reason() is not None, reason=str(_browser_skip_reason()))
def test_jquery_d3_bootstrap_and_fonts_load(page_with_router):
    page, router, errors = page_with_router
    load(
        page,
        """<!DOCTYPE html><html><head><title>j</title>
        <link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/bootstrap@5.3.0/dist/css/bootstrap.min.css">
        <link rel="stylesheet" href="https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.4.0/css/all.min.css">
        <link href="https://fonts.googleapis.com/css2?family=Poppins:wght@400;700&display=swap" rel="stylesheet">
        <script src="https://code.jquery.com/jquery-3.6.0.min.js"></script>
        <script src="https://d3js.org/d3.v7.min.js"></script>
        <script src="https://cdn.jsdelivr.net/npm/bootstrap@5.3.0/dist/js/bootstrap.bundle.min.js"></script></head>
        <body style="font-family: Poppins, monospace"><button id="b" class="btn btn-primary">ok</button>
        <i id="icon" class="fa-solid fa-house"></i><svg id="s"></svg>
        <script>$('#b').text('jquery'); d3.select('#s').append('rect').attr('width', 10);</script></body></html>""",
    )
    page.evaluate("document.fonts.ready")
    result = page.evaluate(
        """() => ({jquery: jQuery.fn.jquery, text: document.getElementById('b').textContent,
            rects: document.querySelectorAll('#s rect').length, modal: typeof bootstrap.Modal,
            btnBg: getComputedStyle(document.getElementById('b')).backgroundColor,
            icon: getComputedStyle(document.getElementById('icon'), '::before').content,
            iconFont: document.fonts.check('900 16px "Font Awesome 6 Free"'),
            poppins: document.fonts.check('16px Poppins')})"""
    )
    assert result["jquery"].startswith("3.") and result["text"] == "jquery" and result["rects"] == 1
    assert result["modal"] == "function"
    assert result["btnBg"] == "rgb(13, 110, 253)"  # Bootstrap 5's primary
    assert result["icon"] == '"\uf015"' and result["iconFont"] and result["poppins"]
    assert not errors, errors
    assert not router.missed


@pytest.mark.browser
@pytest.mark.skipif(_browser_skip_reason() is not None, reason=str(_browser_skip_reason()))
def test_integrity_attributes_block_until_stripped(page_with_router):
    page, router, errors = page_with_router
    html = """<!DOCTYPE html><html><head><title>s</title><script src="https://code.jquery.com/jquery-3.6.0.min.js"
        integrity="sha256-/xUj+3OJU5yExlq6GSYGSHk7tPXikynS7ogEvDej/m4=" crossorigin="anonymous"></script></head>
        <body></body></html>"""
    load(page, html)
    assert page.evaluate("typeof window.jQuery") == "undefined"  # the vendored bytes differ from the pinned hash
    load(page, strip_integrity(html))
    assert page.evaluate("typeof window.jQuery") == "function"


@pytest.mark.browser
@pytest.mark.skipif(_browser_skip_reason() is not None, reason=str(_browser_skip_reason()))
def test_unknown_external_requests_are_aborted_fast(page_with_router):
    page, router, errors = page_with_router
    elapsed = load(
        page,
        """<!DOCTYPE html><html><head><title>u</title>
        <script src="https://unknown-cdn.example.com/lib/v1/widget.min.js"></script>
        <link rel="stylesheet" href="https://styles.example.net/site.css"></head>
        <body><img src="https://images.example.org/hero.png"><script>window.after = typeof Widget;</script></body></html>""",
    )
    assert elapsed < 2.0, f"page load took {elapsed:.2f}s: external requests must fail at once"
    assert page.evaluate("window.after") == "undefined"  # the page kept running
    assert router.missed == {"unknown-cdn.example.com": 1, "styles.example.net": 1, "images.example.org": 1}


@pytest.mark.browser
@pytest.mark.skipif(_browser_skip_reason() is not None, reason=str(_browser_skip_reason()))
def test_async_api_with_a_page_origin_handler():
    """The async handler behind a pool-style handler that serves the page itself from an allow-listed origin."""

    async def main():
        from playwright.async_api import async_playwright

        router = CDNRouter(allowed_origins=["http://page.test"])
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = await browser.new_context()

            async def serve_page(route):
                html = """<!DOCTYPE html><html><head><title>p</title>
                    <script src="https://unpkg.com/react@18/umd/react.production.min.js"></script>
                    <script src="https://unpkg.com/react-dom@18/umd/react-dom.production.min.js"></script>
                    <script src="https://unpkg.com/@babel/standalone/babel.min.js"></script></head>
                    <body><div id="root"></div><script type="text/babel">
                    ReactDOM.createRoot(document.getElementById('root')).render(<h1 id="h">Hello JSX</h1>);
                    </script></body></html>"""
                await route.fulfill(status=200, content_type="text/html", body=html)

            # Handlers run last-registered first: the router sees every request and falls back for the page origin.
            await context.route("http://page.test/**", serve_page)
            await router.attach(context)
            page = await context.new_page()
            await page.goto("http://page.test/index.html")
            await page.wait_for_selector("#h", timeout=10_000)
            text = await page.text_content("#h")
            await browser.close()
        return text, router

    outcome = {}
    # Playwright's sync API (the module's browser fixture) owns this thread's event loop.
    thread = threading.Thread(target=lambda: outcome.update(result=asyncio.run(main())))
    thread.start()
    thread.join(60)
    text, router = outcome["result"]
    assert text == "Hello JSX"
    assert router.served["react@18.3.1"] == 1 and router.served["@babel/standalone@7.29.13"] == 1
    assert not router.missed


def test_module_is_documented():
    doc = vendor_module.__doc__
    for pattern in (
        "cdn.jsdelivr.net",
        "unpkg.com",
        "cdnjs.cloudflare.com",
        "cdn.tailwindcss.com",
        "fonts.googleapis.com",
    ):
        assert pattern in doc
    assert VendoredAsset(url="u", content_type="text/css", body=b"x").read_bytes() == b"x"
