"""
Evaluation reports of `trl_ext.eval.code` / `trl_ext.eval.image` (a `summary` per benchmark and a ready `model_index`)
become the card's `## Evaluation` table and its `model-index`, and `add-eval --push_to_hub` pushes the card and the
report to a Hub repository in one commit ([`~trl_ext.testing_hub.LocalHubServer`]: the real client code path).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from trl_ext.model_card import add_eval_report_to_card, eval_results, eval_section, validate_model_card
from trl_ext.testing_hub import LocalHubServer

CARD = """---
license: apache-2.0
library_name: transformers
pipeline_tag: text-generation
tags:
- trl
---

# tiny-model

A model card as the trainers write it.

<!-- trl_ext:evaluation:start -->
## Evaluation

Not evaluated when this card was written.
<!-- trl_ext:evaluation:end -->

## Training procedure

Trained with trl_ext.
"""

CODE_REPORT = {
    "kind": "code",
    "evaluator": "trl_ext.eval.code",
    "model": "/models/tiny",
    "settings": {"max_new_tokens": 512, "steps": 512, "temperature": 0.0, "n_samples": 1},
    "summary": {"humaneval": {"pass@1": 0.5, "pass@10": 0.75}, "humaneval+": {"pass@1": 0.25}},
    "model_index": [
        {"task_type": "text-generation", "dataset_type": "openai_humaneval", "dataset_name": "HumanEval",
         "metric_type": "pass@1", "metric_name": "pass@1", "metric_value": 0.5},
        {"task_type": "text-generation", "dataset_type": "openai_humaneval", "dataset_name": "HumanEval",
         "metric_type": "pass@10", "metric_name": "pass@10", "metric_value": 0.75},
        {"task_type": "text-generation", "dataset_type": "evalplus/humanevalplus", "dataset_name": "HumanEval+",
         "metric_type": "pass@1", "metric_name": "pass@1", "metric_value": 0.25},
    ],
    "problems": [],
}  # fmt: skip

IMAGE_REPORT = {
    "kind": "image",
    "evaluator": "trl_ext.eval.image",
    "settings": {"cfg_scale": 2.0, "top_k": 0, "images": 50},
    "summary": {"imagenet-c2i": {"fid": 12.5, "inception_score": 3.25}},
    "model_index": [
        {"task_type": "image-generation", "dataset_type": "imagenet-1k", "dataset_name": "ImageNet 256x256",
         "metric_type": "fid", "metric_name": "FID", "metric_value": 12.5},
        {"task_type": "image-generation", "dataset_type": "imagenet-1k", "dataset_name": "ImageNet 256x256",
         "metric_type": "inception_score", "metric_name": "IS", "metric_value": 3.25},
    ],
}  # fmt: skip


@pytest.mark.parametrize("report", [CODE_REPORT, IMAGE_REPORT], ids=["code", "image"])
def test_benchmark_reports_become_a_table_and_model_index(report, tmp_path):
    section = eval_section(report)
    metrics = list(dict.fromkeys(m for values in report["summary"].values() for m in values))
    assert "| benchmark | " + " | ".join(metrics) + " |" in section
    for name in report["summary"]:
        assert section.count(f"| {name} |") == 1
    assert "| humaneval+ | 0.25 | n/a |" in section or report["kind"] == "image"
    assert f"python -m {report['evaluator']}" in section and "For reference" in section
    results = eval_results(report)
    assert [(r.dataset_name, r.metric_type, r.metric_value) for r in results] == [
        (e["dataset_name"], e["metric_type"], e["metric_value"]) for e in report["model_index"]
    ]

    readme = tmp_path / "README.md"
    readme.write_text(CARD)
    card = add_eval_report_to_card(str(readme), report)
    text = readme.read_text()
    assert text.count("## Evaluation") == 1 and "Not evaluated" not in text
    assert text.index("## Evaluation") < text.index("## Training procedure")
    metadata = yaml.safe_load(text.split("---")[1])
    published = metadata["model-index"][0]["results"]
    assert sum(len(r["metrics"]) for r in published) == len(report["model_index"])
    assert validate_model_card(card.content).data.eval_results


def test_malformed_model_index_is_named():
    bad = {**CODE_REPORT, "model_index": [{"metric_value": 1.0, "score": 2}]}
    with pytest.raises(ValueError, match=r"model_index\[0\].*unknown fields \['score'\]"):
        eval_results(bad)
    with pytest.raises(ValueError, match="has no `model_index` list"):
        eval_results({k: v for k, v in CODE_REPORT.items() if k != "model_index"})


def test_add_eval_pushes_the_card_and_report_in_one_commit(tmp_path):
    model_dir = tmp_path / "tiny-model"
    (model_dir / "eval").mkdir(parents=True)
    (model_dir / "README.md").write_text(CARD)
    (model_dir / "eval" / "report.json").write_text(json.dumps(CODE_REPORT))
    (model_dir / "eval" / "report.md").write_text("| benchmark | pass@1 |\n")
    script = (
        "import sys\n"
        "from huggingface_hub import HfApi\n"
        "from trl_ext.model_card import main\n"
        "HfApi().create_repo('local-user/tiny-model')\n"
        "main(['add-eval', sys.argv[1], '--push_to_hub', 'local-user/tiny-model'])\n"
    )
    with LocalHubServer() as server:
        env = {**os.environ, **server.env(), "PYTHONPATH": os.getcwd()}
        done = subprocess.run(
            [sys.executable, "-c", script, str(model_dir)], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-3000:]
        files = server.repo_files("local-user/tiny-model")
    assert {"README.md", "eval/report.json", "eval/report.md"} <= set(files)
    pushed = files["README.md"].decode()
    assert pushed == (model_dir / "README.md").read_text()  # the card updated locally is the one pushed
    assert "| humaneval | 0.5 | 0.75 |" in pushed and "model-index" in pushed
    assert json.loads(files["eval/report.json"]) == CODE_REPORT
    assert "pushed it with the report" in done.stdout


def test_add_eval_push_without_a_report_names_the_evaluators(tmp_path):
    from trl_ext.model_card import push_eval_to_hub

    (tmp_path / "README.md").write_text(CARD)
    with pytest.raises(FileNotFoundError, match="python -m trl_ext.eval.code"):
        push_eval_to_hub(tmp_path, "local-user/x")
