"""The OpenDesign-style evaluation script, on a folder of pages and on a (tiny) model."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from trl_ext.testing import make_tiny_causal_lm, make_tokenizer, save_tiny_model
from trl_ext.web import chromium_available

HAVE_CHROMIUM = chromium_available()

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Chromium")]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "recipes", "aescoder_eval.py")

GOOD = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Counter</title></head>
<body><h1>Counter app</h1><p id="n">0</p>
<button onclick="document.getElementById('n').textContent = +document.getElementById('n').textContent + 1">Add</button>
</body></html>"""
BAD = "<html><body><p>no doctype<script>boom()</script></body></html>"


def run(*args):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, SCRIPT, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def test_scores_a_folder_of_pages(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    rows = [
        {"id": "a", "instruction": "A counter app with an add button", "category": "ui_component"},
        {"id": "b", "instruction": "A counter app with an add button", "category": "ui_component"},
        {"id": "c", "instruction": "A landing page", "category": "website"},
    ]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "a.html").write_text(GOOD)
    (pages / "b.html").write_text(BAD)
    (pages / "c.html").write_text(f"Sure! Here it is:\n```html\n{GOOD}\n```")
    out = tmp_path / "eval"
    run("--html_dir", str(pages), "--prompts", str(prompts), "--output_dir", str(out), "--browser_pool_size", "2",
        "--agent_time_budget", "10")  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    items = {item["id"]: item for item in report["items"]}
    assert items["a"]["lint_passed"] and items["a"]["execution"] == 1.0 and items["a"]["interactive"] == 1
    assert not items["b"]["lint_passed"] and "runtime_errors" in items["b"]["failures"]
    assert items["a"]["static_total"] > items["b"]["static_total"]
    assert items["c"]["lint_passed"]  # the fenced block was extracted
    assert report["overall"]["pages"] == 3 and report["overall"]["lint_pass_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert set(report["by_category"]) == {"ui_component", "website"}
    assert (out / "screenshots" / "a.png").exists() and (out / "pages" / "c.html").read_text().startswith("<!DOCTYPE")


def test_generates_with_a_model_then_scores(tmp_path):
    tokenizer = make_tokenizer(with_mask_token=False)
    model = save_tiny_model(make_tiny_causal_lm(tokenizer), tokenizer, tmp_path / "model")
    out = tmp_path / "eval"
    run("--model_name_or_path", str(model), "--output_dir", str(out), "--limit", "3", "--max_new_tokens", "16",
        "--agent_time_budget", "5")  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    assert report["overall"]["pages"] == 3 and len(os.listdir(out / "pages")) == 3
    assert report["overall"]["lint_pass_rate"] == 0.0  # a random model does not write valid HTML


def test_bad_arguments_fail_early(tmp_path):
    spec = importlib.util.spec_from_file_location("aescoder_eval", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["aescoder_eval"] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    with pytest.raises(ValueError, match="exactly one of `html_dir`"):
        module.EvalArguments(output_dir=str(tmp_path))
    with pytest.raises(ValueError, match="judge_model"):
        module.EvalArguments(html_dir=str(tmp_path), judge_base_url="http://localhost:8000/v1")
    with pytest.raises(FileNotFoundError, match="pages missing"):
        module.read_pages(str(tmp_path), module.load_prompts(module.BUNDLED_PROMPTS))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "no id"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        module.load_prompts(str(bad))


def test_garbage_text_scores_far_below_a_proper_page(tmp_path):
    import random
    import string

    from trl_ext.web.lint import extract_html

    sample = os.path.join(REPO, "trl_ext", "data", "aescode_sample.jsonl")
    rows = [json.loads(line) for line in open(sample, encoding="utf-8")]
    bakery = rows[0]  # a landing page for a bakery
    rng = random.Random(0)
    vocabulary = sorted({w.lower() for row in rows for w in row["prompt"].split() if w.isalpha()})  # English words
    garbage = {
        # What an untrained model writes: random letters, random words, random characters, with no structure.
        "letters": " ".join("".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(250)),
        "words": " ".join(rng.choice(vocabulary) for _ in range(250)),
        "chars": "".join(rng.choices(string.ascii_letters + string.digits + string.punctuation + "    ", k=1500)),
    }
    prompts = tmp_path / "prompts.jsonl"
    ids = ["proper", *garbage]
    prompts.write_text("".join(json.dumps({"id": i, "instruction": bakery["prompt"]}) + "\n" for i in ids))
    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "proper.html").write_text(extract_html(bakery["response"]))
    for name, text in garbage.items():
        (pages / f"{name}.html").write_text(text)
    out = tmp_path / "eval"
    run("--html_dir", str(pages), "--prompts", str(prompts), "--output_dir", str(out), "--browser_pool_size", "2",
        "--agent_time_budget", "5")  # fmt: skip
    items = {item["id"]: item for item in json.loads((out / "report.json").read_text())["items"]}
    proper = items["proper"]["static_total"]
    for name in garbage:
        score = items[name]["static_total"]
        assert score < 40 and score < proper - 25, (name, items[name], proper)
