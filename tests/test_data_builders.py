"""
Tests of the Hub-ready dataset builders (`trl_ext.data.acecode`, `websight`, `imagenet`, `coco`).

Every builder runs on small fixtures written here, deterministically, in the exact upstream format (AceCode-87K's
columns and nested `inferences`, WebSight v0.2's parquet with an `image` column, COCO's official
`captions_*.json`), and is checked against a slow reimplementation of the paper's rule written independently below.
"""

import json
import math
import os
import random
import re
import shutil
import subprocess
import sys

import pytest
from datasets import Dataset, Features, Image, List, Value, load_from_disk
from huggingface_hub import DatasetCard

from trl_ext.data import WEB_DESIGN_CATEGORIES, WEB_DESIGN_SYSTEM_PROMPT, load_web_design_prompts
from trl_ext.data._builder import SchemaError, size_category
from trl_ext.data.acecode import (
    AceCodeHardArguments,
    AceCodeHardBuilder,
    build_acecode_hard,
    diffucoder_augmented_question,
)
from trl_ext.data.coco import COCOCaptionsBuilder, build_coco_captions
from trl_ext.data.imagenet import ImageNetPromptsArguments, build_imagenet_prompts, imagenet_class_names
from trl_ext.data.websight import WebSightPromptsArguments, build_websight_prompts, categorize_web_idea

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(module, *args, env=None, check=True):
    result = subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=REPO_ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=180,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{module} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


# --------------------------------------------------------------------------------------------------------------------
# AceCode-87K fixture and the slow reference
# --------------------------------------------------------------------------------------------------------------------

REFERENCE_MODELS = ("qwen_coder_2.5", "llama3_instruct")
ACECODE_FEATURES = Features(
    {
        "id": Value("string"),
        "source": Value("string"),
        "question": Value("string"),
        "test_cases": List(Value("string")),
        "inferences": List(
            {
                "completion": Value("string"),
                "completion_id": Value("int64"),
                "model_name": Value("string"),
                "pass_rate": Value("float64"),
            }
        ),
        "context_messages": List({"content": Value("string"), "role": Value("string")}),
    }
)


def make_acecode_rows(num=90, seed=0):
    """AceCode-87K-shaped rows: pass rates on a coarse grid (many ties), edge cases at fixed indices."""
    rng = random.Random(seed)
    rows = []
    for i in range(num):
        name = f"f{i}"
        if i % 7 == 3:
            question = f"You are given two integers. Write `{name}` returning their sum (case {i})."
        else:
            question = f"Write a function `{name}` that returns the sum of its two arguments (case {i})."
        tests = [] if i % 19 == 5 else [f"assert {name}(1, 2) == 3", f"assert {name}(0, 0) == 0"]
        models = ["gpt_other"] if i % 23 == 4 else ["qwen_coder_2.5", "llama3_instruct", "gpt_other"]
        inferences = []
        for model in models:
            for _ in range(4):
                k = len(inferences)
                rate = rng.choice([0.0, 0.0, 0.25, 0.5, 0.75, 1.0])
                prefix = "import math\n\n" if i % 5 == 2 else ""
                completion = f"{prefix}def {name}(a, b, _k={k}):\n    return a + b\n"
                inferences.append(
                    {"completion": completion, "completion_id": k, "model_name": model, "pass_rate": rate}
                )
        rows.append(
            {
                "id": f"ace-{i:03d}",
                "source": ["oss", "evol", "stack_python_fns"][i % 3],
                "question": question,
                "test_cases": tests,
                "inferences": inferences,
                "context_messages": [{"content": question, "role": "user"}],
            }
        )
    return rows


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def acecode_rows():
    return make_acecode_rows()


@pytest.fixture(scope="module")
def acecode_jsonl(tmp_path_factory, acecode_rows):
    return write_jsonl(tmp_path_factory.mktemp("acecode") / "acecode.jsonl", acecode_rows)


@pytest.fixture(scope="module")
def acecode_parquet(tmp_path_factory, acecode_rows):
    path = tmp_path_factory.mktemp("acecode") / "train-00000-of-00001.parquet"
    Dataset.from_list(acecode_rows, features=ACECODE_FEATURES).to_parquet(str(path))
    return str(path)


def slow_percentile(values, q):
    """Linear-interpolation percentile, by hand."""
    xs = sorted(values)
    position = (len(xs) - 1) * q / 100
    lower = math.floor(position)
    upper = min(lower + 1, len(xs) - 1)
    return xs[lower] + (xs[upper] - xs[lower]) * (position - lower)


def slow_acecode(rows, mean_q, std_q, over="all", models=REFERENCE_MODELS, augment=True):
    """DiffuCoder's hard filter and augmentation, written out plainly: [(id, augmented, question)]."""
    stats = []
    for row in rows:
        rates = [x["pass_rate"] for x in row["inferences"] if not models or x["model_name"] in models]
        if not rates:
            continue
        mean = sum(rates) / len(rates)
        std = math.sqrt(sum((r - mean) ** 2 for r in rates) / len(rates))
        stats.append((row, mean, std))
    mean_threshold = slow_percentile([m for _, m, _ in stats], mean_q)
    low = [(row, m, s) for row, m, s in stats if m <= mean_threshold]
    population = stats if over == "all" else low
    std_threshold = slow_percentile([s for _, _, s in population], std_q)
    out = []
    for row, _, s in low:
        if s < std_threshold or not row["test_cases"]:
            continue
        out.append((row["id"], False, row["question"]))
        if augment and "you" not in row["question"].lower():
            best = None
            for inference in row["inferences"]:
                if best is None or inference["pass_rate"] > best["pass_rate"]:
                    best = inference
            first_line = best["completion"].split(":\n")[0].strip()
            if first_line.startswith("def "):
                question = (
                    "Please complete the following problem:\n```\n"
                    + first_line
                    + ':\n    """\n    '
                    + row["question"]
                    + '\n    """\n```\n'
                )
                out.append((row["id"], True, question))
    return out


def triples(dataset):
    return list(zip(dataset["id"], dataset["augmented"], dataset["question"]))


# --------------------------------------------------------------------------------------------------------------------
# AceCode
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "preset, over, expected_q",
    [("paper", "all", (20, 60)), ("code", "all", (20, 40)), ("code", "low_mean", (20, 40))],
)
def test_acecode_filter_matches_slow_reference(acecode_jsonl, acecode_rows, preset, over, expected_q):
    builder = AceCodeHardBuilder(source=acecode_jsonl, preset=preset, std_percentile_over=over)
    dataset = builder.build()
    expected = slow_acecode(acecode_rows, *expected_q, over=over)
    assert triples(dataset) == expected
    # The fixture exercises every branch: kept and dropped problems, augmented copies, rows without tests.
    assert 5 < len(dataset) < len(acecode_rows)
    assert any(dataset["augmented"]) and not all(dataset["augmented"])
    assert builder.counts["source problems"] == len(acecode_rows)
    assert builder.counts["with reference pass rates"] == sum(1 for i in range(len(acecode_rows)) if i % 23 != 4)
    assert builder.counts["rows"] == len(dataset)
    assert builder.parameters["mean_percentile"] == expected_q[0]
    assert builder.parameters["std_percentile"] == expected_q[1]


def test_acecode_presets_differ_as_documented(acecode_jsonl, acecode_rows):
    paper = build_acecode_hard(source=acecode_jsonl, preset="paper")
    code = build_acecode_hard(source=acecode_jsonl, preset="code")
    # Top 40% of the spread (paper) is stricter than top 60% (released code), with the same mean filter.
    assert set(triples(paper)) < set(triples(code))
    # Explicit percentiles override the preset.
    custom = build_acecode_hard(source=acecode_jsonl, preset="code", mean_percentile=50, std_percentile=50)
    assert triples(custom) == slow_acecode(acecode_rows, 50, 50)
    # All models instead of the two reference models.
    everyone = build_acecode_hard(source=acecode_jsonl, reference_models=[])
    assert triples(everyone) == slow_acecode(acecode_rows, 20, 60, models=())


def test_acecode_parquet_matches_jsonl_and_schema(acecode_parquet, acecode_jsonl):
    from_parquet = build_acecode_hard(source=acecode_parquet, streaming=False)
    from_jsonl = build_acecode_hard(source=acecode_jsonl)
    assert from_parquet.to_list() == from_jsonl.to_list()
    assert from_parquet.features == Features(
        {
            "prompt": List({"role": Value("string"), "content": Value("string")}),
            "test_cases": List(Value("string")),
            "id": Value("string"),
            "source": Value("string"),
            "question": Value("string"),
            "augmented": Value("bool"),
            "pass_rate_mean": Value("float64"),
            "pass_rate_std": Value("float64"),
        }
    )


def test_acecode_prompt_format_exact(tmp_path):
    question = "Write a function that adds two numbers."
    row = {
        "id": "p0",
        "source": "oss",
        "question": question,
        "test_cases": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"],
        # Two solutions tie at the best pass rate, from another model: the first one is the template.
        "inferences": [
            {"completion": "x = 1", "completion_id": 0, "model_name": "qwen_coder_2.5", "pass_rate": 0.0},
            {
                "completion": "def add(a: int, b: int) -> int:\n    return a + b",
                "completion_id": 1,
                "model_name": "gpt_other",
                "pass_rate": 1.0,
            },
            {
                "completion": "def plus(a, b):\n    return a + b",
                "completion_id": 2,
                "model_name": "gpt_other",
                "pass_rate": 1.0,
            },
            {"completion": "y = 2", "completion_id": 3, "model_name": "llama3_instruct", "pass_rate": 1.0},
        ],
    }
    path = write_jsonl(tmp_path / "one.jsonl", [row])
    dataset = build_acecode_hard(source=path)
    assert dataset["augmented"] == [False, True]
    augmented = (
        "Please complete the following problem:\n```\ndef add(a: int, b: int) -> int:\n"
        '    """\n    Write a function that adds two numbers.\n    """\n```\n'
    )
    assert dataset[0]["prompt"] == [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": question + "\nTest cases: assert add(1, 2) == 3"},
    ]
    # The augmented question has a fenced block, so no test is appended.
    assert dataset[1]["prompt"][1] == {"role": "user", "content": augmented}
    assert dataset[1]["question"] == augmented
    assert dataset[0]["pass_rate_mean"] == 0.5 and dataset[0]["pass_rate_std"] == 0.5

    no_system = build_acecode_hard(source=path, system_prompt="", append_first_test=False, augment=False)
    assert no_system["prompt"] == [[{"role": "user", "content": question}]]

    assert diffucoder_augmented_question("You must add numbers.", "def add(a, b):\n    pass") is None
    assert diffucoder_augmented_question("Add numbers.", "import os\ndef add(a, b):\n    pass") is None
    assert diffucoder_augmented_question("Add numbers.", "  def add(a, b):\n    pass").startswith(
        "Please complete the following problem:\n```\ndef add(a, b):\n"
    )


def test_acecode_rows_plug_into_code_reward(tmp_path):
    from trl_ext.rewards import make_code_pass_rate_reward
    from trl_ext.sandbox import LocalSandbox

    row = make_acecode_rows(num=1)[0]  # one problem: it is its own percentile, so it is kept
    dataset = build_acecode_hard(source=write_jsonl(tmp_path / "x.jsonl", [row]), augment=False)
    sandbox = LocalSandbox(max_workers=1)
    try:
        reward = make_code_pass_rate_reward(sandbox=sandbox)
        good = "```python\ndef f0(a, b):\n    return a + b\n```"
        half = "```python\ndef f0(a, b):\n    return 3\n```"
        columns = {name: list(dataset[name]) * 2 for name in dataset.column_names if name != "prompt"}
        scores = reward(
            prompts=list(dataset["prompt"]) * 2, completions=[good, half], completion_ids=[[], []], **columns
        )
    finally:
        sandbox.close()
    assert scores == [1.0, 0.5]


def test_acecode_bad_input(tmp_path, acecode_rows):
    missing = [{k: v for k, v in row.items() if k != "inferences"} for row in acecode_rows[:3]]
    with pytest.raises(SchemaError, match=r"(?s)no column\(s\) \[.inferences.\].*pass_rate"):
        build_acecode_hard(source=write_jsonl(tmp_path / "missing.jsonl", missing))
    parquet = tmp_path / "missing.parquet"
    Dataset.from_list(missing).to_parquet(str(parquet))
    with pytest.raises(SchemaError, match=r"\['inferences'\]"):
        build_acecode_hard(source=str(parquet))

    broken = json.loads(json.dumps(acecode_rows[:3]))
    del broken[1]["inferences"][2]["pass_rate"]
    with pytest.raises(SchemaError, match="lacks `model_name`, `pass_rate` or `completion`"):
        build_acecode_hard(source=write_jsonl(tmp_path / "broken.jsonl", broken))

    with pytest.raises(ValueError, match="model names in the source"):
        build_acecode_hard(source=write_jsonl(tmp_path / "ok.jsonl", acecode_rows), reference_models=["nope"])
    with pytest.raises(ValueError, match="`mean_percentile` must be a percentile in \\[0, 100\\], got 120"):
        AceCodeHardArguments(mean_percentile=120)
    with pytest.raises(ValueError, match="`std_percentile`"):
        AceCodeHardArguments(std_percentile=-1)
    with pytest.raises(ValueError, match="Unknown `preset` 'hard'"):
        AceCodeHardArguments(preset="hard")
    with pytest.raises(ValueError, match="std_percentile_over"):
        AceCodeHardArguments(std_percentile_over="some")
    with pytest.raises(FileNotFoundError, match="No such file"):
        build_acecode_hard(source=str(tmp_path / "absent.jsonl"))


def test_acecode_cli_writes_dataset_and_card(tmp_path, acecode_jsonl, acecode_rows):
    out = tmp_path / "acecode-hard"
    result = run_cli("trl_ext.data.acecode", "--source", acecode_jsonl, "--preset", "code", "--output_dir", out)
    saved = load_from_disk(str(out))
    assert triples(saved) == slow_acecode(acecode_rows, 20, 40)
    assert f"Saved {len(saved)} rows" in result.stdout

    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "mit"
    assert card.data.task_categories == ["text-generation"]
    assert card.data.source_datasets == ["TIGER-Lab/AceCode-87K"]
    assert card.data.size_categories == [size_category(len(saved))] == ["n<1K"]
    assert {"trl", "code", "diffucoder"} <= set(card.data.tags)
    text = card.text
    assert "--preset code" in text  # the command that reproduces it
    assert "| `std_percentile` | 40 |" in text
    assert f"| rows | {len(saved)} |" in text
    assert f"load_from_disk({str(out)!r})" in text
    assert "@article{gong2025diffucoder" in text and "@article{zeng2025acecoder" in text

    # The same argument parsing in-process: bad values fail before anything is read or written.
    with pytest.raises(ValueError, match="`std_percentile` must be a percentile in \\[0, 100\\], got 140"):
        AceCodeHardBuilder.main(
            ["--source", acecode_jsonl, "--std_percentile", "140", "--output_dir", tmp_path / "bad"]
        )
    with pytest.raises(SystemExit):
        AceCodeHardBuilder.main(["--source", acecode_jsonl])  # no --output_dir
    with pytest.raises(ValueError, match="needs `hub_dataset_id`"):
        AceCodeHardBuilder.main(["--source", acecode_jsonl, "--output_dir", tmp_path / "bad", "--push_to_hub"])
    assert not (tmp_path / "bad").exists()


# --------------------------------------------------------------------------------------------------------------------
# WebSight
# --------------------------------------------------------------------------------------------------------------------

LABELLED_IDEAS = {
    "Fashion Brand: A visually stunning layout with a full-width rotating image carousel, a bold centered logo and "
    "a bottom navigation menu.": "website",
    "3D printing company: A clean website with a services grid, a contact form in the footer and a hero banner.": "website",
    "Game development studio: A dark themed site with a portfolio of released titles and a careers page.": "website",
    "Furniture store: An interactive 3D product viewer where visitors rotate a sofa model, with fabric options.": "3d",
    "Space agency: A page built around a WebGL globe showing launch sites and mission timelines.": "3d",
    "Retro arcade: A playable snake game with a high score table and arrow-key controls.": "game",
    "Kids learning site: a simple memory game where players flip cards to match animals.": "game",
    "Energy company: A dashboard layout with charts of monthly consumption and a KPI header.": "data_visualization",
    "Climate institute: an infographic page with a heat map of global temperatures by decade.": "data_visualization",
    "Login form: a centered card with email and password fields, a remember-me toggle and a submit button.": "ui_component",
    "A dropdown menu with nested submenus, icons and full keyboard navigation support.": "ui_component",
    "Travel agency: A website with a search bar for destinations, featured tours and customer reviews.": "website",
}


def test_categorize_web_idea_hand_labels():
    for idea, expected in LABELLED_IDEAS.items():
        assert categorize_web_idea(idea) == expected, idea
    html = '<script src="https://cdn.jsdelivr.net/npm/chart.js"></script><canvas id="c"></canvas>'
    idea = "Finance startup: A page summarising quarterly results for investors and analysts."
    assert categorize_web_idea(idea) == "website"
    assert categorize_web_idea(idea, html) == "data_visualization"
    assert categorize_web_idea(idea, '<script src="three.min.js"></script>') == "3d"


def make_websight_ideas():
    ideas = list(LABELLED_IDEAS)
    ideas += [
        f"Company number {i}: A simple website with a header, a hero image and a footer with links." for i in range(8)
    ]
    ideas += [
        "  fashion brand:  a visually stunning layout with a full width rotating image carousel, a bold centered "
        "logo and a bottom navigation menu  ",  # duplicate of the first (case, spacing, punctuation)
        "Bakery site.",  # too short
        "",
        None,
        "3. Bookshop: A cosy website with a featured books shelf, author interviews and an events calendar.",
        "Finance startup: A page summarising quarterly results for investors and analysts.",
        "word " * 200,  # too long
    ]
    return ideas


@pytest.fixture(scope="module")
def websight_parquet(tmp_path_factory):
    ideas = make_websight_ideas()
    html = ["<html><body><h1>Hi</h1></body></html>"] * len(ideas)
    html[ideas.index("Finance startup: A page summarising quarterly results for investors and analysts.")] = (
        '<html><script src="https://cdn.jsdelivr.net/npm/chart.js"></script><canvas></canvas></html>'
    )
    features = Features({"image": Image(), "text": Value("string"), "llm_generated_idea": Value("string")})
    # Not a decodable image: the builder must never read the screenshots.
    images = [{"bytes": b"not an image", "path": None}] * len(ideas)
    path = tmp_path_factory.mktemp("websight") / "train-00000-of-00738.parquet"
    Dataset.from_dict({"image": images, "text": html, "llm_generated_idea": ideas}, features=features).to_parquet(
        str(path)
    )
    return str(path)


@pytest.fixture(scope="module")
def websight_jsonl(tmp_path_factory, websight_parquet):
    # The same rows without the screenshots. Streamed parquet sleeps 5 s whenever a shuffled stream ends (a
    # `datasets` workaround for an Arrow threading bug), so the sampling tests read this copy.
    rows = Dataset.from_parquet(websight_parquet).remove_columns("image").to_list()
    return write_jsonl(tmp_path_factory.mktemp("websight") / "websight.jsonl", rows)


def slow_clean(idea):
    text = " ".join((idea or "").split())
    return re.sub(r"^(\d+[.)]|[-*•])\s+", "", text).strip().strip("\"'*").strip()


def slow_websight_keys(ideas, min_words=5, max_words=150):
    keys, out = set(), []
    for idea in ideas:
        text = slow_clean(idea)
        if not text or not min_words <= len(text.split()) <= max_words:
            continue
        key = re.sub(r"[^0-9a-z]+", " ", text.lower()).strip()
        if key not in keys:
            keys.add(key)
            out.append((key, text))
    return out


def test_websight_all_rows_match_slow_reference(websight_parquet):
    ideas = make_websight_ideas()
    expected = slow_websight_keys(ideas)
    dataset = build_websight_prompts(source=websight_parquet, num_rows=None, seed=3)
    keys = [re.sub(r"[^0-9a-z]+", " ", idea.lower()).strip() for idea in dataset["idea"]]
    assert sorted(keys) == sorted(k for k, _ in expected)
    assert len(dataset) == len(expected) == 22
    # Categories: the hand labels, and the chart library in the HTML of the finance page.
    by_idea = dict(zip(dataset["idea"], dataset["category"]))
    for idea, label in LABELLED_IDEAS.items():
        if idea in by_idea:
            assert by_idea[idea] == label
    assert by_idea["Finance startup: A page summarising quarterly results for investors and analysts."] == (
        "data_visualization"
    )
    assert by_idea["Bookshop: A cosy website with a featured books shelf, author interviews and an events calendar."]
    assert set(dataset["category"]) == set(WEB_DESIGN_CATEGORIES)
    # The format of the bundled prompts (what recipes/aescoder_grpo.py trains on).
    bundled = load_web_design_prompts()
    assert dataset.features["prompt"] == bundled.features["prompt"]
    for row in dataset:
        assert row["prompt"] == [
            {"role": "system", "content": WEB_DESIGN_SYSTEM_PROMPT},
            {"role": "user", "content": f"Create a complete, polished web page for this idea: {row['idea']}"},
        ]
        assert row["instruction"] == row["prompt"][1]["content"]


def test_websight_sampling_and_options(websight_parquet, websight_jsonl):
    ideas = make_websight_ideas()
    first = build_websight_prompts(source=websight_jsonl, num_rows=6, seed=1)
    again = build_websight_prompts(source=websight_parquet, num_rows=6, seed=1, streaming=False)
    other = build_websight_prompts(source=websight_jsonl, num_rows=6, seed=2)
    assert len(first) == 6 and len(set(first["idea"])) == 6
    assert first["idea"] == build_websight_prompts(source=websight_jsonl, num_rows=6, seed=1)["idea"]
    assert len(again) == 6 and set(again["idea"]) <= {slow_clean(idea) for idea in ideas}
    assert first["idea"] != other["idea"]
    # No seed: the source order.
    ordered = build_websight_prompts(source=websight_parquet, num_rows=4, seed=None)
    assert ordered["idea"] == [text for _, text in slow_websight_keys(ideas)[:4]]
    # A folder of parquet shards (a downloaded copy of the Hub repository) reads the same.
    from_folder = build_websight_prompts(source=os.path.dirname(websight_parquet), num_rows=4, seed=None)
    assert from_folder.to_list() == ordered.to_list()
    # Category filter, no HTML signals, custom template, no system prompt.
    games = build_websight_prompts(
        source=websight_jsonl,
        num_rows=None,
        categories=["game", "3d"],
        use_html_signals=False,
        instruction_template="Build: {idea}",
        system_prompt="",
    )
    assert sorted(games["category"]) == ["3d", "3d", "game", "game"]
    assert all(len(p) == 1 and p[0]["content"].startswith("Build: ") for p in games["prompt"])
    no_dedup = build_websight_prompts(source=websight_jsonl, num_rows=None, dedup=False, seed=None)
    assert len(no_dedup) == 23


def test_websight_bad_input(tmp_path):
    write_jsonl(tmp_path / "w.jsonl", [{"text": "<html></html>", "idea": "A page"}])
    with pytest.raises(SchemaError, match=r"(?s)\[.llm_generated_idea.\].*llm_generated_idea: string"):
        build_websight_prompts(source=str(tmp_path / "w.jsonl"))
    with pytest.raises(ValueError, match="Unknown `categories` \\['games'\\]"):
        WebSightPromptsArguments(categories=["games"])
    with pytest.raises(ValueError, match="instruction_template"):
        WebSightPromptsArguments(instruction_template="Make a page")
    with pytest.raises(ValueError, match="`num_rows` must be an integer >= 1"):
        WebSightPromptsArguments(num_rows=0)
    with pytest.raises(ValueError, match="`max_words`"):
        WebSightPromptsArguments(min_words=10, max_words=5)


# --------------------------------------------------------------------------------------------------------------------
# ImageNet
# --------------------------------------------------------------------------------------------------------------------


def test_imagenet_class_names_offline():
    torchvision_names = imagenet_class_names("torchvision")
    lemmas = imagenet_class_names("lemmas")
    clean = imagenet_class_names("clean")
    assert len(torchvision_names) == len(lemmas) == len(clean) == 1000
    assert len(set(torchvision_names)) == 1000  # unique, unlike WordNet's two "crane"s
    assert torchvision_names[:2] == ["tench", "goldfish"]
    assert lemmas[0] == "tench, Tinca tinca"
    assert lemmas[1].split(",")[0] == "goldfish"
    with pytest.raises(ValueError, match="`names` must be one of"):
        imagenet_class_names("wordnet")


def test_imagenet_prompts():
    dataset = build_imagenet_prompts(names="torchvision")
    assert dataset.features == Features(
        {"class_label": Value("int64"), "class_name": Value("string"), "prompt": Value("string")}
    )
    assert dataset["class_label"] == list(range(1000))
    assert dataset[1] == {"class_label": 1, "class_name": "goldfish", "prompt": "a photo of goldfish"}

    lemmas = build_imagenet_prompts()  # AR-GRPO's names
    assert lemmas[0]["prompt"] == "a photo of tench, Tinca tinca"

    cycled = build_imagenet_prompts(
        names="torchvision", num_classes=10, num_rows=25, seed=0, template="an image of {}"
    )
    labels = list(cycled["class_label"])
    counts = [labels.count(label) for label in range(10)]
    assert counts == [3] * 5 + [2] * 5
    assert cycled["class_label"] != sorted(cycled["class_label"])  # shuffled
    names = imagenet_class_names("torchvision")
    assert all(p == f"an image of {names[c]}" for p, c in zip(cycled["prompt"], cycled["class_label"]))

    with pytest.raises(ValueError, match="`template` must contain"):
        ImageNetPromptsArguments(template="a photo")
    with pytest.raises(ValueError, match="`num_classes` must be <= 1000"):
        ImageNetPromptsArguments(num_classes=1001)


# --------------------------------------------------------------------------------------------------------------------
# COCO
# --------------------------------------------------------------------------------------------------------------------


def make_coco_annotations(num_images=40, seed=0):
    rng = random.Random(seed)
    nouns = ["dog", "cat", "bus", "pizza", "skier", "train", "giraffe", "kite", "laptop", "boat"]
    images, annotations = [], []
    for i in range(num_images):
        image_id = 1000 + 7 * i
        images.append({"id": image_id, "file_name": f"{image_id:012d}.jpg", "height": 480, "width": 640})
        for j in range(5):
            noun = nouns[(i + j) % len(nouns)]
            caption = f"A {noun} next to a {rng.choice(nouns)} in picture {i} view {j}."
            if j == 0 and i % 4 == 0:
                caption = "  a   " + caption[2:].upper() + " \n"  # messy spacing and case
            if j == 1 and i % 6 == 0:
                caption = "A dog on a sofa."  # repeated across images
            if j == 1 and i % 6 == 3:
                caption = " a dog on a  SOFA"  # the same, up to case, spacing and the final period
            if j == 3 and i % 5 == 0:
                caption = "A dog."  # short
            if j == 2 and i % 9 == 0:
                caption = "word " * 40  # long
            if i % 13 == 12:
                caption = "Too short."  # every caption of this image fails min_words=3
            annotations.append({"image_id": image_id, "id": len(annotations) + 1, "caption": caption})
    return {"info": {"description": "fixture"}, "licenses": [], "images": images, "annotations": annotations}


@pytest.fixture(scope="module")
def coco_json(tmp_path_factory):
    path = tmp_path_factory.mktemp("coco") / "captions_train2017.json"
    path.write_text(json.dumps(make_coco_annotations()))
    return str(path)


def slow_coco_eligible(annotations, min_words=3, max_words=30, dedup=True):
    seen, eligible = set(), {}
    for annotation in annotations:
        caption = " ".join(annotation["caption"].split())
        if not min_words <= len(caption.split()) <= max_words:
            continue
        key = " ".join(caption.lower().split()).rstrip(" .")
        if dedup and key in seen:
            continue
        seen.add(key)
        eligible.setdefault(annotation["image_id"], []).append(caption)
    return eligible


def test_coco_official_annotations(coco_json):
    annotations = make_coco_annotations()["annotations"]
    eligible = slow_coco_eligible(annotations)
    assert 30 < len(eligible) < 40  # some images lose all their captions

    builder = COCOCaptionsBuilder(source=coco_json, num_captions=25, seed=0, min_words=3, max_words=30)
    dataset = builder.build()
    assert dataset.features == Features(
        {"prompt": Value("string"), "caption": Value("string"), "image_id": Value("int64")}
    )
    assert len(dataset) == 25
    assert dataset["prompt"] == dataset["caption"]
    assert len(set(dataset["image_id"])) == 25  # one caption per image
    for caption, image_id in zip(dataset["caption"], dataset["image_id"]):
        assert caption in eligible[image_id]
    assert (
        dataset.to_list()
        == build_coco_captions(source=coco_json, num_captions=25, min_words=3, max_words=30).to_list()
    )
    assert (
        dataset["caption"]
        != build_coco_captions(source=coco_json, num_captions=25, seed=1, min_words=3, max_words=30)["caption"]
    )
    assert builder.counts["images with an eligible caption"] == len(eligible)
    assert builder.counts["source captions"] == len(annotations)

    everything = build_coco_captions(source=coco_json, num_captions=None, min_words=3, max_words=30)
    assert set(everything["image_id"]) == set(eligible)
    all_captions = build_coco_captions(
        source=coco_json, num_captions=None, one_per_image=False, min_words=3, max_words=30
    )
    assert sorted(zip(all_captions["image_id"], all_captions["caption"])) == sorted(
        (image_id, caption) for image_id, captions in eligible.items() for caption in captions
    )
    no_dedup = build_coco_captions(
        source=coco_json, num_captions=None, one_per_image=False, dedup=False, min_words=3, max_words=30
    )
    assert len(no_dedup) == sum(len(c) for c in slow_coco_eligible(annotations, dedup=False).values())
    assert len(no_dedup) > len(all_captions)


def test_coco_tables(tmp_path):
    # Karpathy-style rows: one image per row, `sentences` records with `raw`, `cocoid`.
    rows = [
        {
            "cocoid": 10 + i,
            "sentences": [
                {"raw": f"A red bus number {i} on a street.", "sentid": 2 * i},
                {"raw": f"A bus {i} parked by the road.", "sentid": 2 * i + 1},
            ],
        }
        for i in range(6)
    ]
    dataset = build_coco_captions(source=write_jsonl(tmp_path / "karpathy.jsonl", rows), num_captions=None)
    assert sorted(dataset["image_id"]) == list(range(10, 16))
    assert all(f" {image_id - 10} " in caption for caption, image_id in zip(dataset["caption"], dataset["image_id"]))
    # LlamaGen's coco_captions.csv: a `Prompt` column, no image id (the row index is used).
    (tmp_path / "coco_captions.csv").write_text("Prompt\nA cat on a mat.\nTwo dogs playing in the snow.\n")
    dataset = build_coco_captions(source=str(tmp_path / "coco_captions.csv"), seed=3)
    assert sorted(dataset["caption"]) == ["A cat on a mat.", "Two dogs playing in the snow."]
    assert sorted(dataset["image_id"]) == [0, 1]

    write_jsonl(tmp_path / "nocap.jsonl", [{"image_id": 1, "url": "x"}])
    with pytest.raises(SchemaError, match="No caption column.*caption_column"):
        build_coco_captions(source=str(tmp_path / "nocap.jsonl"))
    instances = {"info": {}, "images": [{"id": 1}], "annotations": [{"image_id": 1, "bbox": [0, 0, 1, 1]}]}
    (tmp_path / "instances_val2017.json").write_text(json.dumps(instances))
    with pytest.raises(SchemaError, match="lacks `image_id` or `caption`"):
        build_coco_captions(source=str(tmp_path / "instances_val2017.json"))
    with pytest.raises(ValueError, match="Set `source`"):
        build_coco_captions()


def test_coco_cli(tmp_path, coco_json):
    out = tmp_path / "coco"
    run_cli(
        "trl_ext.data.coco", "--source", coco_json, "--num_captions", "12", "--min_words", "3", "--output_dir", out
    )
    saved = load_from_disk(str(out))
    assert saved.to_list() == build_coco_captions(source=coco_json, num_captions=12, min_words=3).to_list()
    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "cc-by-4.0" and card.data.task_categories == ["text-to-image"]
    assert "| rows | 12 |" in card.text and "@inproceedings{lin2014coco" in card.text


# --------------------------------------------------------------------------------------------------------------------
# Publishing
# --------------------------------------------------------------------------------------------------------------------


def test_push_to_local_hub(tmp_path, acecode_parquet, acecode_rows):
    import io

    import pyarrow.parquet as pq

    from trl_ext.testing_hub import LocalHubServer

    upload = (
        "import sys; from huggingface_hub import HfApi; api = HfApi(); "
        "api.create_repo('TIGER-Lab/AceCode-87K', repo_type='dataset'); "
        "api.upload_file(path_or_fileobj=sys.argv[1], path_in_repo='data/train-00000-of-00001.parquet', "
        "repo_id='TIGER-Lab/AceCode-87K', repo_type='dataset')"
    )
    with LocalHubServer() as hub:
        env = {**os.environ, **hub.env()}
        subprocess.run([sys.executable, "-c", upload, acecode_parquet], env=env, check=True, timeout=60)
        # The default source is the Hub id: the rows are streamed from the (local) Hub, then the result is pushed.
        run_cli(
            "trl_ext.data.acecode",
            "--output_dir", tmp_path / "out",
            "--push_to_hub",
            "--hub_dataset_id", "local-org/acecode-hard",
            env=hub.env(),
        )  # fmt: skip
        files = hub.repo_files("local-org/acecode-hard", repo_type="dataset")
    parquet_files = [path for path in files if path.endswith(".parquet")]
    assert parquet_files and all(path.startswith("data/train-") for path in parquet_files)
    table = pq.read_table(io.BytesIO(files[parquet_files[0]]))
    expected = slow_acecode(acecode_rows, 20, 60)
    assert (
        list(zip(table["id"].to_pylist(), table["augmented"].to_pylist(), table["question"].to_pylist())) == expected
    )

    card = DatasetCard(files["README.md"].decode())
    # Our card's metadata and text, plus the `dataset_info`/`configs` that `Dataset.push_to_hub` adds.
    assert card.data.license == "mit" and card.data.source_datasets == ["TIGER-Lab/AceCode-87K"]
    assert card.data.configs[0]["data_files"][0]["split"] == "train"
    assert card.data.dataset_info["splits"][0]["num_examples"] == len(expected)
    assert 'load_dataset("local-org/acecode-hard", split="train")' in card.text
    assert "## How it was built" in card.text and "| `source` | TIGER-Lab/AceCode-87K |" in card.text
    local_card = (tmp_path / "out" / "README.md").read_text()
    assert 'load_dataset("local-org/acecode-hard"' in local_card


# --------------------------------------------------------------------------------------------------------------------
# Builder -> recipe: each builder's save_to_disk folder trains the matching tiny recipe
# --------------------------------------------------------------------------------------------------------------------
def run_recipe(recipe, config, *args):
    result = subprocess.run(
        [sys.executable, f"recipes/{recipe}.py", "--config", f"recipes/configs/{config}.yaml", *map(str, args)],
        cwd=REPO_ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}, capture_output=True,
        text=True, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    return result


@pytest.mark.slow
def test_acecode_folder_trains_the_coupled_recipe(tmp_path, acecode_jsonl):
    data = tmp_path / "acecode-hard"
    run_cli("trl_ext.data.acecode", "--source", acecode_jsonl, "--preset", "code", "--output_dir", data)
    out = tmp_path / "run"
    run_recipe(
        "coupled_grpo", "coupled_grpo_tiny", "--dataset_name", data, "--output_dir", out, "--max_steps", "2",
        "--per_device_train_batch_size", "8", "--report_to", "none",
    )  # fmt: skip
    assert (out / "model.safetensors").exists()
    assert "huggingface.co/datasets/" not in (out / "README.md").read_text()  # a local folder is not linked


@pytest.mark.slow
def test_imagenet_folder_trains_the_c2i_recipe(tmp_path):
    data = tmp_path / "imagenet"
    run_cli(
        "trl_ext.data.imagenet", "--names", "torchvision", "--num_classes", "3", "--num_rows", "32",
        "--output_dir", data,
    )  # fmt: skip
    out = tmp_path / "run"
    run_recipe(
        "ar_grpo_c2i", "ar_grpo_c2i_tiny", "--dataset_name", data, "--output_dir", out, "--max_steps", "2",
        "--report_to", "none",
    )  # fmt: skip
    assert (out / "model.safetensors").exists()


@pytest.mark.slow
def test_coco_folder_trains_the_t2i_recipe(tmp_path, coco_json):
    data = tmp_path / "coco"
    run_cli(
        "trl_ext.data.coco", "--source", coco_json, "--num_captions", "16", "--min_words", "3", "--output_dir", data
    )
    out = tmp_path / "run"
    run_recipe(
        "ar_grpo_t2i", "ar_grpo_t2i_tiny", "--dataset_name", data, "--caption_column", "prompt", "--output_dir", out,
        "--max_steps", "2", "--report_to", "none",
    )  # fmt: skip
    assert (out / "model.safetensors").exists()


def test_missing_local_dataset_is_named(tmp_path):
    from trl_ext.data import load_prompt_dataset

    with pytest.raises(FileNotFoundError, match="is not an existing file"):
        load_prompt_dataset(str(tmp_path / "prompts.jsonl"))
    with pytest.raises(FileNotFoundError, match="is not an existing folder or file"):
        load_prompt_dataset(str(tmp_path / "no" / "folder"))


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_websight_folder_trains_the_aescoder_recipe(tmp_path, websight_parquet):
    data = tmp_path / "websight"
    run_cli("trl_ext.data.websight", "--source", websight_parquet, "--num_rows", "16", "--output_dir", data)
    out = tmp_path / "run"
    run_recipe(
        "aescoder_grpo", "aescoder_grpo_tiny", "--dataset_name", data, "--output_dir", out, "--max_steps", "2",
        "--report_to", "none",
    )  # fmt: skip
    assert (out / "model.safetensors").exists()
