"""
Publishing: every recipe's tiny config, run for two steps with `--push_to_hub --hub_model_id <user>/<name>` against
[`~trl_ext.testing_hub.LocalHubServer`] (the same code path as the real Hub: `HF_ENDPOINT`, token, preupload, LFS,
commit), pushes a complete repository: weights, tokenizer / image tokenizer / text encoder, model card and training
configuration; and the card's quickstart works on a `snapshot_download` of it and straight from the Hub id.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from trl_ext.model_card import TRAINING_CONFIG_NAME, extract_quickstart, metadata_errors, validate_model_card
from trl_ext.testing_hub import LocalHubServer
from trl_ext.web import chromium_available

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAVE_CHROMIUM = chromium_available()
USER = "local-user"

LM_FILES = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"}
IMAGE_FILES = {"config.json", "model.safetensors", "vq/config.json", "vq/model.safetensors"}
RECIPES = {
    "coupled_grpo": {
        # Four completions of 8 tokens per step: the smallest batch the tiny config's group size allows.
        "args": ["--per_device_train_batch_size", "8", "--num_generations", "4"],
        "files": LM_FILES,
    },
    "aescoder_grpo": {
        "args": ["--per_device_train_batch_size", "4", "--interactive_agent", "false"],
        "files": LM_FILES,
        "chromium": True,
    },
    "ar_grpo_c2i": {"args": ["--per_device_train_batch_size", "8", "--num_generations", "4"], "files": IMAGE_FILES},
    "ar_grpo_t2i": {
        "args": ["--per_device_train_batch_size", "8", "--num_generations", "4"],
        "files": IMAGE_FILES
        | {"text_encoder/config.json", "text_encoder/model.safetensors", "text_encoder/tokenizer.json"},
    },
}


def repo_name(recipe: str) -> str:
    return f"{recipe.replace('_', '-')}-tiny"


def recipe_param(recipe: str):
    if RECIPES[recipe].get("chromium"):
        return pytest.param(
            recipe, marks=[pytest.mark.browser, pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Chromium")]
        )
    return recipe


@pytest.fixture(scope="module")
def hub():
    with LocalHubServer() as server:
        yield server


# Runs the recipes one after the other in one process (as `python recipes/<name>.py ...` each, through runpy), which
# pays the torch/transformers/TRL import once instead of once per recipe.
RECIPE_DRIVER = """
import json, runpy, sys, traceback

jobs = json.load(open(sys.argv[1]))
results = {}
for recipe, argv in jobs.items():
    sys.argv = [f"recipes/{recipe}.py", *argv]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
        results[recipe] = None
    except BaseException:
        results[recipe] = traceback.format_exc()
print("RESULTS " + json.dumps(results))
"""


@pytest.fixture(scope="module")
def pushed(hub, tmp_path_factory):
    """Run each recipe (two optimizer steps) with --push_to_hub; return {recipe: (output_dir, error or None)}."""
    work = tmp_path_factory.mktemp("recipes")
    jobs, output_dirs = {}, {}
    for recipe, spec in RECIPES.items():
        if spec.get("chromium") and not HAVE_CHROMIUM:
            continue
        output_dirs[recipe] = str(work / recipe)
        jobs[recipe] = [
            "--config", f"recipes/configs/{recipe}_tiny.yaml", "--output_dir", output_dirs[recipe],
            "--max_steps", "2", "--logging_steps", "1", "--report_to", "none",
            "--push_to_hub", "--hub_model_id", f"{USER}/{repo_name(recipe)}", *spec["args"],
        ]  # fmt: skip
    (work / "jobs.json").write_text(json.dumps(jobs))
    env = {**os.environ, **hub.env(), "HF_HOME": str(work / "hf_home")}
    result = subprocess.run(
        [sys.executable, "-c", RECIPE_DRIVER, str(work / "jobs.json")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0 and "RESULTS " in result.stdout, result.stderr[-4000:]
    errors = json.loads(result.stdout.rsplit("RESULTS ", 1)[1])
    return {recipe: (output_dirs[recipe], errors[recipe]) for recipe in jobs}


def finished(pushed, recipe: str) -> str:
    output_dir, error = pushed[recipe]
    assert error is None, error
    return output_dir


@pytest.mark.parametrize("recipe", [recipe_param(r) for r in RECIPES])
def test_recipe_pushes_a_complete_repository(hub, pushed, recipe):
    output_dir = finished(pushed, recipe)
    files = hub.repo_files(f"{USER}/{repo_name(recipe)}")
    expected = RECIPES[recipe]["files"] | {"README.md", TRAINING_CONFIG_NAME, ".gitattributes"}
    assert expected <= set(files), sorted(expected - set(files))
    # The tiny base model the recipe built lives in `_tiny_base_model*`, which push_to_hub leaves out.
    assert not any(path.startswith(("_tiny_base", "checkpoint-")) for path in files), sorted(files)
    # What was pushed is what the run saved, byte for byte.
    for path in expected - {".gitattributes"}:
        with open(os.path.join(output_dir, path), "rb") as f:
            assert files[path] == f.read(), path
    # Weights went through LFS (preupload said "lfs", then batch + PUT of each distinct blob).
    weight_puts = [p for method, p in hub.requests if method == "PUT"]
    assert len(weight_puts) == len(set(weight_puts)) and weight_puts

    card = files["README.md"].decode()
    assert metadata_errors(card) == []
    validate_model_card(card)
    assert f'model_id = "{USER}/{repo_name(recipe)}"' in extract_quickstart(card)
    assert "training_config.yaml" in card and f"accelerate launch recipes/{recipe}.py" in card

    config = yaml.safe_load(files[TRAINING_CONFIG_NAME])
    assert config["push_to_hub"] is True and config["hub_model_id"] == f"{USER}/{repo_name(recipe)}"
    assert config["max_steps"] == 2 and config["model_name_or_path"].startswith("tiny-random:")
    assert "hub_token" not in config


def test_pushed_weights_are_stored_in_lfs(hub, pushed):
    finished(pushed, "ar_grpo_c2i")
    repo = f"{USER}/{repo_name('ar_grpo_c2i')}"
    import httpx

    tree = httpx.get(f"{hub.endpoint}/api/models/{repo}/tree/main", params={"recursive": True}).json()
    entries = {entry["path"]: entry for entry in tree}
    assert "lfs" in entries["model.safetensors"] and "lfs" in entries["vq/model.safetensors"]
    assert "lfs" not in entries["config.json"] and "lfs" not in entries["README.md"]


# Downloads each pushed repo, then runs its card's quickstart twice: pointed at the snapshot folder, and unchanged
# (loading from the Hub id through HF_ENDPOINT, subfolders included).
DOWNLOAD_AND_RUN = """
import contextlib, io, json, os, sys, traceback
from huggingface_hub import hf_hub_download, snapshot_download

jobs = json.load(open(sys.argv[1]))
results = {}
for name, job in jobs.items():
    record = results[name] = {}
    try:
        folder = snapshot_download(job["repo"], cache_dir=job["cache"])
        record["folder"] = folder
        card = open(os.path.join(folder, "README.md"), encoding="utf-8").read()
        start = card.index("## Quick start")
        snippet = card[start:].split("```python\\n", 1)[1].split("```", 1)[0]
        line = f'model_id = "{job["repo"]}"'
        variants = {"snapshot": snippet.replace(line, f"model_id = {folder!r}"), "hub": snippet}
        for variant, code in variants.items():
            workdir = os.path.join(job["work"], variant)
            os.makedirs(workdir, exist_ok=True)
            os.chdir(workdir)
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compile(code, f"<{name} quickstart ({variant})>", "exec"), {"__name__": "__main__"})
            record[variant] = {"stdout": out.getvalue(), "files": sorted(os.listdir("."))}
    except Exception:
        record["error"] = traceback.format_exc()
print("RESULTS " + json.dumps(results))
"""


@pytest.fixture(scope="module")
def downloaded(hub, pushed, tmp_path_factory):
    work = tmp_path_factory.mktemp("download")
    jobs = {
        recipe: {"repo": f"{USER}/{repo_name(recipe)}", "cache": str(work / "cache"), "work": str(work / recipe)}
        for recipe, (_, error) in pushed.items()
        if error is None
    }
    (work / "jobs.json").write_text(json.dumps(jobs))
    env = {**os.environ, **hub.env(), "HF_HOME": str(work / "hf_home")}
    result = subprocess.run(
        [sys.executable, "-c", DOWNLOAD_AND_RUN, str(work / "jobs.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0 and "RESULTS " in result.stdout, result.stderr[-4000:]
    return json.loads(result.stdout.rsplit("RESULTS ", 1)[1])


@pytest.mark.parametrize("recipe", [recipe_param(r) for r in RECIPES])
def test_quickstart_works_on_the_downloaded_repository(hub, pushed, downloaded, recipe):
    finished(pushed, recipe)
    record = downloaded[recipe]
    assert "error" not in record, record["error"]
    files = hub.repo_files(f"{USER}/{repo_name(recipe)}")
    snapshot = {}
    for root, _, names in os.walk(record["folder"]):
        for name in names:
            path = os.path.join(root, name)
            snapshot[os.path.relpath(path, record["folder"]).replace(os.sep, "/")] = open(path, "rb").read()
    assert snapshot == files
    for variant in ("snapshot", "hub"):
        if recipe.startswith("ar_grpo"):
            assert "sample.png" in record[variant]["files"], record[variant]
        else:
            assert record[variant]["stdout"].strip(), record[variant]
