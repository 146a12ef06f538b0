"""
Checks every trl_ext trainer runs before anything heavy (model loading, the first rollout), and the guard that stops a
run whose rewards all failed.

Reward callables declare what they need from the dataset with two optional attributes:

- `required_columns`: a tuple of alternatives, each a tuple of column names of which one must be present, e.g.
  `(("test_cases", "tests"),)`;
- `list_columns`: columns that must hold a list per row (not one string).
"""

from __future__ import annotations

import os

import torch


def check_model_location(model) -> None:
    """A `model` string that can only be a local folder (absolute, relative with `./`, or more than one `/`) must exist."""
    if not isinstance(model, str) or model.startswith("tiny-random:"):
        return
    from ..data import looks_like_local_path

    if looks_like_local_path(model) and not os.path.isdir(os.path.expanduser(model)):
        raise FileNotFoundError(
            f"`model` {model!r} is not an existing folder (and cannot be a Hub id, which has the form 'org/name'). "
            "Check the path, or pass a Hub model id."
        )


def _columns(dataset) -> list[str] | None:
    if dataset is None:
        return None
    names = getattr(dataset, "column_names", None)
    if isinstance(names, dict):  # a DatasetDict was passed where a split was expected
        raise TypeError(
            f"Expected one dataset split, got a DatasetDict with splits {sorted(names)}: pass e.g. dataset['train']."
        )
    if names is None and getattr(dataset, "features", None) is not None:
        names = list(dataset.features)
    return list(names) if names is not None else None


def _is_string_column(dataset, column: str) -> bool:
    features = getattr(dataset, "features", None)
    if not features or column not in features:
        return False
    feature = features[column]
    return getattr(feature, "dtype", None) in ("string", "large_string")


def check_dataset(
    dataset, reward_funcs, split: str = "train_dataset", required: tuple[str, ...] = ("prompt",)
) -> None:
    """
    Raise before any model loads when `dataset` lacks a column the trainer or a reward function needs, or holds a
    single string where a reward needs a list per row; the error names the column, the reward and the fix.
    """
    columns = _columns(dataset)
    if columns is None:
        return
    for column in required:
        if column not in columns:
            raise ValueError(
                f"{split} has no {column!r} column (its columns: {columns}). GRPO reads the prompts from it: rename "
                f"the column that holds them, e.g. `dataset.rename_column('question', {column!r})`."
            )
    funcs = reward_funcs if isinstance(reward_funcs, (list, tuple)) else [reward_funcs]
    for func in funcs:
        name = getattr(func, "__name__", type(func).__name__)
        for alternatives in getattr(func, "required_columns", ()) or ():
            present = [c for c in alternatives if c in columns]
            if not present:
                raise ValueError(
                    f"The reward `{name}` needs a {' or '.join(repr(c) for c in alternatives)} column in {split} "
                    f"(its columns: {columns}). Add it, or rename the column that holds it."
                )
            for column in present:
                if column in (getattr(func, "list_columns", ()) or ()) and _is_string_column(dataset, column):
                    raise ValueError(
                        f"{split}[{column!r}] holds one string per row, but the reward `{name}` needs a list per row "
                        f"(one test per item; a single string would run as one all-or-nothing test). Split it, e.g. "
                        f"`dataset.map(lambda row: {{{column!r}: row[{column!r}].splitlines()}})`, or wrap it in a "
                        "list if it really is one test."
                    )


def validate_trainer_inputs(model, reward_funcs, pargs: tuple = (), kwargs: dict | None = None, **datasets) -> None:
    """
    The checks above for a `GRPOTrainer`-style call: `train_dataset` / `eval_dataset` taken from `datasets`, else from
    the positional (`pargs`) or keyword (`kwargs`) arguments that follow `args`.
    """
    kwargs = kwargs or {}
    check_model_location(model)
    train = datasets.get("train_dataset", kwargs.get("train_dataset", pargs[0] if len(pargs) > 0 else None))
    evaluation = datasets.get("eval_dataset", kwargs.get("eval_dataset", pargs[1] if len(pargs) > 1 else None))
    check_dataset(train, reward_funcs, "train_dataset")
    if isinstance(evaluation, dict):
        for name, split in evaluation.items():
            check_dataset(split, reward_funcs, f"eval_dataset[{name!r}]")
    else:
        check_dataset(evaluation, reward_funcs, "eval_dataset")


def check_reference_model(model, beta: float, peft_config=None) -> None:
    """
    With `beta != 0` TRL rebuilds the reference model from `model.config._name_or_path`: an in-memory model (no
    folder, no Hub id) without a PEFT adapter has nothing to rebuild from, which fails deep in TRL; fail here instead.
    """
    if beta == 0.0 or peft_config is not None or hasattr(model, "peft_config"):
        return
    name = getattr(getattr(model, "config", None), "_name_or_path", "") or ""
    if not (os.path.isdir(name) or name.count("/") == 1):
        raise ValueError(
            "`beta != 0` needs a reference model, which TRL reloads from `model.config._name_or_path`, but this "
            "model was built in memory. Save it first (`model.save_pretrained(path)`, then pass `path`), train a "
            "PEFT adapter (`peft_config`), or set `beta=0.0`."
        )


_REWARD_METRICS = ("reward", "reward_std", "frac_reward_zero_std")


def _is_reward_metric(key: str) -> bool:
    return key in _REWARD_METRICS or key.startswith("rewards/")


class RunGuardsMixin:
    """
    Stops a run whose rewards all failed for a whole step, instead of training on zero gradients; and logs the
    rewards at every logging step.

    TRL records rewards when it generates, so with `num_iterations > 1` (or `steps_per_generation` above the
    gradient accumulation) a logging window without a generation has no reward at all: the reward curve skips steps.
    Such a window logs the rewards of the rollouts it trained on, i.e. of the last generation.
    """

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        metrics = self._metrics["train" if self.model.training else "eval"]
        if self.model.training and "reward" not in logs:
            if metrics.get("reward"):
                self._last_reward_metrics = {k: list(v) for k, v in metrics.items() if _is_reward_metric(k)}
            elif getattr(self, "_last_reward_metrics", None) and "loss" in logs:
                for key, values in self._last_reward_metrics.items():
                    metrics[key] = list(values)
        super().log(logs, start_time)

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        failed = torch.isnan(rewards_per_func)
        if failed.numel() and failed.all():
            counts = {name: int(n) for name, n in zip(self.reward_func_names, failed.sum(0).tolist())}
            raise RuntimeError(
                f"Every reward of this step is None or NaN ({counts} of {failed.size(0)} completions): the run would "
                "train on zero gradients. Check the reward functions' infrastructure (sandbox, judge endpoint, "
                "browser) and the dataset columns they read; their logged failure counters say which part failed."
            )
        return rewards_per_func
