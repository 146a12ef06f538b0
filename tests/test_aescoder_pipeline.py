"""
The whole AesCoder pipeline offline, as a user runs it: `recipes/aescoder_sft.py` (tiny config, bundled AesCode rows)
under `accelerate launch`, then `recipes/aescoder_grpo.py` (tiny config, real Chromium) from the SFT output folder.
"""

import math
import os
import re
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from trl_ext.data import load_web_design_prompts
from trl_ext.data.aescode import PLOT_SYSTEM_PROMPT
from trl_ext.model_card import TRAINING_CONFIG_NAME, extract_quickstart, validate_model_card
from trl_ext.web import chromium_available

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Plot requests the SFT data does not contain.
PLOT_REQUESTS = [
    "Plot the daily number of visitors to a museum over two weeks as a line chart.",
    "Draw a bar chart comparing the average rent in six neighbourhoods.",
    "Show the distribution of commute times as a histogram with 20 bins.",
    "Make a scatter plot of engine size against fuel consumption with a trend line.",
    "Create a pie chart of the share of each browser among visitors.",
    "Plot two noisy sine waves with different frequencies on the same axes.",
]


def launch(recipe: str, config: str, output_dir, *overrides: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1",
        os.path.join(REPO, "recipes", recipe), "--config", os.path.join(REPO, "recipes", "configs", config),
        "--output_dir", str(output_dir), "--report_to", "none", *overrides,
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def sft(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("pipeline") / "sft"
    run = launch("aescoder_sft.py", "aescoder_sft_tiny.yaml", output_dir)
    return output_dir, run.stdout


def prefix_logprobs(model, tokenizer, prompts, prefix: str) -> torch.Tensor:
    """Mean log-probability per token of `prefix` as the start of the answer, one value per prompt."""
    n = len(tokenizer(prefix).input_ids)
    scores = []
    for messages in prompts:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = tokenizer(text + prefix, return_tensors="pt").input_ids
        with torch.no_grad():
            logits = model(ids).logits[0, -n - 1 : -1].float()
        scores.append(torch.log_softmax(logits, -1).gather(-1, ids[0, -n:, None]).mean())
    return torch.stack(scores)


def greedy_answers(model, tokenizer, prompts, max_new_tokens: int = 24) -> list[str]:
    batch = tokenizer.apply_chat_template(
        prompts, add_generation_prompt=True, return_tensors="pt", padding=True, return_dict=True
    )
    out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)


def test_sft_output_loads_and_has_its_card(sft):
    output_dir, stdout = sft
    model = AutoModelForCausalLM.from_pretrained(output_dir)
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    assert model.config.vocab_size == len(tokenizer) and tokenizer.chat_template

    first, last = map(float, re.search(r"Training loss: ([\d.]+) -> ([\d.]+) over 120 steps", stdout).groups())
    assert last < first / 4, (first, last)  # measured: 4.91 -> 0.80

    text = (output_dir / "README.md").read_text()
    card = validate_model_card(text)
    assert {"sft", "aescoder", "trl_ext", "arxiv:2510.23272"} <= set(card.data.tags)
    assert f"fine-tuned version of `{output_dir / '_tiny_base_model'}`" in text
    assert "supervised fine-tuning, the first stage of AesCoder" in text
    assert "`trl_ext/aescode_sample` (not on the Hub" in text and ", 40 rows" in text
    assert "Trained with `AesCoderSFTTrainer` (TRL's `SFTTrainer`) for 120 optimizer steps on 1 x CPU" in text
    assert f"Training loss: {first:.4g} at the first logging step, {last:.4g} at the last" in text
    for row in [
        "| plot | 16 |",
        "| website | 8 |",
        "| game | 4 |",
        "| loss on | `completions` |",
        "| max_length | `512` |",
    ]:
        assert row in text, row
    assert "Yupan Huang and Xun Wu" in text and "vonwerra2020trl" in text
    config = yaml.safe_load((output_dir / TRAINING_CONFIG_NAME).read_text())
    assert config["dataset_name"] == "trl_ext/aescode_sample" and config["conversation_format"] == "prompt_completion"


def test_sft_taught_the_model_the_answer_format(sft):
    """Before SFT the model is uniform over its 259 tokens; after, it opens answers with the right fenced block."""
    output_dir, _ = sft
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    base = AutoModelForCausalLM.from_pretrained(output_dir / "_tiny_base_model").eval()
    tuned = AutoModelForCausalLM.from_pretrained(output_dir).eval()
    web = [row["prompt"] for row in load_web_design_prompts()]  # the GRPO prompts: not in the SFT data
    plots = [
        [{"role": "system", "content": PLOT_SYSTEM_PROMPT}, {"role": "user", "content": q}] for q in PLOT_REQUESTS
    ]

    doctype = "```html\n<!DOCTYPE html>"
    uniform = -math.log(len(tokenizer))
    assert abs(prefix_logprobs(base, tokenizer, web, doctype).mean() - uniform) < 0.3
    assert prefix_logprobs(tuned, tokenizer, web, doctype).mean() > -1.0  # measured: -5.53 -> -0.10

    # The fence follows the request: html for pages, python for plots, for every single prompt.
    html, python = (prefix_logprobs(tuned, tokenizer, web, f"```{lang}\n") for lang in ("html", "python"))
    assert (html > python).all() and (html - python).mean() > 1.0  # measured: 1.95 nats
    html, python = (prefix_logprobs(tuned, tokenizer, plots, f"```{lang}\n") for lang in ("html", "python"))
    assert (python > html).all() and (python - html).mean() > 1.0  # measured: 1.38 nats

    before, after = greedy_answers(base, tokenizer, web), greedy_answers(tuned, tokenizer, web)
    assert not any(answer.startswith("```") for answer in before)
    assert sum(answer.startswith("```html") for answer in after) >= 0.75 * len(web)  # measured: 35 of 36
    assert sum(answer.startswith(doctype) for answer in after) >= len(web) // 4  # measured: 19 of 36
    assert sum(answer.startswith("```py") for answer in greedy_answers(tuned, tokenizer, plots)) >= 4  # 6 of 6


def test_card_quickstart_runs_against_the_folder(sft, capsys):
    output_dir, _ = sft
    snippet = extract_quickstart((output_dir / "README.md").read_text())
    # No Hub id: the card names the folder by its absolute path, so the snippet runs as written from anywhere.
    assert f'model_id = "{os.path.abspath(output_dir)}"' in snippet and "You are an expert front-end engineer" in snippet
    exec(snippet, {})
    assert capsys.readouterr().out.startswith("```html")


@pytest.mark.browser
@pytest.mark.skipif(not chromium_available(), reason="needs Chromium: `apt-get install chromium` (make installs it)")
def test_grpo_stage_starts_from_the_sft_weights(sft, tmp_path):
    sft_dir, _ = sft
    grpo_dir = tmp_path / "grpo"
    run = launch(
        "aescoder_grpo.py",
        "aescoder_grpo_tiny.yaml",
        grpo_dir,
        "--model_name_or_path",
        str(sft_dir),
        "--max_steps",
        "2",
    )
    assert "screenshots" in run.stdout

    text = (grpo_dir / "README.md").read_text()
    validate_model_card(text)
    assert f"fine-tuned version of `{sft_dir}`" in text and "for 2 optimizer steps" in text
    config = yaml.safe_load((grpo_dir / TRAINING_CONFIG_NAME).read_text())
    assert config["model_name_or_path"] == str(sft_dir)
    assert AutoModelForCausalLM.from_pretrained(grpo_dir).config.vocab_size == len(
        AutoTokenizer.from_pretrained(sft_dir)
    )

    # GRPO moved the SFT weights a little; they are far from the random base the SFT started from.
    weights = {
        name: load_file(folder / "model.safetensors")
        for name, folder in [("base", sft_dir / "_tiny_base_model"), ("sft", sft_dir), ("grpo", grpo_dir)]
    }

    def distance(a: str, b: str) -> float:
        return math.sqrt(sum((weights[a][k].float() - weights[b][k].float()).pow(2).sum() for k in weights[a]))

    assert weights["grpo"].keys() == weights["sft"].keys()
    assert 0 < distance("grpo", "sft") < 0.2 * distance("grpo", "base")


def test_trainer_with_lora_on_any_conversational_dataset(tmp_path):
    """In process: LoRA trains every adapter weight, and the card shows the adapter and loads it in the quickstart."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig

    from trl_ext.testing import make_tiny_causal_lm, make_tokenizer
    from trl_ext.trainers import AesCoderSFTTrainer

    tokenizer = make_tokenizer(with_mask_token=False)
    # A plain conversational dataset (no `kind` / `category` columns): the card simply has no data-mix table.
    dataset = Dataset.from_dict(
        {
            "messages": [
                [{"role": "user", "content": "page?"}, {"role": "assistant", "content": "```html\n<p>x</p>\n```"}]
            ]
            * 8
        }
    )
    args = SFTConfig(
        str(tmp_path / "lora"), max_steps=2, learning_rate=0.1, per_device_train_batch_size=4, max_length=64,
        use_cpu=True, bf16=False, report_to="none", save_strategy="no", logging_steps=1, activation_checkpointing=False,
    )  # fmt: skip
    trainer = AesCoderSFTTrainer(
        make_tiny_causal_lm(tokenizer, hidden_size=64),
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert before and all("lora_" in name for name in before)
    trainer.train()
    for name, param in trainer.model.named_parameters():
        if name in before:
            assert not torch.equal(param, before[name]), f"{name} did not change"
    trainer.save_model()
    trainer.create_model_card()
    text = (tmp_path / "lora" / "README.md").read_text()
    validate_model_card(text)
    assert "| peft | `LORA r=4 alpha=8` |" in text and "| loss on | `whole conversation` |" in text
    assert "AutoPeftModelForCausalLM" in extract_quickstart(text) and "Training data by category" not in text
    assert "a model built in memory" in text  # no base checkpoint to link
