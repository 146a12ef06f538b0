# /// script
# dependencies = [
#     "trl_ext[web]",
# ]
# ///
"""
Evaluate web-page generation the way AesCoder's OpenDesign benchmark does: lint each page, render it in Chromium,
score the screenshot with the static aesthetics judge (/100) and let the GUI agent try it (/3), then write a JSON
report with per-page results and per-category means.

Score a folder of HTML files (`<prompt id>.html`, e.g. `webdesign-000.html`) against the bundled prompts:

```bash
python recipes/aescoder_eval.py --html_dir pages/ --output_dir outputs/eval
```

Generate the pages with a model first (greedy, chat template), then score them; with a VLM judge:

```bash
python recipes/aescoder_eval.py --model_name_or_path outputs/aescoder-grpo-4b --output_dir outputs/eval \
    --judge_base_url http://localhost:8000/v1 --judge_model Qwen/Qwen2.5-VL-72B-Instruct
```

`--prompts` takes `trl_ext/web_design_prompts` (default) or a `.jsonl` file with `id`, `instruction` and optionally
`category` per line (OpenDesign's prompts, if you have them).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field

from trl import TrlParser

from trl_ext.rewards.agentic import AgenticAestheticReward

BUNDLED_PROMPTS = "trl_ext/web_design_prompts"


@dataclass
class EvalArguments:
    output_dir: str = field(default="outputs/aescoder-eval", metadata={"help": "Where the report and pages go."})
    prompts: str = field(default=BUNDLED_PROMPTS, metadata={"help": "Prompt set: bundled name or a .jsonl file."})
    html_dir: str | None = field(default=None, metadata={"help": "Folder of <id>.html pages to score."})
    model_name_or_path: str | None = field(default=None, metadata={"help": "Model that writes the pages."})
    max_new_tokens: int = field(default=4096, metadata={"help": "Generation length with --model_name_or_path."})
    batch_size: int = field(default=4, metadata={"help": "Generation batch size."})
    limit: int | None = field(default=None, metadata={"help": "Evaluate only the first N prompts."})
    judge_base_url: str | None = field(default=None, metadata={"help": "OpenAI-compatible VLM judge endpoint."})
    judge_model: str | None = field(default=None, metadata={"help": "Model name of the judge endpoint."})
    judge_api_key_env: str = field(default="OPENAI_API_KEY", metadata={"help": "Env var with the judge API key."})
    browser_pool_size: int = field(default=4, metadata={"help": "Pages rendered at once."})
    page_timeout: float = field(default=30.0, metadata={"help": "Hard seconds per page render."})
    agent_time_budget: float = field(default=120.0, metadata={"help": "Hard seconds of the GUI agent per page."})
    serve_cdn_libraries: bool = field(default=True, metadata={"help": "Serve local copies of CDN libraries."})

    def __post_init__(self):
        if (self.html_dir is None) == (self.model_name_or_path is None):
            raise ValueError(
                "Give exactly one of `html_dir` (pages to score) and `model_name_or_path` (to write them)."
            )
        if self.html_dir is not None and not os.path.isdir(self.html_dir):
            raise ValueError(f"`html_dir` {self.html_dir!r} is not a folder.")
        if self.judge_base_url is not None and not self.judge_model:
            raise ValueError("`judge_model` is required with `judge_base_url`.")


def load_prompts(source: str) -> list[dict]:
    if source == BUNDLED_PROMPTS:
        from trl_ext.data import load_web_design_prompts

        return [dict(row) for row in load_web_design_prompts()]
    if not source.endswith(".jsonl") or not os.path.isfile(source):
        raise ValueError(f"`prompts` must be {BUNDLED_PROMPTS!r} or an existing .jsonl file, got {source!r}.")
    rows = []
    with open(source, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                row = json.loads(line)
                if "id" not in row or "instruction" not in row:
                    raise ValueError(f"{source}:{number}: each line needs `id` and `instruction` fields.")
                row.setdefault("category", "uncategorised")
                row.setdefault("prompt", [{"role": "user", "content": row["instruction"]}])
                rows.append(row)
    return rows


def generate_pages(args: EvalArguments, prompts: list[dict]) -> list[str]:
    """Greedy generation with the model's chat template (left-padded batches)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(args.model_name_or_path, dtype="auto").to(device).eval()
    pages = []
    for start in range(0, len(prompts), args.batch_size):
        batch = [row["prompt"] for row in prompts[start : start + args.batch_size]]
        inputs = tokenizer.apply_chat_template(
            batch, add_generation_prompt=True, return_tensors="pt", return_dict=True, padding=True
        ).to(device)
        with torch.no_grad():
            output = model.generate(**inputs, max_new_tokens=args.max_new_tokens, do_sample=False)
        completions = output[:, inputs["input_ids"].shape[1] :]
        pages += tokenizer.batch_decode(completions, skip_special_tokens=True)
    return pages


def read_pages(html_dir: str, prompts: list[dict]) -> list[str]:
    missing = [row["id"] for row in prompts if not os.path.isfile(os.path.join(html_dir, f"{row['id']}.html"))]
    if missing:
        raise FileNotFoundError(f"{len(missing)} pages missing from {html_dir}: expected files like {missing[0]}.html")
    return [open(os.path.join(html_dir, f"{row['id']}.html"), encoding="utf-8").read() for row in prompts]


def build_reward(args: EvalArguments) -> AgenticAestheticReward:
    return AgenticAestheticReward.from_settings(
        judge_base_url=args.judge_base_url,
        judge_model=args.judge_model,
        client_kwargs={"api_key_env": args.judge_api_key_env},
        serve_cdn_libraries=args.serve_cdn_libraries,
        # No lint gate: OpenDesign scores every page that renders; the lint result is reported on its own.
        lint_gate=False,
        pool_size=args.browser_pool_size,
        page_timeout=args.page_timeout,
        agent_time_budget=args.agent_time_budget,
    )


def summarise(items: list[dict]) -> dict:
    def mean(values):
        values = [v for v in values if v is not None]
        return round(statistics.fmean(values), 3) if values else None

    return {
        "pages": len(items),
        "static_total": mean(i["static_total"] for i in items),
        "interactive": mean(i["interactive"] for i in items),
        "lint_pass_rate": mean(float(i["lint_passed"]) for i in items),
        "execution_pass_rate": mean(None if i["execution"] is None else float(i["execution"] > 0) for i in items),
        "render_failure_rate": mean(float(i["render_error"] is not None) for i in items),
        "judge_failures": sum("judge_failed" in i["failures"] for i in items),
    }


def main(args: EvalArguments) -> dict:
    prompts = load_prompts(args.prompts)[: args.limit]
    start = time.monotonic()
    pages = generate_pages(args, prompts) if args.model_name_or_path else read_pages(args.html_dir, prompts)
    generation_seconds = time.monotonic() - start
    os.makedirs(os.path.join(args.output_dir, "pages"), exist_ok=True)
    os.makedirs(os.path.join(args.output_dir, "screenshots"), exist_ok=True)

    reward = build_reward(args)
    start = time.monotonic()
    try:
        evaluations = reward.evaluate([row["prompt"] for row in prompts], pages)
    finally:
        reward.close()
    scoring_seconds = time.monotonic() - start

    items = []
    for row, evaluation in zip(prompts, evaluations):
        with open(os.path.join(args.output_dir, "pages", f"{row['id']}.html"), "w", encoding="utf-8") as f:
            f.write(evaluation.html)
        render = evaluation.render
        if render is not None and render.screenshot:
            with open(os.path.join(args.output_dir, "screenshots", f"{row['id']}.png"), "wb") as f:
                f.write(render.screenshot)
        score = evaluation.page_score
        report = evaluation.interaction
        items.append(
            {
                "id": row["id"],
                "category": row.get("category", "uncategorised"),
                "lint_passed": evaluation.lint.passed,
                "lint": [f"{m.rule} (line {m.line})" for m in evaluation.lint.messages[:20]],
                "execution": evaluation.execution,
                "static_total": None if score is None else round(score.total, 2),
                "static": None
                if score is None
                else {k: getattr(score, k) for k in ("alignment", "aesthetics", "structure")},
                "rationale": None if score is None else score.rationale,
                "interactive": None if report is None or report.judge_failed else report.score,
                "render_error": None if render is None else render.error,
                "console_errors": [] if render is None else render.console_errors[:10],
                "failures": list(evaluation.failures),
            }
        )
    by_category = defaultdict(list)
    for item in items:
        by_category[item["category"]].append(item)
    result = {
        "prompts": args.prompts,
        "source": args.model_name_or_path or args.html_dir,
        "judge": args.judge_model or "offline design judge + heuristic GUI agent",
        "seconds": {"generation": round(generation_seconds, 1), "scoring": round(scoring_seconds, 1)},
        "overall": summarise(items),
        "by_category": {name: summarise(group) for name, group in sorted(by_category.items())},
        "items": items,
    }
    path = os.path.join(args.output_dir, "report.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    overall = result["overall"]
    print(f"{overall['pages']} pages: static {overall['static_total']}/100, interactive {overall['interactive']}/3, "
          f"lint pass {overall['lint_pass_rate']}, report: {path}")  # fmt: skip
    return result


if __name__ == "__main__":
    (eval_args,) = TrlParser((EvalArguments,)).parse_args_and_config()
    main(eval_args)
