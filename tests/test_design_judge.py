"""The offline design judge: its measurements, and that it ranks clean pages above cluttered ones."""

import asyncio
import io
import os
import re

import numpy as np
import pytest
from PIL import Image

from trl_ext.web import BrowserPool, RenderResult, chromium_available
from trl_ext.web.design_judge import DesignJudge, changed_pixels, instruction_keywords, screenshot_statistics

HAVE_CHROMIUM = chromium_available()

needs_browser = [
    pytest.mark.browser,
    pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Chromium: `apt-get install chromium` (make installs it)"),
]

CLEAN = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Riverside Bakery</title>
<style>
  body { font-family: Georgia, serif; margin: 0; color: #222; background: #fdfaf5; line-height: 1.6; }
  header, main, footer { max-width: 760px; margin: 0 auto; padding: 24px; }
  h1 { font-size: 40px; margin: 0 0 8px; } h2 { font-size: 24px; margin-top: 32px; }
  .menu { display: grid; grid-template-columns: repeat(auto-fit, minmax(200px, 1fr)); gap: 16px; }
  .item { background: #fff; border: 1px solid #e6dccb; border-radius: 8px; padding: 16px; }
  .price { color: #8a4b08; font-weight: bold; }
</style></head>
<body>
<header><h1>Riverside Bakery</h1><p>Fresh bread and pastries, baked every morning since 1987.</p></header>
<main>
  <h2>Menu</h2>
  <div class="menu">
    <div class="item"><h3>Sourdough loaf</h3><p>Slow fermented, crisp crust.</p><p class="price">$6</p></div>
    <div class="item"><h3>Croissant</h3><p>Butter laminated, flaky layers.</p><p class="price">$3</p></div>
    <div class="item"><h3>Cinnamon roll</h3><p>Brown sugar and cinnamon swirl.</p><p class="price">$4</p></div>
  </div>
  <h2>Opening hours</h2>
  <p>Tuesday to Sunday, 7am to 3pm. Closed on Mondays.</p>
</main>
<footer><p>12 River Street &middot; (555) 010-2030</p></footer>
</body></html>"""

CLUTTERED = """<!DOCTYPE html>
<html><head><title>bakery</title>
<style>
  body { background: #c8c8c8; color: #b5b5b5; font-size: 9px; margin: 0; }
  .wide { width: 2400px; background: #d0ffd0; }
  .a { position: absolute; top: 40px; left: 30px; color: #ff00ff; background: #00ffff; font-family: Impact; }
  .b { position: absolute; top: 44px; left: 40px; color: #ffff00; font-family: 'Comic Sans MS'; font-size: 13px; }
  .c { position: absolute; top: 48px; left: 50px; color: #00ff00; font-family: Courier; font-size: 17px; }
  span { margin-left: 37px; } i { margin-left: 91px; color: #c0c0c0; font-size: 7px; }
</style></head>
<body>
<div class="wide">bakery bread menu hours welcome to the best place ever for bread and cakes and pastries</div>
<div class="a">MENU MENU MENU cheap bread</div><div class="b">hours: sometimes maybe</div><div class="c">pastries!!!</div>
<span style="color:#f00;background:#f80">sale</span><i>tiny grey text you cannot read</i>
<span style="color:#0f0;background:#0a0;font-family:fantasy">more</span><i style="color:#bbb">fine print here</i>
<div style="background:#800080;color:#900090;width:1900px;font-size:8px">purple on purple overflowing banner text</div>
</body></html>"""

INSTRUCTION = "Create a landing page for a bakery with a menu of pastries and the opening hours."


@pytest.fixture(scope="module")
def pool():
    with BrowserPool(size=2, page_timeout=10.0, settle_ms=100) as pool:
        yield pool


def score(pool, html, instruction=INSTRUCTION):
    render = pool.render(html)
    assert render.ok, render.error
    return asyncio.run(DesignJudge().score_page(instruction, render)), render


def png(array) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def test_screenshot_statistics_on_synthetic_images():
    white = np.full((200, 320, 3), 255)
    stats = screenshot_statistics(png(white))
    assert stats == {"colors": 1.0, "content_fraction": 0.0, "blank": 1.0}
    # Four flat colour quadrants: four colours, detail only along the two boundaries.
    quads = white.copy()
    quads[:100, :160] = (255, 0, 0)
    quads[:100, 160:] = (0, 255, 0)
    quads[100:, :160] = (0, 0, 255)
    stats = screenshot_statistics(png(quads))
    assert stats["colors"] == 4 and stats["blank"] == 0.0
    # Slow per-tile computation: an 8x8 tile has detail iff the max channel std exceeds 6.
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, size=(64, 64, 3))
    noisy[:32] = 128
    tiles = [
        noisy[y : y + 8, x : x + 8].reshape(-1, 3).std(axis=0).max() > 6
        for y in range(0, 64, 8)
        for x in range(0, 64, 8)
    ]
    assert screenshot_statistics(png(noisy))["content_fraction"] == pytest.approx(np.mean(tiles))


def test_changed_pixels_counts_exactly():
    a = np.zeros((10, 10, 3))
    b = a.copy()
    b[2:4, 2:5] = 200  # 6 pixels
    b[9, 9] = 10  # below the threshold
    assert changed_pixels(png(a), png(b)) == 6
    assert changed_pixels(png(a), png(np.zeros((5, 5, 3)))) == 100  # a resize counts as a full change


def test_instruction_keywords():
    assert instruction_keywords(INSTRUCTION) == {"landing", "bakery", "menu", "pastries", "opening", "hours"}


def test_failed_or_blank_render_scores_zero():
    judge = DesignJudge()
    assert judge.score("x", RenderResult(ok=False, error="page_timeout")).total == 0
    blank = RenderResult(ok=True, screenshot=png(np.full((96, 128, 3), 255)), metrics={"text_chars": 0, "images": 0})
    assert judge.score("x", blank).total == 0


def test_bad_weights_are_rejected():
    with pytest.raises(ValueError, match="aesthetics_weights"):
        DesignJudge(aesthetics_weights={"contrast": -1.0})


@pytest.mark.browser
@pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Chromium")
def test_clean_page_ranks_above_cluttered_page(pool):
    clean, clean_render = score(pool, CLEAN)
    cluttered, cluttered_render = score(pool, CLUTTERED)
    assert clean.total > cluttered.total + 15, (clean, cluttered)
    assert clean.aesthetics > cluttered.aesthetics and clean.structure > cluttered.structure
    m = cluttered_render.metrics
    # The measurements behind it, checked one by one.
    assert clean_render.metrics["good_contrast_fraction"] == 1.0 and m["good_contrast_fraction"] < 0.5
    assert m["scroll_width"] > 1280 and clean_render.metrics["scroll_width"] == 1280
    assert m["overlapping_blocks"] >= 3 and clean_render.metrics["overlapping_blocks"] == 0
    assert m["tiny_text_fraction"] > 0.3 and clean_render.metrics["tiny_text_fraction"] == 0
    assert clean_render.metrics["mobile"]["scroll_width"] <= 392 < m["mobile"]["scroll_width"]


@pytest.mark.browser
@pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Chromium")
def test_alignment_rewards_the_requested_content(pool):
    on_topic, _ = score(pool, CLEAN)
    off_topic, _ = score(
        pool,
        CLEAN.replace("Bakery", "Garage")
        .replace("Menu", "Services")
        .replace("Opening hours", "Contact")
        .replace("pastries", "repairs"),
    )
    assert on_topic.alignment > off_topic.alignment


# Real-world documents shipped by Debian packages on this machine (manuals converted to HTML).
REAL_DOCUMENTS = [
    "/usr/share/doc/bc/bc.html",
    "/usr/share/doc/bzip2/manual.html",
    "/usr/share/doc/fontconfig/fontconfig-user.html",
    "/usr/share/doc/libffi8/html/index.html",
    "/usr/share/doc/libffi8/html/The-Basics.html",
    "/usr/share/doc/base-passwd/users-and-groups.html",
]
DEGRADE = (
    "<style>* { color: #bdbdbd !important; background: #cfcfcf !important; font-size: 8px !important; }"
    " body { width: 2600px; } p, pre, li, dd { position: relative; left: 17px; }"
    " h1, h2, h3 { position: absolute; top: 30px; left: 20px; }</style>"
)


@pytest.mark.browser
@pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Chromium")
def test_real_documents_rank_above_their_degraded_versions_and_the_cluttered_page(pool):
    documents = [path for path in REAL_DOCUMENTS if os.path.exists(path)]
    if len(documents) < 2:
        pytest.skip("fewer than two of the Debian HTML manuals are installed here")
    cluttered, _ = score(pool, CLUTTERED, "Documentation")
    for path in documents:
        html = open(path, encoding="utf-8", errors="replace").read()
        degraded = re.sub(r"(?i)</head>", DEGRADE + "</head>", html, count=1)
        if degraded == html:
            degraded = DEGRADE + html
        original, _ = score(pool, html, "Documentation")
        worse, _ = score(pool, degraded, "Documentation")
        assert original.total > worse.total + 5, (path, original, worse)
        assert original.total > cluttered.total, (path, original, cluttered)


# ----------------------------------------------------------------------------------------------------------------
# Hard to game (issue 13): substance beyond the prompt, no reward for repetition or text nobody can read.
# ----------------------------------------------------------------------------------------------------------------
def test_text_substance_ignores_the_instruction_and_repetition():
    from trl_ext.web.design_judge import text_substance, text_variety

    prose = (
        "Our sourdough rises for two days before it meets the stone oven. Rye, spelt and oat loaves follow at dawn; "
        "croissants and cinnamon rolls come out warm at seven, and the coffee is roasted across the street."
    )
    assert text_substance(prose, INSTRUCTION) == 1.0
    assert text_substance(INSTRUCTION + " " + INSTRUCTION, INSTRUCTION) == 0.0  # an echo has nothing of its own
    assert text_variety(prose) == 1.0
    assert text_variety(prose * 40) < 0.05 and text_substance(prose * 40, INSTRUCTION) < 0.05


def _sample_pages():
    """The HTML pages of the bundled AesCode sample (the rest of it is plotting code), with their prompts."""
    import json

    from trl_ext.web.lint import extract_html

    path = os.path.join(os.path.dirname(__file__), "..", "trl_ext", "data", "aescode_sample.jsonl")
    rows = [json.loads(line) for line in open(path)]
    pages = [(row["prompt"], extract_html(row["response"])) for row in rows]
    return [(prompt, html) for prompt, html in pages if re.match(r"(?i)<(!doctype|html)", html)]


def _stubs(prompt):
    import html as markup

    text = markup.escape(prompt)

    def document(body):
        return f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{text}</title></head><body>{body}</body></html>'

    sentence = "<p>We bake the best fresh bread in town, every single day, just for you.</p>"
    return {
        "echo": document(f"<h1>{text}</h1>"),
        "echo_everywhere": document(f"<header><h1>{text}</h1></header><main><h2>{text}</h2><p>{text}</p></main>"),
        "repeated": document(f"<h1>{text}</h1>" + sentence * 300),
        "invisible": document("<h1>Welcome</h1>" + f'<p style="color:#fff">{text} </p>' * 20),
        "offscreen": document("<h1>Welcome</h1>" + f'<p style="position:absolute;left:-9999px">{text} </p>' * 20),
        "tiny": document("<h1>Welcome</h1>" + f'<p style="font-size:4px">{(text + " ") * 40}</p>'),
        "all_three": document(
            "<h1>Welcome</h1>"
            + f'<p style="color:#fff">{text} </p>' * 20
            + f'<p style="position:absolute;left:-9999px">{text}</p>'
            + '<p style="font-size:4px">'
            + (text + " ") * 40
            + "</p>"
        ),
    }


@pytest.mark.browser
@pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Chromium")
def test_stubs_and_echoes_score_below_honest_pages(pool):
    judge = DesignJudge()
    sample = _sample_pages()
    assert len(sample) >= 20
    renders = pool.render_many([html for _, html in sample])
    scores = [judge.score(prompt, render) for (prompt, _), render in zip(sample, renders)]
    honest = min(score.total for score in scores)
    # Stubs for every fourth prompt (landing pages, charts, games, 3D scenes, widgets).
    for index in range(0, len(sample), 4):
        prompt, own = sample[index][0], scores[index]
        stubs = _stubs(prompt)
        for name, render in zip(stubs, pool.render_many(list(stubs.values()))):
            stub = judge.score(prompt, render)
            assert stub.total < honest, (name, prompt, stub, sorted(score.total for score in scores)[:3])
            # Copying the instruction (into the title, headings, invisible text) earns almost no alignment.
            assert stub.alignment < 0.35 * 40, (name, stub)
            if own.alignment > 0.35 * 40:  # an honest page that covers its prompt keeps the lead
                assert stub.alignment < own.alignment, (name, stub, own)


# Degradations of a real document: its style sheets removed, low contrast with text pushed over text, and 6 px text
# overflowing the viewport.
LOW_CONTRAST_OVERLAP = (
    "<style>* { color: #b8b8b8 !important; background: #cdcdcd !important; } p, li, pre, dd, td { position: relative;"
    " top: -14px; left: 9px; } h1, h2, h3 { position: absolute; top: 40px; left: 30px; }</style>"
)
TINY_OVERFLOW = (
    "<style>* { font-size: 6px !important; } body { width: 2600px; } pre, p { white-space: nowrap; }</style>"
)
# Where the documents' own images, fonts and scripts would live: an unreachable site, so that they are missing from
# the original and its copies alike (blocked, not counted as the page's errors).
DOCUMENT_BASE = '<base href="https://documentation.invalid/">'


def _inline_stylesheets(html, folder):
    def inline(match):
        href = re.search(r"""href\s*=\s*["']([^"']+)""", match.group(0))
        try:
            return (
                "<style>"
                + open(os.path.join(folder, href.group(1).split("?")[0]), errors="replace").read()
                + "</style>"
            )
        except (AttributeError, OSError):
            return ""

    return re.sub(r"(?is)<link\b[^>]*stylesheet[^>]*>", inline, html)


def _strip_styles(html):
    """The document without its style sheets (inline `style` attributes, part of its markup, are kept)."""
    return re.sub(r"(?is)<style\b.*?</style\s*>|<link\b[^>]*stylesheet[^>]*>", "", html)


def _system_html_documents(limit, min_css=1000):
    """
    HTML documentation installed on this machine (Debian's /usr/share/doc, rustup's books), found at run time: up to
    `limit` distinct documents, at most two per package, each with its style sheets inlined and at least `min_css`
    characters of CSS (a document with little or none is its own CSS-stripped copy, and the comparison says nothing).
    """
    import hashlib
    import random

    found = []
    for root in ("/usr/share/doc", os.path.expanduser("~/.rustup/toolchains")):
        for folder, folders, files in os.walk(root):
            folders.sort()
            found += [
                os.path.join(folder, f)
                for f in sorted(files)
                if f.endswith(".html") and 4000 < os.path.getsize(os.path.join(folder, f)) < 300000
            ]
    random.Random(0).shuffle(found)
    chosen, per_package, seen = [], {}, set()
    for path in found:
        package = "/".join(path.split("/")[:5])
        if per_package.get(package, 0) >= 2:
            continue
        html = _inline_stylesheets(open(path, encoding="utf-8", errors="replace").read(), os.path.dirname(path))
        digest = hashlib.sha1(html.encode("utf-8", "replace")).hexdigest()
        if digest in seen or len(html) - len(_strip_styles(html)) < min_css:
            continue
        seen.add(digest)
        per_package[package] = per_package.get(package, 0) + 1
        chosen.append((path, html))
        if len(chosen) == limit:
            break
    return chosen


def _degraded_copies(html):
    """The document (with `DOCUMENT_BASE`) and its three degraded copies, by name."""
    html = re.sub(r"(?i)<head\b[^>]*>", lambda m: m.group(0) + DOCUMENT_BASE, html, count=1)
    if DOCUMENT_BASE not in html:
        html = DOCUMENT_BASE + html

    def add(css):
        added = re.sub(r"(?i)</head>", lambda _: css + "</head>", html, count=1)
        return added if added != html else css + html

    return {
        "original": html,
        "css_stripped": _strip_styles(html),
        "low_contrast_overlap": add(LOW_CONTRAST_OVERLAP),
        "tiny_overflow": add(TINY_OVERFLOW),
    }


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Chromium")
def test_real_documents_beat_their_degraded_copies(pool):
    documents = _system_html_documents(12)
    if len(documents) < 5:
        pytest.skip("fewer than five styled HTML documents installed on this machine")
    judge = DesignJudge()
    wins, pairs, lost = 0, 0, []
    for path, html in documents:
        versions = _degraded_copies(html)
        renders = dict(zip(versions, pool.render_many(list(versions.values()))))
        original = renders.pop("original")
        if isinstance(original, BaseException) or not original.ok:
            continue
        best = judge.score("Documentation", original).total
        for name, copy in renders.items():
            pairs += 1
            worse = 0.0 if isinstance(copy, BaseException) else judge.score("Documentation", copy).total
            wins += best > worse
            if best <= worse:
                lost.append((path, name, best, worse))
    assert pairs >= 15 and wins >= 0.9 * pairs, (wins, pairs, lost)


def test_text_naturalness_against_a_slow_count():
    import random
    import string

    from trl_ext.web.design_judge import _FUNCTION_WORDS, text_naturalness

    def slow(text):
        letters = vowels = 0
        for ch in text.lower():
            if ch in string.ascii_lowercase:
                letters += 1
                vowels += ch in "aeiou"
        words = "".join(ch if ch in string.ascii_lowercase else " " for ch in text.lower()).split()
        score = 1.0
        if letters >= 200:
            share = vowels / letters
            score *= (
                1.0 if 0.28 <= share <= 0.55 else max(0.0, 1 - (0.28 - share if share < 0.28 else share - 0.55) / 0.08)
            )
        if len(words) >= 150:
            share = sum(word in _FUNCTION_WORDS for word in words) / len(words)
            score *= 1.0 if share >= 0.12 else max(0.5, 1 - (0.12 - share) / 0.1)
        return score

    rng = random.Random(0)
    prose = open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8").read()[:6000]
    vocabulary = sorted(set(re.findall(r"[a-z]{4,}", prose.lower())))
    letters = " ".join(
        "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9))) for _ in range(300)
    )
    salad = " ".join(rng.choice(vocabulary) for _ in range(300))
    texts = [prose, letters, salad, "Score: 0 | Time: 20", prose[:500], "aeiou " * 100, "Ünïcödé テキスト " * 50]
    for text in texts:
        assert text_naturalness(text) == pytest.approx(slow(text)), text[:60]
    assert text_naturalness(prose) == 1.0 and text_naturalness("Score: 0 | Time: 20") == 1.0
    assert text_naturalness(letters) < 0.1 and text_naturalness(salad) == 0.5


STYLE_PROBE = """<!DOCTYPE html><html><head><title>probe</title></head><body style="margin:0">
<p id="plain">Plain paragraph in the browser's own look.</p>
<p><a href="#x" id="link">A default blue link</a></p>
<pre id="code">let x = 1; // code</pre>
<p style="font-family: Georgia, serif" id="font">A chosen typeface.</p>
<p style="color: #333" id="colour">A chosen colour.</p>
<p><a href="#y" style="color: #a33" id="styled-link">A styled link</a></p>
<div style="display:flex;gap:4px">
  <div style="width:50px;height:50px;background:#f00"></div><div style="width:50px;height:50px;background:#0f0"></div>
  <div style="width:50px;height:50px;box-shadow:0 0 4px #000"></div><div style="width:10px;height:10px;background:#00f"></div>
  <button style="width:80px;height:40px">Go</button>
</div>
<div id="scroller" style="height:120px;overflow:auto">
  <div style="height:3000px">top</div><p id="deep">Reachable by scrolling the box.</p>
  <p id="away" style="position:relative;left:-9999px">Pushed out of the box.</p>
</div></body></html>"""


@pytest.mark.browser
@pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Chromium")
def test_styling_painted_boxes_and_scrolled_text_are_measured(pool):
    render = pool.render(STYLE_PROBE)
    assert render.ok, render.error
    m = render.metrics
    text = {
        "plain": "Plain paragraph in the browser's own look.", "link": "A default blue link",
        "code": "let x = 1; // code", "font": "A chosen typeface.", "colour": "A chosen colour.",
        "styled-link": "A styled link", "top": "top", "deep": "Reachable by scrolling the box.",
        "away": "Pushed out of the box.",
    }  # fmt: skip
    default = ("plain", "link", "code", "top", "deep", "away")  # the browser's typeface (monospace for code), colours
    assert m["style_checked_chars"] == sum(map(len, text.values()))  # the button's text is the browser's, unchecked
    assert m["default_style_chars"] == sum(len(text[k]) for k in default)
    # Two filled boxes and a shadowed one of 2500 px^2; not the 100 px^2 one, not the button (the browser paints it).
    assert m["painted_boxes"] == 3 and m["painted_colors"] == 2
    # The text at the bottom of the scrolling box is reachable; the text pushed out of it is not.
    assert m["offscreen_chars"] == len(text["away"])
