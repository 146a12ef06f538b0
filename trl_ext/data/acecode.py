"""
DiffuCoder's hard code-RL prompt set, built from AceCode-87K (`TIGER-Lab/AceCode-87K`).

Each AceCode problem comes with sampled solutions (`inferences`) and the fraction of the problem's tests each passes
(`pass_rate`). DiffuCoder keeps the problems the reference models find *hard* (a low mean pass rate) and *uneven* (a
high spread of pass rates, so that GRPO groups see both successes and failures):

- paper (arXiv 2506.20639, appendix B.1): "a low average (bottom 20%) and high variance (top 40%) pass rate", about
  21K problems. Preset `"paper"`: mean <= 20th percentile of the means, std >= 60th percentile of the stds.
- released code (apple/ml-diffucoder `recipes/process_data.py`, `--difficulty hard`): mean <= 20th percentile, then
  std >= **40th** percentile (the top 60%, although its comment says "top 50%"). Preset `"code"`.

Both take the pass rates of two reference models only (`qwen_coder_2.5` and `llama3_instruct`), population std
(`numpy.std`), `numpy.percentile`'s linear interpolation, and both percentiles over *all* problems (the code computes
the std percentile before the mean filter; `std_percentile_over="low_mean"` computes it over the low-mean problems
instead). Std and variance rank problems identically, so "variance" in the paper and "std" in the code keep the same
rows for the same percentile. Problems without any pass rate from the reference models are left out of the
percentiles (in the released code one such problem makes every percentile NaN and empties the set), and hard problems
without tests are dropped at the end (the code's prompt builder would fail on them).

The code then adds, for every kept problem whose question does not contain "you" and whose best solution starts with a
`def` line, a second copy of the problem asking to complete that function ("Please complete the following
problem: ..." with the question as its docstring), and formats prompts like its `grpo.py`: the system prompt "You are
a helpful assistant." and the question, followed by `"\\nTest cases: "` + the first test unless the question already
contains a fenced block. Both are reproduced exactly (`augment=True`, `append_first_test=True`).

```bash
python -m trl_ext.data.acecode --output_dir data/acecode-hard                      # the paper's thresholds
python -m trl_ext.data.acecode --output_dir data/acecode-hard-code --preset code   # the released code's
python -m trl_ext.data.acecode --output_dir data/acecode-hard --push_to_hub --hub_dataset_id ORG/acecode-hard
```

The output has `prompt` (chat messages) and `test_cases` (standalone asserts), the columns
[`~trl_ext.rewards.code_pass_rate_reward`] and `recipes/coupled_grpo.py` use, plus provenance columns.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._builder import (
    HubDatasetBuilder,
    SchemaError,
    SourceArguments,
    check_percentage,
    check_positive,
    iter_source_rows,
)

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)

ACECODE_HUB_ID = "TIGER-Lab/AceCode-87K"
ACECODE_COLUMNS = ("id", "source", "question", "test_cases", "inferences")
ACECODE_SCHEMA = """\
  id: string
  source: string
  question: string
  test_cases: list[string]   (standalone assert statements)
  inferences: list[{completion: string, completion_id: int64, model_name: string, pass_rate: float64}]
  context_messages: list[{content: string, role: string}]   (not used)"""
# The models whose pass rates DiffuCoder's `process_data.py` averages (AceCode also has other models' samples).
REFERENCE_MODELS = ("qwen_coder_2.5", "llama3_instruct")
DIFFUCODER_SYSTEM_PROMPT = "You are a helpful assistant."
HARDNESS_PRESETS = {
    # Appendix B.1: "low average (bottom 20%) and high variance (top 40%) pass rate".
    "paper": {"mean_percentile": 20.0, "std_percentile": 60.0},
    # recipes/process_data.py: `np.percentile(avg_accs, 20)`, then `np.std(accs) >= np.percentile(std_accs, 40)`.
    "code": {"mean_percentile": 20.0, "std_percentile": 40.0},
}
STD_PERCENTILE_POPULATIONS = ("all", "low_mean")

CITATIONS = [
    """@article{gong2025diffucoder,
  title   = {{DiffuCoder: Understanding and Improving Masked Diffusion Models for Code Generation}},
  author  = {Shansan Gong and Ruixiang Zhang and Huangjie Zheng and Jiatao Gu and Navdeep Jaitly and Lingpeng Kong and Yizhe Zhang},
  journal = {arXiv preprint arXiv:2506.20639},
  year    = {2025}
}""",
    """@article{zeng2025acecoder,
  title   = {{AceCoder: Acing Coder RL via Automated Test-Case Synthesis}},
  author  = {Huaye Zeng and Dongfu Jiang and Haozhe Wang and Ping Nie and Xiaotong Chen and Wenhu Chen},
  journal = {arXiv preprint arXiv:2502.01718},
  year    = {2025}
}""",
]


@dataclass
class AceCodeHardArguments(SourceArguments):
    """
    Parameters of [`AceCodeHardBuilder`].

    Args:
        source (`str`, *optional*, defaults to `"TIGER-Lab/AceCode-87K"`):
            Hub id or local copy (parquet/jsonl/`save_to_disk`) with AceCode's columns.
        preset (`str`, *optional*, defaults to `"paper"`):
            Hardness thresholds: `"paper"` (mean <= P20, std >= P60: bottom 20% mean, top 40% variance) or `"code"`
            (mean <= P20, std >= P40: DiffuCoder's released `process_data.py`).
        mean_percentile (`float`, *optional*):
            Keep problems whose mean pass rate is <= this percentile of all means; overrides the preset.
        std_percentile (`float`, *optional*):
            Keep problems whose pass-rate std is >= this percentile of the stds; overrides the preset.
        std_percentile_over (`str`, *optional*, defaults to `"all"`):
            Population of the std percentile: `"all"` problems (DiffuCoder's code) or the `"low_mean"` ones.
        reference_models (`list[str]`, *optional*, defaults to `["qwen_coder_2.5", "llama3_instruct"]`):
            `model_name`s whose pass rates are averaged; empty for all models.
        augment (`bool`, *optional*, defaults to `True`):
            Add DiffuCoder's "Please complete the following problem" copy of eligible problems.
        append_first_test (`bool`, *optional*, defaults to `True`):
            Append `"\\nTest cases: "` + the first test to questions without a fenced block (DiffuCoder's `grpo.py`).
        system_prompt (`str`, *optional*, defaults to `"You are a helpful assistant."`):
            System message of each prompt; an empty string for none.
        max_source_rows (`int`, *optional*):
            Read only the first rows of the source (quick trials; the percentiles are then over those rows).
    """

    source: str = field(default=ACECODE_HUB_ID, metadata={"help": "Hub id or local copy of AceCode-87K."})
    preset: str = field(
        default="paper",
        metadata={"help": "Hardness thresholds: 'paper' (mean<=P20, std>=P60) or 'code' (mean<=P20, std>=P40)."},
    )
    mean_percentile: float | None = field(
        default=None, metadata={"help": "Keep mean pass rate <= this percentile (overrides the preset)."}
    )
    std_percentile: float | None = field(
        default=None, metadata={"help": "Keep pass-rate std >= this percentile (overrides the preset)."}
    )
    std_percentile_over: str = field(
        default="all", metadata={"help": "Population of the std percentile: 'all' (DiffuCoder) or 'low_mean'."}
    )
    reference_models: list[str] = field(
        default_factory=lambda: list(REFERENCE_MODELS),
        metadata={"help": "model_name values whose pass rates count; empty for all."},
    )
    augment: bool = field(default=True, metadata={"help": "Add the 'Please complete the following problem' copies."})
    append_first_test: bool = field(
        default=True, metadata={"help": "Append '\\nTest cases: ' + the first test (DiffuCoder's prompt format)."}
    )
    system_prompt: str = field(default=DIFFUCODER_SYSTEM_PROMPT, metadata={"help": "System message ('' for none)."})
    max_source_rows: int | None = field(default=None, metadata={"help": "Read only this many source rows."})

    def __post_init__(self):
        if self.preset not in HARDNESS_PRESETS:
            raise ValueError(f"Unknown `preset` {self.preset!r}; choose from {sorted(HARDNESS_PRESETS)}.")
        check_percentage("mean_percentile", self.mean_percentile, allow_none=True)
        check_percentage("std_percentile", self.std_percentile, allow_none=True)
        if self.std_percentile_over not in STD_PERCENTILE_POPULATIONS:
            raise ValueError(
                f"`std_percentile_over` must be one of {list(STD_PERCENTILE_POPULATIONS)}, got "
                f"{self.std_percentile_over!r}."
            )
        check_positive("max_source_rows", self.max_source_rows)
        self.reference_models = list(self.reference_models or [])

    @property
    def thresholds(self) -> tuple[float, float]:
        """The effective (mean percentile, std percentile): the preset's unless overridden."""
        preset = HARDNESS_PRESETS[self.preset]
        mean = self.mean_percentile if self.mean_percentile is not None else preset["mean_percentile"]
        std = self.std_percentile if self.std_percentile is not None else preset["std_percentile"]
        return float(mean), float(std)


def diffucoder_augmented_question(question: str, best_completion: str) -> str | None:
    """
    DiffuCoder's function-completion rewrite of an AceCode question, or `None` when it does not apply.

    It applies when the question does not contain "you" (any case) and the first line of the best solution (the text
    before its first `":\\n"`, stripped) is a `def` line. The rewrite puts the question in that function's docstring:

    ````text
    Please complete the following problem:
    ```
    def <signature>:
        \"\"\"
        <question>
        \"\"\"
    ```
    ````
    """
    if "you" in question.lower():
        return None
    signature = best_completion.split(":\n")[0].strip()
    if not signature.startswith("def "):
        return None
    signature = signature[len("def ") :]
    return f'Please complete the following problem:\n```\ndef {signature}:\n    """\n    {question}\n    """\n```\n'


def diffucoder_user_message(question: str, test_cases: list[str], append_first_test: bool = True) -> str:
    """DiffuCoder's user turn: the question, plus `"\\nTest cases: "` + the first test when it has no fenced block."""
    if append_first_test and "\n```\n" not in question:
        return question + "\nTest cases: " + test_cases[0]
    return question


@dataclass
class _Problem:
    id: str
    source: str
    question: str
    test_cases: list[str]
    mean: float
    std: float
    best_completion: str | None


class AceCodeHardBuilder(HubDatasetBuilder):
    """
    Build DiffuCoder's hard AceCode prompt set (see the module docstring for the exact rules).

    Example:

    ```python
    >>> from trl_ext.data.acecode import AceCodeHardBuilder
    >>> builder = AceCodeHardBuilder(preset="paper")
    >>> dataset = builder.build()  # reads TIGER-Lab/AceCode-87K from the Hub  # doctest: +SKIP
    >>> builder.counts  # rows left after each step  # doctest: +SKIP
    ```
    """

    arguments_class = AceCodeHardArguments
    module = "trl_ext.data.acecode"
    pretty_name = "AceCode hard (DiffuCoder coupled-GRPO prompts)"
    license = "mit"
    task_categories = ["text-generation"]
    tags = ["code", "reinforcement-learning", "grpo", "diffucoder", "acecode"]
    citations = CITATIONS

    def _read_problems(self) -> tuple[list[_Problem], set[str]]:
        args = self.args
        models = set(args.reference_models)
        problems, seen_models = [], set()
        rows = iter_source_rows(
            args.source,
            required_columns=ACECODE_COLUMNS,
            expected_schema=ACECODE_SCHEMA,
            config=args.source_config,
            split=args.source_split,
            revision=args.source_revision,
            streaming=args.streaming,
        )
        for index, row in enumerate(rows):
            if args.max_source_rows is not None and index >= args.max_source_rows:
                break
            problems.append(self._problem(index, row, models, seen_models))
        return problems, seen_models

    def _problem(self, index: int, row: dict[str, Any], models: set[str], seen_models: set[str]) -> _Problem:
        import numpy as np

        where = f"row {index} (id {row.get('id')!r}) of {self.args.source!r}"
        question, tests, inferences = row["question"], row["test_cases"], row["inferences"]
        if not isinstance(question, str):
            raise SchemaError(
                f"`question` of {where} is {type(question).__name__}, expected string:\n{ACECODE_SCHEMA}"
            )
        if tests is None:
            tests = []
        if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
            raise SchemaError(f"`test_cases` of {where} must be a list of strings:\n{ACECODE_SCHEMA}")
        if not isinstance(inferences, list):
            raise SchemaError(f"`inferences` of {where} must be a list:\n{ACECODE_SCHEMA}")
        rates, best, best_rate = [], None, -math.inf
        for inference in inferences:
            if not isinstance(inference, dict) or not {"model_name", "pass_rate", "completion"} <= inference.keys():
                raise SchemaError(
                    f"An `inferences` entry of {where} lacks `model_name`, `pass_rate` or `completion` (it has "
                    f"{sorted(inference) if isinstance(inference, dict) else type(inference).__name__}):\n"
                    f"{ACECODE_SCHEMA}"
                )
            rate = inference["pass_rate"]
            if isinstance(rate, bool) or not isinstance(rate, int | float) or math.isnan(rate):
                raise SchemaError(f"`pass_rate` {rate!r} in {where} is not a number:\n{ACECODE_SCHEMA}")
            seen_models.add(inference["model_name"])
            if not models or inference["model_name"] in models:
                rates.append(float(rate))
            # `max(inferences, key=pass_rate)` over *all* models, first maximum wins (as DiffuCoder's code).
            if rate > best_rate:
                best, best_rate = inference["completion"], rate
        mean = float(np.mean(rates)) if rates else math.nan
        std = float(np.std(rates)) if rates else math.nan
        return _Problem(str(row["id"]), str(row["source"]), question, list(tests), mean, std, best)

    def build(self) -> Dataset:
        import numpy as np
        from datasets import Dataset, Features, List, Value

        args = self.args
        mean_q, std_q = args.thresholds
        problems, seen_models = self._read_problems()
        rated = [p for p in problems if not math.isnan(p.mean)]
        if not rated:
            raise ValueError(
                f"No problem in {args.source!r} has pass rates from `reference_models` {args.reference_models} "
                f"(model names in the source: {sorted(seen_models)}). Set `reference_models` to some of them, or to "
                "an empty list for all."
            )
        mean_threshold = float(np.percentile([p.mean for p in rated], mean_q))
        low_mean = [p for p in rated if p.mean <= mean_threshold]
        population = rated if args.std_percentile_over == "all" else low_mean
        std_threshold = float(np.percentile([p.std for p in population], std_q))
        hard = [p for p in low_mean if p.std >= std_threshold]

        rows, augmented, without_tests = [], 0, 0
        for problem in hard:
            if not problem.test_cases:
                without_tests += 1
                continue
            rows.append(self._row(problem, problem.question, augmented=False))
            if args.augment and problem.best_completion is not None:
                question = diffucoder_augmented_question(problem.question, problem.best_completion)
                if question is not None:
                    rows.append(self._row(problem, question, augmented=True))
                    augmented += 1

        self.parameters = {
            "source": args.source,
            "source_config": args.source_config,
            "source_revision": args.source_revision,
            "preset": args.preset,
            "mean_percentile": mean_q,
            "std_percentile": std_q,
            "std_percentile_over": args.std_percentile_over,
            "reference_models": args.reference_models or "all",
            "mean pass-rate threshold (<=)": mean_threshold,
            "pass-rate std threshold (>=)": std_threshold,
            "augment": args.augment,
            "append_first_test": args.append_first_test,
            "system_prompt": args.system_prompt or None,
            "max_source_rows": args.max_source_rows,
        }
        self.counts = {
            "source problems": len(problems),
            "with reference pass rates": len(rated),
            f"mean <= P{mean_q:g}": len(low_mean),
            f"and std >= P{std_q:g} (hard problems)": len(hard),
            "hard problems without test cases (dropped)": without_tests,
            "augmented copies added": augmented,
            "rows": len(rows),
        }
        logger.info("AceCode hard: %s", self.counts)
        message = List({"role": Value("string"), "content": Value("string")})
        features = Features(
            {
                "prompt": message,
                "test_cases": List(Value("string")),
                "id": Value("string"),
                "source": Value("string"),
                "question": Value("string"),
                "augmented": Value("bool"),
                "pass_rate_mean": Value("float64"),
                "pass_rate_std": Value("float64"),
            }
        )
        return Dataset.from_list(rows, features=features)

    def _row(self, problem: _Problem, question: str, augmented: bool) -> dict[str, Any]:
        messages = [
            {
                "role": "user",
                "content": diffucoder_user_message(question, problem.test_cases, self.args.append_first_test),
            }
        ]
        if self.args.system_prompt:
            messages.insert(0, {"role": "system", "content": self.args.system_prompt})
        return {
            "prompt": messages,
            "test_cases": problem.test_cases,
            "id": problem.id,
            "source": problem.source,
            "question": question,
            "augmented": augmented,
            "pass_rate_mean": problem.mean,
            "pass_rate_std": problem.std,
        }

    # Card --------------------------------------------------------------------------------------------------------

    def summary(self) -> str:
        return (
            "The hard, high-variance problems of [AceCode-87K](https://huggingface.co/datasets/TIGER-Lab/AceCode-87K) "
            "that [DiffuCoder](https://huggingface.co/papers/2506.20639) trains coupled-GRPO on, as chat prompts with "
            "their assert tests: the format TRL reward functions that run code (`trl_ext.rewards.code_pass_rate_reward`) "
            "read."
        )

    def method(self) -> str:
        mean_q, std_q = self.args.thresholds
        over = "all problems" if self.args.std_percentile_over == "all" else "the low-mean problems"
        models = ", ".join(f"`{m}`" for m in self.args.reference_models) or "all models"
        return (
            f"1. For each problem, the mean and (population) standard deviation of the pass rates of the sampled "
            f"solutions of {models} (AceCode's `inferences`).\n"
            f"2. Keep problems with mean <= the {mean_q:g}th percentile of all means and std >= the {std_q:g}th "
            f"percentile of the stds over {over} (numpy's linear interpolation). Preset `{self.args.preset}`: "
            "`paper` is DiffuCoder's appendix B.1 (bottom 20% mean, top 40% variance, ~21K rows reported); `code` is "
            "its released `recipes/process_data.py` (std >= 40th percentile, i.e. the top 60%).\n"
            + (
                '3. DiffuCoder\'s augmentation: for problems whose question does not contain "you" and whose best '
                'solution starts with a `def` line, a second row asks to complete that function ("Please complete '
                'the following problem:" + a fenced stub with the question as docstring); `augmented` marks it.\n'
                if self.args.augment
                else "3. No augmentation.\n"
            )
            + "4. Prompts as DiffuCoder's `grpo.py` builds them: "
            + (f'system "{self.args.system_prompt}", ' if self.args.system_prompt else "no system message, ")
            + "then the question"
            + (
                ', followed by "\\nTest cases: " and the first test unless the question has a fenced block.'
                if self.args.append_first_test
                else "."
            )
        )

    def column_descriptions(self) -> dict[str, str]:
        return {
            "prompt": "Chat messages (system, user) given to the policy.",
            "test_cases": "Standalone `assert` statements; the code reward runs each one separately.",
            "id": "AceCode problem id (an augmented copy keeps its problem's id).",
            "source": "AceCode's seed dataset of the problem.",
            "question": "The question (the rewritten one for augmented rows).",
            "augmented": "Whether the row is DiffuCoder's function-completion copy.",
            "pass_rate_mean": "Mean pass rate of the reference models' solutions.",
            "pass_rate_std": "Population std of those pass rates.",
        }

    def source_datasets(self) -> list[str]:
        return [ACECODE_HUB_ID]

    def usage(self) -> str:
        return (
            "Train with coupled-GRPO (`recipes/coupled_grpo.py`), rewards `code_pass_rate` (weight 2.0) and "
            "`code_format` (0.5):\n\n```bash\naccelerate launch --config_file recipes/accelerate_configs/zero2.yaml "
            "recipes/coupled_grpo.py \\\n    --config recipes/configs/coupled_grpo_diffucoder.yaml --dataset_name "
            "ORG/NAME\n```"
        )

    def license_note(self) -> str:
        return (
            "Derived from [TIGER-Lab/AceCode-87K](https://huggingface.co/datasets/TIGER-Lab/AceCode-87K) (MIT "
            "License). Only questions, tests and pass-rate statistics are kept; no sampled solution is included."
        )


def build_acecode_hard(**kwargs) -> Dataset:
    """Build DiffuCoder's hard AceCode prompt set; `kwargs` are the fields of [`AceCodeHardArguments`]."""
    return AceCodeHardBuilder(AceCodeHardArguments(**kwargs)).build()


if __name__ == "__main__":
    AceCodeHardBuilder.main()
