"""
Benchmarks for the models trl_ext trains. Each evaluator is a module runnable with `python -m` that writes
`<output_dir>/eval/report.json` in the shared schema the model cards read: `trl_ext.eval.code` (HumanEval, HumanEval+,
MBPP/MBPP+ pass@k). The modules are not imported here, so that `python -m trl_ext.eval.<name>` runs each one once.
"""
