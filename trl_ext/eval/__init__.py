"""Benchmarks for the models trl_ext trains: functional correctness of code (`trl_ext.eval.code`)."""

from .code import CodeEvalArguments, CodeProblem, evaluate_code, load_problems, pass_at_k

__all__ = ["CodeEvalArguments", "CodeProblem", "evaluate_code", "load_problems", "pass_at_k"]
