"""
Evaluators that write `<output_dir>/eval/report.json` (and `report.md`) in one schema, read by the model card.

- `python -m trl_ext.eval.image`: class-to-image FID / sFID / IS / precision / recall against an ADM reference batch,
  and text-to-image reward scores over a prompt file ([`trl_ext.eval.image`]).
"""
