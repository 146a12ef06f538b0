"""
Throughput of the code pass-rate reward: a batch of 64 completions x 5 tests on the local sandbox, with the worker
pool (one worker per core) versus one program at a time.

    python benchmarks/code_reward.py [--completions 64] [--tests 5] [--no-bwrap]
"""

import argparse
import os
import time

from trl_ext.data import load_code_problems
from trl_ext.rewards import make_code_pass_rate_reward
from trl_ext.sandbox import LocalSandbox


def build_batch(n_completions, n_tests):
    problems = load_code_problems()
    completions, tests = [], []
    for i in range(n_completions):
        problem = problems[i % len(problems)]
        solution = problem["reference_solution"]
        if i % 4 == 3:  # a share of wrong answers, so that failing paths (tracebacks) are exercised too
            solution += f"\n\ndef {problem['entry_point']}(*args, **kwargs):\n    return None\n"
        completions.append([{"role": "assistant", "content": f"```python\n{solution}\n```"}])
        tests.append((problem["test_cases"] * n_tests)[:n_tests])
    return completions, tests


def measure(sandbox, completions, tests, sequential):
    reward = make_code_pass_rate_reward(sandbox=sandbox)
    start = time.perf_counter()
    if sequential:
        scores = [reward(prompts=["p"], completions=[c], test_cases=[t])[0] for c, t in zip(completions, tests)]
    else:
        scores = reward(prompts=["p"] * len(completions), completions=completions, test_cases=tests)
    elapsed = time.perf_counter() - start
    assert None not in scores, "infrastructure failure during the benchmark"
    return elapsed, sum(scores) / len(scores)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--completions", type=int, default=64)
    parser.add_argument("--tests", type=int, default=5)
    parser.add_argument("--no-bwrap", action="store_true", help="benchmark the rlimits-only fallback")
    args = parser.parse_args()
    completions, tests = build_batch(args.completions, args.tests)
    executions = sum(len(t) for t in tests)
    use_bwrap = False if args.no_bwrap else None

    rows = []
    pool = f"pool ({os.cpu_count()} workers)"
    settings = (
        ("one at a time", 1, True, True),
        (pool, None, False, True),
        # The cost of trusted verdicts (the comparison outside the program's process), in the same run.
        (f"{pool}, in-process verdicts", None, False, False),
    )
    for label, workers, sequential, trusted in settings:
        with LocalSandbox(max_workers=workers, use_bwrap=use_bwrap, trusted_verdicts=trusted) as sandbox:
            measure(sandbox, completions[:2], tests[:2], sequential)  # warm-up: page cache, thread start
            elapsed, mean_reward = measure(sandbox, completions, tests, sequential)
            isolation = sandbox.isolation
        rows.append((label, elapsed, executions / elapsed, mean_reward))

    print(f"{args.completions} completions x {args.tests} tests = {executions} executions, isolation: {isolation}")
    print(f"{'mode':<38} {'seconds':>8} {'exec/s':>8} {'mean reward':>12}")
    for label, elapsed, rate, mean_reward in rows:
        print(f"{label:<38} {elapsed:>8.2f} {rate:>8.1f} {mean_reward:>12.3f}")
    print(f"pool / one-at-a-time throughput ratio: {rows[1][2] / rows[0][2]:.2f}x")
    print(f"trusted / in-process verdicts throughput ratio (pool): {rows[1][2] / rows[2][2]:.2f}x")


if __name__ == "__main__":
    main()
