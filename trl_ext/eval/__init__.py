"""
Benchmarks for the models trl_ext trains. Each evaluator is a module runnable with `python -m` that writes
`<output_dir>/eval/report.json` (and `report.md`) in the one schema the model cards read
(`python -m trl_ext.model_card add-eval`):

- `python -m trl_ext.eval.code`: HumanEval, HumanEval+, MBPP/MBPP+ pass@1 and unbiased pass@k in the sandbox, for
  masked-diffusion and causal LMs or a samples file ([`trl_ext.eval.code`]).
- `python -m trl_ext.eval.image`: class-to-image FID / sFID / IS / precision / recall against an ADM reference batch,
  and text-to-image reward scores over a prompt file ([`trl_ext.eval.image`]).

The modules are not imported here, so that `python -m trl_ext.eval.<name>` runs each one once.
"""
