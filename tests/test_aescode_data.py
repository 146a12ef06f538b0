"""`trl_ext.data.aescode`: AesCode-358K formatted for SFT, the bundled sample, filters, schemas and errors."""

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from importlib import resources

import pytest
from datasets import Dataset, DatasetDict, load_from_disk
from huggingface_hub import DatasetCard

from trl_ext.data import WEB_DESIGN_CATEGORIES, WEB_DESIGN_SYSTEM_PROMPT
from trl_ext.data._builder import SchemaError
from trl_ext.data.aescode import (
    AESCODE_SAMPLE,
    PLOT_SYSTEM_PROMPT,
    AesCodeSFTBuilder,
    classify_response,
    load_aescode,
    normalize_category,
)
from trl_ext.web import BrowserPool, chromium_available
from trl_ext.web.lint import extract_html, lint_html

# The categories as the bundled file spells them (OpenDesign's spelling) -> the keys the loader returns.
SAMPLE_CATEGORIES = {
    "Website": "website",
    "3D Design": "3d",
    "Game Dev": "game",
    "UI Component": "ui_component",
    "Data Visualization": "data_visualization",
    "Plot": "plot",
}


def sample_rows():
    text = resources.files("trl_ext.data").joinpath("aescode_sample.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def expected_messages(row):
    """The obviously-right formatting of one bundled row, written out by hand."""
    category = SAMPLE_CATEGORIES[row["category"]]
    system = PLOT_SYSTEM_PROMPT if category == "plot" else WEB_DESIGN_SYSTEM_PROMPT
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": row["prompt"]},
        {"role": "assistant", "content": row["response"]},
    ]


def test_sample_is_formatted_like_the_plain_python_reference():
    rows = sample_rows()
    dataset = load_aescode(AESCODE_SAMPLE)
    assert dataset.column_names == ["messages", "kind", "category"]
    assert len(dataset) == len(rows) == 40
    for row, out in zip(rows, dataset):
        category = SAMPLE_CATEGORIES[row["category"]]
        assert out["messages"] == expected_messages(row)
        assert out["category"] == category
        assert out["kind"] == ("plot" if category == "plot" else "web")

    split = load_aescode(AESCODE_SAMPLE, conversation_format="prompt_completion")
    assert split.column_names == ["prompt", "completion", "kind", "category"]
    for whole, parts in zip(dataset, split):
        assert parts["prompt"] + parts["completion"] == whole["messages"]
        assert [m["role"] for m in parts["completion"]] == ["assistant"]


def test_sample_pages_pass_the_lint_and_plots_run(tmp_path):
    rows = sample_rows()
    counts = Counter(row["category"] for row in rows)
    assert counts["Plot"] == 16 and sum(counts.values()) == 40
    assert all(counts[name] >= 4 for name in SAMPLE_CATEGORIES)  # every webpage category is represented
    assert len({row["id"] for row in rows}) == len({row["prompt"] for row in rows}) == 40

    web = [row for row in rows if row["category"] != "Plot"]
    for row in web:
        assert row["response"].startswith("```html\n<!DOCTYPE html>") and row["response"].endswith("</html>\n```")
        result = lint_html(extract_html(row["response"]))
        assert result.passed, (row["id"], result.messages[:3])

    # Every plotting script runs headless and draws a figure with data (in a fresh interpreter, 16 scripts ~2 s).
    plots = [row for row in rows if row["category"] == "Plot"]
    scripts = {row["id"]: row["response"].removeprefix("```python\n").removesuffix("\n```") for row in plots}
    (tmp_path / "scripts.json").write_text(json.dumps(scripts))
    runner = textwrap.dedent(
        """
        import json, sys, warnings
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        warnings.simplefilter("error")  # a deprecation or layout warning counts as a defect
        for name, code in json.load(open(sys.argv[1])).items():
            plt.close("all")
            exec(compile(code, name, "exec"), {"__name__": "__main__"})
            figures = [plt.figure(number) for number in plt.get_fignums()]
            assert any(ax.has_data() for figure in figures for ax in figure.axes), name
        print("ran", len(json.load(open(sys.argv[1]))))
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", runner, str(tmp_path / "scripts.json")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MPLCONFIGDIR": str(tmp_path / "mpl")},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "ran 16" in run.stdout


@pytest.mark.browser
@pytest.mark.skipif(not chromium_available(), reason="needs Chromium: `apt-get install chromium` (make installs it)")
def test_sample_pages_load_in_chromium_without_errors():
    pages = [row for row in sample_rows() if row["category"] != "Plot"]
    with BrowserPool(size=1, page_timeout=30.0, mobile_viewport=None) as pool:
        for row in pages:
            render = pool.render(extract_html(row["response"]))
            assert render.ok, (row["id"], render.error)
            assert not render.console_errors and not render.failed_requests and not render.blocked_requests, row["id"]


def test_subset_category_and_row_filters():
    web = load_aescode(AESCODE_SAMPLE, subset="web")
    assert len(web) == 24 and set(web["kind"]) == {"web"} and set(web["category"]) == set(WEB_DESIGN_CATEGORIES)
    plot = load_aescode(AESCODE_SAMPLE, subset="plot")
    assert len(plot) == 16 and set(plot["category"]) == {"plot"}
    assert all(m[0]["content"] == PLOT_SYSTEM_PROMPT for m in plot["messages"])

    mixed = load_aescode(AESCODE_SAMPLE, categories=["game", "plot"])
    assert Counter(mixed["category"]) == {"plot": 16, "game": 4}
    only_games = load_aescode(AESCODE_SAMPLE, subset="web", categories=["game", "plot"])
    assert Counter(only_games["category"]) == {"game": 4}
    assert len(load_aescode(AESCODE_SAMPLE, categories="3d")) == 4

    # max_rows without a seed keeps the source order; with a seed, a reproducible draw over the filtered rows.
    first = load_aescode(AESCODE_SAMPLE, max_rows=5)
    assert [m[1]["content"] for m in first["messages"]] == [row["prompt"] for row in sample_rows()[:5]]
    drawn = load_aescode(AESCODE_SAMPLE, subset="web", max_rows=6, seed=3)
    again = load_aescode(AESCODE_SAMPLE, subset="web", max_rows=6, seed=3)
    assert drawn["messages"] == again["messages"] and set(drawn["kind"]) == {"web"}
    assert drawn["messages"] != load_aescode(AESCODE_SAMPLE, subset="web", max_rows=6, seed=4)["messages"]

    no_system = load_aescode(AESCODE_SAMPLE, web_system_prompt=None, subset="web")
    assert [m["role"] for m in no_system[0]["messages"]] == ["user", "assistant"]


def test_other_layouts_are_recognised_and_bare_code_is_fenced():
    page = "<!DOCTYPE html>\n<html><head><title>t</title></head><body><p>hi</p></body></html>"
    script = "import matplotlib.pyplot as plt\nplt.plot([1, 2], [3, 4])\nplt.show()"
    # instruction/output columns, no category column: the kind comes from the code.
    dataset = Dataset.from_dict(
        {"instruction": ["make a page", "make a plot", "say hi"], "output": [page, script, "hello there"]}
    )
    out = load_aescode(dataset)
    assert out["kind"] == ["web", "plot"] and out["category"] == ["other", "plot"]  # "say hi" is dropped
    assert out[0]["messages"][2]["content"] == f"```html\n{page}\n```"
    assert out[1]["messages"][2]["content"] == f"```python\n{script}\n```"
    assert load_aescode(dataset, wrap_code=False)[0]["messages"][2]["content"] == page

    # `messages` rows: the source's system message is replaced by the one of the row's kind.
    conversations = Dataset.from_dict(
        {
            "messages": [
                [
                    {"role": "system", "content": "old"},
                    {"role": "user", "content": "a tic-tac-toe game"},
                    {"role": "assistant", "content": "```html\n" + page + "\n```"},
                ]
            ],
            "category": ["game_dev"],
        }
    )
    out = load_aescode(conversations)
    assert out[0]["messages"][0] == {"role": "system", "content": WEB_DESIGN_SYSTEM_PROMPT}
    assert out[0]["messages"][1:] == conversations[0]["messages"][1:] and out["category"] == ["game"]

    # Columns named explicitly; category spellings of other sources.
    renamed = Dataset.from_dict({"q": ["x", "y"], "a": [page, script], "topic": ["Data Visualisation", "Python Plot"]})
    out = load_aescode(renamed, instruction_column="q", response_column="a", category_column="topic")
    assert out["category"] == ["data_visualization", "plot"]
    assert normalize_category("UI-Component") == ("web", "ui_component") and normalize_category("Blog") is None
    assert classify_response("```py\nprint(1)\n```") == "plot" and classify_response("no code") is None


def test_local_copies_load_like_the_bundled_sample(tmp_path):
    reference = load_aescode(AESCODE_SAMPLE)
    raw = Dataset.from_list(sample_rows())
    raw.to_parquet(str(tmp_path / "aescode.parquet"))
    raw.to_json(str(tmp_path / "aescode.jsonl"))
    DatasetDict({"train": raw}).save_to_disk(str(tmp_path / "saved"))
    (tmp_path / "folder").mkdir()
    raw.to_parquet(str(tmp_path / "folder" / "part-0.parquet"))
    for source in ["aescode.parquet", "aescode.jsonl", "saved", "folder"]:
        assert load_aescode(str(tmp_path / source))["messages"] == reference["messages"], source
    assert load_aescode(DatasetDict({"train": raw}))["messages"] == reference["messages"]
    with pytest.raises(ValueError, match="Split 'test' not found"):
        load_aescode(str(tmp_path / "saved"), split="test")
    with pytest.raises(FileNotFoundError, match="neither a local file"):
        load_aescode(str(tmp_path / "missing" / "data.jsonl"))


def test_errors_name_the_columns_and_the_expected_schema():
    with pytest.raises(SchemaError) as error:
        load_aescode(Dataset.from_dict({"title": ["x"], "html": ["<html></html>"]}))
    message = str(error.value)
    assert "no instruction column" in message and "['title', 'html']" in message
    assert "`messages`" in message and "instruction_column=" in message

    with pytest.raises(SchemaError, match="no response column"):
        load_aescode(Dataset.from_dict({"prompt": ["x"], "html": ["<html></html>"]}))
    with pytest.raises(SchemaError, match=r"`response_column='answer_html'` is not a column.*\['prompt', 'html'\]"):
        load_aescode(Dataset.from_dict({"prompt": ["x"], "html": ["y"]}), response_column="answer_html")
    with pytest.raises(SchemaError, match=r"Row 1: `prompt` and `response` must be strings"):
        load_aescode(Dataset.from_dict({"prompt": ["a", "b"], "response": ["<html></html>", None]}))
    with pytest.raises(ValueError, match="must end with the assistant's answer"):
        load_aescode(Dataset.from_dict({"messages": [[{"role": "user", "content": "hi"}]]}))
    with pytest.raises(SchemaError, match="None of the 1 rows is recognisable"):
        load_aescode(Dataset.from_dict({"prompt": ["x"], "response": ["plain prose"], "category": ["Poetry"]}))

    with pytest.raises(ValueError, match=r"`subset` must be one of \['web', 'plot', 'both'\]"):
        load_aescode(AESCODE_SAMPLE, subset="html")
    with pytest.raises(ValueError, match=r"Unknown `categories` \['games'\]"):
        load_aescode(AESCODE_SAMPLE, categories=["games"])
    with pytest.raises(ValueError, match="No row left after filtering"):
        load_aescode(AESCODE_SAMPLE, subset="plot", categories=["game"])
    with pytest.raises(ValueError, match="`max_rows` must be a positive int"):
        load_aescode(AESCODE_SAMPLE, max_rows=0)
    with pytest.raises(ValueError, match="`conversation_format` must be one of"):
        load_aescode(AESCODE_SAMPLE, conversation_format="chatml")


def test_builder_saves_the_dataset_with_its_card(tmp_path):
    out = tmp_path / "aescode-plot"
    built = AesCodeSFTBuilder.main(
        ["--source", AESCODE_SAMPLE, "--output_dir", str(out), "--subset", "plot", "--max_rows", "10", "--seed", "0"]
    )
    saved = load_from_disk(str(out))
    assert (
        saved["messages"] == built["messages"] == load_aescode(AESCODE_SAMPLE, "plot", max_rows=10, seed=0)["messages"]
    )
    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "other" and "sft" in card.data.tags and card.data.size_categories == ["n<1K"]
    assert "| other than subset='plot' (dropped) | 24 |" in card.text and "| rows | 10 |" in card.text
    assert "python -m trl_ext.data.aescode --output_dir OUTPUT_DIR --source trl_ext/aescode_sample" in card.text
    assert not card.data.source_datasets  # the bundled sample is not a Hub dataset
