"""
Model cards of every trl_ext trainer, rendered from short finished training runs: metadata that the Hub accepts,
content (base model, rewards and weights, hyper-parameters, results, citations), and a quickstart that runs.

The quickstart snippets are extracted from the cards and executed in one subprocess against the saved folders (the
snippet names the repo once, `model_id = "<repo id>"`; the test points that line at the folder).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import string
import subprocess
import sys

import pytest
import yaml
from datasets import Dataset
from huggingface_hub import ModelCard
from peft import LoraConfig
from trl import ModelConfig, TrlParser

from trl_ext import AesCoderGRPOConfig, AesCoderGRPOTrainer, CoupledGRPOConfig, CoupledGRPOTrainer
from trl_ext.model_card import (
    HUB_LICENSES,
    TRAINING_CONFIG_NAME,
    add_eval_report_to_card,
    extract_quickstart,
    install_command,
    metadata_errors,
    render_model_card,
    save_training_config,
    training_config_dict,
    validate_model_card,
)
from trl_ext.rewards import code_format_reward
from trl_ext.rewards.pixel import brightness_reward
from trl_ext.testing import (
    make_tiny_causal_lm,
    make_tiny_dream_lm,
    make_tokenizer,
    save_tiny_model,
    target_fraction_reward,
)
from trl_ext.testing_image import make_tiny_llamagen, make_tiny_t5_encoder, make_tiny_vq
from trl_ext.trainers.ar_image_grpo_config import ARImageGRPOConfig
from trl_ext.trainers.ar_image_grpo_trainer import ARImageGRPOTrainer
from trl_ext.web import chromium_available

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAVE_CHROMIUM = chromium_available()
LOWERCASE = target_fraction_reward(string.ascii_lowercase)
COMMON = dict(
    max_steps=2, logging_steps=1, bf16=False, use_cpu=True, report_to="none", save_strategy="no",
    gradient_checkpointing=False, disable_tqdm=True, seed=0, learning_rate=1e-2,
)  # fmt: skip

# Executes each quickstart in a fresh namespace and working folder, recording its output or its traceback.
SNIPPET_RUNNER = """
import contextlib, io, json, os, sys, traceback

jobs = json.load(open(sys.argv[1]))
results = {}
for name, job in jobs.items():
    os.makedirs(job["workdir"], exist_ok=True)
    os.chdir(job["workdir"])
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(job["code"], f"<quickstart {name}>", "exec"), {"__name__": "__main__"})
        results[name] = {"ok": True, "stdout": out.getvalue(), "files": sorted(os.listdir("."))}
    except Exception:
        results[name] = {"ok": False, "error": traceback.format_exc(), "stdout": out.getvalue()}
print("RESULTS " + json.dumps(results))
"""


def run_snippets(jobs: dict, tmp_path, env=None, timeout: int = 300) -> dict:
    spec = tmp_path / "jobs.json"
    spec.write_text(json.dumps(jobs))
    result = subprocess.run(
        [sys.executable, "-c", SNIPPET_RUNNER, str(spec)],
        env=env or os.environ,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0 and "RESULTS " in result.stdout, result.stderr[-4000:]
    return json.loads(result.stdout.rsplit("RESULTS ", 1)[1])


def point_at_folder(snippet: str, repo_id: str, folder: str) -> str:
    line = f'model_id = "{repo_id}"'
    assert snippet.count(line) == 1, f"the quickstart must name the repo once as {line!r}:\n{snippet}"
    assert snippet.count(repo_id) == 1, "the repo id must appear only in the model_id line"
    return snippet.replace(line, f"model_id = {folder!r}")


# ----------------------------------------------------------------------------------------------------------------
# Finished tiny runs (module scope: each trains once, every test reads its card)
# ----------------------------------------------------------------------------------------------------------------
def _coupled(tmp, peft: bool, hub_model_id: str | None = "my-org/coupled-tiny"):
    tokenizer = make_tokenizer()
    base = save_tiny_model(make_tiny_dream_lm(tokenizer), tokenizer, tmp / "base")
    args = CoupledGRPOConfig(
        output_dir=str(tmp / "out"), hub_model_id=hub_model_id, max_completion_length=8,
        num_generations=4, per_device_train_batch_size=8, reward_weights=[1.0, 0.5], diffusion_steps=4, **COMMON,
    )  # fmt: skip
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": "write code"}]] * 32})
    trainer = CoupledGRPOTrainer(
        base,
        [LOWERCASE, code_format_reward],
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]) if peft else None,
    )
    trainer.train()
    trainer.save_model(args.output_dir)
    trainer.create_model_card(dataset_name="my-org/hard-code-prompts")
    return trainer


def _aescoder(tmp):
    from trl_ext.rewards.agentic import AgenticAestheticReward
    from trl_ext.web import BrowserPool

    tokenizer = make_tokenizer(with_mask_token=False)
    base = save_tiny_model(make_tiny_causal_lm(tokenizer, hidden_size=64), tokenizer, tmp / "base")
    args = AesCoderGRPOConfig(
        output_dir=str(tmp / "out"), hub_model_id="my-org/aescoder-tiny", max_completion_length=8,
        num_generations=4, per_device_train_batch_size=4, beta=0.0, lint_gate=False, check_runtime=False,
        serve_cdn_libraries=False, **COMMON,
    )  # fmt: skip
    dataset = Dataset.from_dict({"prompt": [[{"role": "user", "content": "write a page"}]] * 16})
    with BrowserPool(size=2, page_timeout=8.0, settle_ms=0, mobile_viewport=None) as pool:
        reward = AgenticAestheticReward(pool=pool, lint_gate=False, interactive=False)
        trainer = AesCoderGRPOTrainer(base, args=args, train_dataset=dataset, aesthetic_reward=reward)
        trainer.train()
    trainer.save_model(args.output_dir)
    trainer.create_model_card()
    return trainer


def _image(tmp, condition_type: str):
    args = ARImageGRPOConfig(
        output_dir=str(tmp / "out"), hub_model_id=f"my-org/ar-grpo-{condition_type}-tiny", num_generations=4,
        per_device_train_batch_size=8, beta=0.0, cfg_scale=2.0, **COMMON,
    )  # fmt: skip
    if condition_type == "c2i":
        dataset = Dataset.from_dict({"prompt": [f"class {i % 3}" for i in range(16)], "class_label": [0, 1, 2, 0] * 4})
        trainer = ARImageGRPOTrainer(
            make_tiny_llamagen(), brightness_reward, args=args, train_dataset=dataset, vq_model=make_tiny_vq()
        )
    else:
        tokenizer = make_tokenizer(with_mask_token=False)
        trainer = ARImageGRPOTrainer(
            make_tiny_llamagen("t2i", caption_dim=16, num_condition_tokens=12),
            brightness_reward,
            args=args,
            train_dataset=Dataset.from_dict({"prompt": ["a red apple", "a blue sky"] * 8}),
            processing_class=tokenizer,
            vq_model=make_tiny_vq(),
            text_encoder=make_tiny_t5_encoder(len(tokenizer), d_model=16),
        )
    trainer.train()
    trainer.save_model(args.output_dir)
    trainer.create_model_card()
    return trainer


RUNS = {
    "coupled": lambda tmp: _coupled(tmp, peft=False),
    "coupled_peft": lambda tmp: _coupled(tmp, peft=True),
    "aescoder": _aescoder,
    "ar_c2i": lambda tmp: _image(tmp, "c2i"),
    "ar_t2i": lambda tmp: _image(tmp, "t2i"),
}
NEEDS_CHROMIUM = {"aescoder"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    trainers = {}
    for name, build in RUNS.items():
        if name in NEEDS_CHROMIUM and not HAVE_CHROMIUM:
            continue
        trainers[name] = build(tmp_path_factory.mktemp(name))
    return trainers


def run_param(name):
    marks = [pytest.mark.browser, pytest.mark.skipif(not HAVE_CHROMIUM, reason="needs Chromium")]
    return pytest.param(name, marks=marks if name in NEEDS_CHROMIUM else [])


def render_elsewhere(trainer, folder, **kwargs) -> ModelCard:
    """The trainer's own `create_model_card(**kwargs)`, written to `folder` instead of the run's output folder."""
    original = trainer.args.output_dir
    trainer.args.output_dir = str(folder)
    try:
        trainer.create_model_card(**kwargs)
    finally:
        trainer.args.output_dir = original
    return validate_model_card(open(os.path.join(folder, "README.md"), encoding="utf-8").read())


def card_text(trainer) -> str:
    with open(os.path.join(trainer.args.output_dir, "README.md"), encoding="utf-8") as f:
        return f.read()


# What each card must say: metadata, and strings from every section the brief of a good card asks for.
EXPECTED = {
    "coupled": {
        "pipeline_tag": "text-generation",
        "library_name": "transformers",
        "tags": {"coupled-grpo", "diffusion-lm", "arxiv:2506.20639"},
        "datasets": ["my-org/hard-code-prompts"],
        "text": [
            "coupled-GRPO",
            "| `fraction_in_target` | 1 |",
            "| `code_format_reward` | 0.5 |",
            "| likelihood_estimator | `coupled` |",
            "| mask ratio range | `(0.2, 0.8)` |",
            "| epsilon | `0.5` |",
            "| diffusion_steps | `4` |",
            "| learning_rate | `0.01` |",
            "| samples per optimizer step (all processes) | `8` |",
            "1 x CPU",
            "**Training results**",
            "MaskedDiffusionSampler",
            "@article{gong2025diffucoder",
            "@software{vonwerra2020trl",
            "https://huggingface.co/papers/2506.20639",
            "mask token `<|mask|>`",
        ],
    },
    "coupled_peft": {
        "pipeline_tag": "text-generation",
        "library_name": "transformers",
        "tags": {"coupled-grpo"},
        "datasets": ["my-org/hard-code-prompts"],
        "text": ["PeftModel.from_pretrained(base, model_id)", "| `fraction_in_target` | 1 |"],
    },
    "aescoder": {
        "pipeline_tag": "text-generation",
        "library_name": "transformers",
        "tags": {"aescoder", "arxiv:2510.23272"},
        "text": [
            "| `aesthetic_static` | 0.8 |",
            "| `aesthetic_execution` | 0.1 |",
            "| `aesthetic_interactive` | 0.1 |",
            "offline design judge",
            '"text-generation"',
            "max_new_tokens=8",
            "@misc{xiao2025codeaestheticsagenticreward",
            "@software{vonwerra2020trl",
            "The lint gate was off",
            "| epsilon | `0.5` |",
        ],
    },
    "ar_c2i": {
        "pipeline_tag": "unconditional-image-generation",
        "library_name": "trl_ext",
        "tags": {"ar-grpo", "llamagen", "arxiv:2508.06924"},
        "text": [
            "AR-GRPO",
            "| `brightness_reward` | 1 |",
            "| cfg_in_logprobs | `False` |",
            "| cfg_scale (rollout) | `2.0` |",
            'JanusVQVAE.from_pretrained(model_id, subfolder="vq")',
            "class_labels = torch.tensor([0, 1, 2, 3]",
            "@article{yuan2025argrpo",
            "@article{sun2024llamagen",
            "@software{vonwerra2020trl",
            "8x8 image",
            "4x4 grid",
        ],
    },
    "ar_t2i": {
        "pipeline_tag": "text-to-image",
        "library_name": "trl_ext",
        "tags": {"ar-grpo", "text-to-image"},
        "text": [
            'T5EncoderModel.from_pretrained(model_id, subfolder="text_encoder")',
            "max_length=12",
            "model.prepare_captions",
            "| `brightness_reward` | 1 |",
        ],
    },
}


@pytest.mark.parametrize("name", [run_param(n) for n in RUNS])
def test_card_metadata_is_valid_for_the_hub(runs, name):
    text = card_text(runs[name])
    card = validate_model_card(text)  # offline: the Hub's rules (license ids, task ids, model-index)
    expected = EXPECTED[name]
    assert card.data.license in HUB_LICENSES
    assert card.data.pipeline_tag == expected["pipeline_tag"]
    assert card.data.library_name == expected["library_name"]
    assert expected["tags"] <= set(card.data.tags) and "trl" in card.data.tags
    assert card.data.datasets == expected.get("datasets")
    # The base models here are local folders: not claimed as Hub ids, and no "[None]" links.
    assert card.data.base_model is None and "[None]" not in text and "](https://huggingface.co/None" not in text
    assert card.data.license == "other" and ("could not be determined" in text or "pass `license=`" in text)


@pytest.mark.parametrize("name", [run_param(n) for n in RUNS])
def test_card_content(runs, name):
    trainer = runs[name]
    text = card_text(trainer)
    missing = [snippet for snippet in EXPECTED[name]["text"] if snippet not in text]
    assert not missing, missing
    base = trainer.accelerator.unwrap_model(trainer.model)
    base = base.get_base_model() if hasattr(base, "get_base_model") else base
    name = base.config._name_or_path
    assert f"fine-tuned version of `{name}`" in text if name else "a model built in memory" in text
    assert f"for {trainer.state.global_step} optimizer steps" in text and trainer.state.global_step == 2
    reward_logs = [h for h in trainer.state.log_history if "reward" in h]
    assert f"| reward (weighted sum) | {reward_logs[0]['reward']:.4g} |" in text  # the logged number, not a stub


@pytest.fixture(scope="module")
def snippet_results(runs, tmp_path_factory):
    work = tmp_path_factory.mktemp("snippets")
    jobs = {}
    for name, trainer in runs.items():
        snippet = extract_quickstart(card_text(trainer))
        jobs[name] = {
            "code": point_at_folder(snippet, trainer.args.hub_model_id, trainer.args.output_dir),
            "workdir": str(work / name),
        }
    return run_snippets(jobs, work)


@pytest.mark.parametrize("name", [run_param(n) for n in RUNS])
def test_quickstart_runs_against_the_saved_folder(snippet_results, name):
    result = snippet_results[name]
    assert result["ok"], result.get("error")
    if name.startswith("ar_"):
        assert "sample.png" in result["files"]
    else:
        assert result["stdout"].strip(), "the snippet should print the generated text"


def test_eval_report_becomes_a_section_and_model_index(runs, tmp_path):
    if "aescoder" not in runs:
        pytest.skip("needs Chromium")
    trainer = runs["aescoder"]
    report = {
        "prompts": "trl_ext/web_design_prompts",
        "judge": "offline design judge + heuristic GUI agent",
        "overall": {"pages": 36, "static_total": 61.25, "interactive": 0.75, "lint_pass_rate": 0.5,
                    "execution_pass_rate": 0.4, "render_failure_rate": 0.0},
        "by_category": {"website": {"pages": 20, "static_total": 64.5, "interactive": 1.0, "lint_pass_rate": 0.6,
                                    "execution_pass_rate": 0.5, "render_failure_rate": 0.0}},
        "items": [],
    }  # fmt: skip
    card = render_elsewhere(trainer, tmp_path / "rendered", eval_report=report)
    assert "## Evaluation" in card.text and "| **all** | 36 | 61.25 | 0.75 | 0.5 | 0.4 | 0 |" in card.text
    assert "| website | 20 | 64.5 |" in card.text
    metrics = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert metrics == {"static aesthetics (/100)": 61.25, "interactive (/3)": 0.75, "lint pass rate": 0.5}
    assert "model-index" in card.content

    # By default the card picks up <output_dir>/eval/report.json; an existing card can be updated in place.
    readme = tmp_path / "README.md"
    shutil.copy(os.path.join(trainer.args.output_dir, "README.md"), readme)
    assert "Not evaluated when this card was written" in readme.read_text()
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "report.json").write_text(json.dumps(report))
    from trl_ext.model_card import main

    main(["add-eval", str(tmp_path)])
    updated = readme.read_text()
    assert updated.count("## Evaluation") == 1 and updated.index("## Evaluation") < updated.index("## Training")
    assert "Not evaluated" not in updated and "| **all** | 36 | 61.25 |" in updated
    report["overall"]["static_total"] = 70.0
    add_eval_report_to_card(str(readme), report)  # replaces the section, does not add a second one
    again = validate_model_card(readme.read_text())
    assert again.text.count("## Evaluation") == 1 and "| **all** | 36 | 70 |" in again.text
    assert {r.metric_value for r in again.data.eval_results} >= {70.0}


def test_license_and_base_model_from_the_hub_id(runs, tmp_path):
    trainer = runs["coupled"]
    config = trainer.accelerator.unwrap_model(trainer.model).config
    original = config._name_or_path
    try:
        config._name_or_path = "Qwen/Qwen2.5-Coder-7B-Instruct"
        card = render_elsewhere(trainer, tmp_path / "known")
        assert card.data.base_model == "Qwen/Qwen2.5-Coder-7B-Instruct" and card.data.license == "apache-2.0"
        assert "[Qwen/Qwen2.5-Coder-7B-Instruct](https://huggingface.co/Qwen/Qwen2.5-Coder-7B-Instruct)" in card.text
        assert "inherited from the base model" in card.text
        # Offline, an unknown Hub model's license cannot be read: "other", said so in the card.
        config._name_or_path = "some-org/some-model"
        card = render_elsewhere(trainer, tmp_path / "unknown")
        assert card.data.license == "other" and "could not be determined" in card.text
        assert render_elsewhere(trainer, tmp_path / "explicit", license="mit").data.license == "mit"
        # A Dream/DiffuCoder config that still names its remote code loads natively: no `trust_remote_code`.
        config.auto_map = {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"}
        snippet = extract_quickstart(render_elsewhere(trainer, tmp_path / "native").text)
        assert 'AutoModelForCausalLM.from_pretrained(model_id, dtype="auto")' in snippet
        assert "trust_remote_code" not in snippet
        # A remote-code checkpoint of a family without a native class that registers only `AutoModel` is loaded
        # with it, remote code and all.
        config.model_type = "some_remote_dlm"
        snippet = extract_quickstart(render_elsewhere(trainer, tmp_path / "remote").text)
        assert 'AutoModel.from_pretrained(model_id, dtype="auto", trust_remote_code=True)' in snippet
        assert 'load_diffusion_tokenizer(model_id, padding_side="left", trust_remote_code=True)' in snippet
        with pytest.raises(ValueError, match="license"):
            render_elsewhere(trainer, tmp_path / "bad", license="MIT License")
        with pytest.raises(ValueError, match="pipeline_tag"):
            render_model_card(trainer, "coupled_grpo.md", pipeline_tag="code-generation")
        with pytest.raises(FileNotFoundError, match="no_such_template.md"):
            render_model_card(trainer, "no_such_template.md")
    finally:
        config._name_or_path = original
        config.auto_map = {}
        vars(config).pop("model_type", None)


def test_sft_trainers_use_the_same_machinery(tmp_path):
    """A trainer without rewards (TRL's SFTTrainer) renders a valid card: no reward table, loss-based results."""
    from trl import SFTConfig, SFTTrainer

    class PaperSFTTrainer(SFTTrainer):
        _tag_names = ["trl", "trl_ext", "sft"]
        _paper = {"title": "Code Aesthetics with Agentic Reward Feedback", "id": "2510.23272", "citation": "@x{y}"}

    tokenizer = make_tokenizer(with_mask_token=False)
    base = save_tiny_model(make_tiny_causal_lm(tokenizer), tokenizer, tmp_path / "base")
    args = SFTConfig(
        output_dir=str(tmp_path / "out"), max_steps=1, logging_steps=1, per_device_train_batch_size=2, max_length=32, bf16=False,
        use_cpu=True, report_to="none", save_strategy="no", disable_tqdm=True, hub_model_id="my-org/sft-tiny",
    )  # fmt: skip
    dataset = Dataset.from_dict(
        {"messages": [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]] * 4}
    )
    trainer = PaperSFTTrainer(base, args=args, train_dataset=dataset, processing_class=tokenizer)
    trainer.train()
    card = validate_model_card(
        render_model_card(trainer, "aescoder_grpo.md", tags="sft", judge="none", lint_gate=False, max_new_tokens=16)
    )
    assert card.data.tags[:3] == ["trl", "trl_ext", "sft"] and "arxiv:2510.23272" in card.data.tags
    assert "| reward | weight |\n|---|---|\n\n" in card.text  # no rewards: an empty table, not a crash
    loss = next(h["loss"] for h in trainer.state.log_history if "loss" in h)
    assert f"| loss | {loss:.4g} |" in card.text  # without rewards, the results are the logged loss
    assert "| per_device_train_batch_size | `2` |" in card.text and "@x{y}" in card.text


def test_metadata_validation_rejects_what_the_hub_rejects():
    good = "---\nlicense: apache-2.0\npipeline_tag: text-to-image\nlibrary_name: trl_ext\ntags: [a]\n---\n# x\n"
    assert metadata_errors(good) == [] and validate_model_card(good).data.license == "apache-2.0"
    assert any("license" in e for e in metadata_errors(good.replace("apache-2.0", "Apache 2.0")))
    assert any("pipeline_tag" in e for e in metadata_errors(good.replace("text-to-image", "image-generation")))
    assert any("base_model" in e for e in metadata_errors(good.replace("tags:", "base_model: /abs/path\ntags:")))
    assert any("YAML" in e for e in metadata_errors("---\nlicense: [mit\n---\n"))
    bad_index = good.replace("tags: [a]", "tags: [a]\nmodel-index:\n- results: []")
    assert any("model-index" in e for e in metadata_errors(bad_index))
    with pytest.raises(ValueError, match='"license" is missing'):
        validate_model_card(good.replace("license: apache-2.0\n", ""))
    with pytest.raises(ValueError, match="license ids"):
        validate_model_card(good.replace("apache-2.0", "apache2"))


def _load_recipe(name: str):
    spec = importlib.util.spec_from_file_location(f"recipe_{name}", os.path.join(ROOT, "recipes", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_config_reproduces_the_parsed_arguments(tmp_path):
    recipe = _load_recipe("coupled_grpo")
    parser = TrlParser((recipe.CoupledGRPOScriptArguments, CoupledGRPOConfig, ModelConfig))
    argv = [
        "--config", os.path.join(ROOT, "recipes/configs/coupled_grpo_tiny.yaml"), "--output_dir", str(tmp_path),
        "--max_steps", "2", "--learning_rate=5e-4", "--hub_model_id", "me/tiny", "--hub_token", "hf_secret",
    ]  # fmt: skip
    parsed = parser.parse_args_and_config(argv)
    path = save_training_config(str(tmp_path), *parsed, argv=argv, recipe="recipes/coupled_grpo.py")
    assert os.path.basename(path) == TRAINING_CONFIG_NAME
    text = open(path).read()
    assert "hf_secret" not in text and "hub_token" not in text
    assert text.startswith("# ") and "accelerate launch recipes/coupled_grpo.py --config training_config.yaml" in text
    saved = yaml.safe_load(text)
    # YAML keys and command-line overrides, with the values the run used; nothing the user did not set.
    assert saved["max_steps"] == 2 and saved["learning_rate"] == 5e-4 and saved["hub_model_id"] == "me/tiny"
    assert saved["reward_weights"] == [2.0, 0.5, 1.0] and saved["model_name_or_path"] == "tiny-random:dream"
    assert "num_iterations" not in saved and "beta" not in saved
    reparsed = parser.parse_args_and_config(["--config", path])
    for config, again in zip(parsed, reparsed):
        for key in saved:
            if hasattr(config, key):
                assert getattr(again, key) == getattr(config, key), key
    assert training_config_dict(*parsed, argv=argv) == saved


def test_cards_load_as_model_cards(runs):
    for trainer in runs.values():
        card = ModelCard.load(os.path.join(trainer.args.output_dir, "README.md"))
        assert card.data.model_name == os.path.basename(trainer.args.output_dir)


def test_extract_quickstart_ignores_fences_inside_the_snippet():
    card = (
        "# m\n\n## Quick start\n\n```python\nmodel_id = \"org/m\"\n"
        "system = \"Answer in one ```html block.\"\nprint(model_id, system)\n```\n\nAfter.\n```python\nother()\n```\n"
    )
    snippet = extract_quickstart(card)
    assert snippet == "model_id = \"org/m\"\nsystem = \"Answer in one ```html block.\"\nprint(model_id, system)\n"


def test_local_card_quickstart_runs_from_anywhere_and_says_how_to_install(tmp_path):
    """Without a Hub id the card names the folder by its absolute path: the quickstart runs, unedited, from another
    working directory. The install line points at GitHub (not PyPI) and at the checkout that trained the model."""
    trainer = _coupled(tmp_path / "run", peft=False, hub_model_id=None)
    text = card_text(trainer)
    snippet = extract_quickstart(text)
    folder = os.path.abspath(trainer.args.output_dir)
    assert f"model_id = {json.dumps(folder)}" in snippet
    result = run_snippets({"local": {"code": snippet, "workdir": str(tmp_path / "elsewhere")}}, tmp_path)["local"]
    assert result["ok"], result.get("error")
    assert result["stdout"].strip()
    assert install_command() in text and "pip install trl_ext`" not in text
    assert install_command(local=True) == f'pip install "{ROOT}"' and install_command(local=True) in text


def test_install_commands_work(tmp_path):
    """The local install line is a valid pip requirement for this checkout (pip resolves and builds it, offline);
    the GitHub one is a valid PEP 508 direct reference with the extras."""
    from packaging.requirements import Requirement

    requirement = Requirement(install_command(["web", "image"]).split('"')[1])
    assert requirement.name == "trl_ext" and requirement.extras == {"web", "image"}
    assert requirement.url == "git+https://github.com/trl-ext/trl_ext"
    local = install_command(local=True).split('"')[1]
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index", "--no-build-isolation",
         "--report", str(tmp_path / "report.json"), local],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert [item["metadata"]["name"] for item in report["install"]] == ["trl_ext"]
