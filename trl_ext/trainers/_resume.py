"""
Exact resume: the state a GRPO step depends on beyond what `Trainer` checkpoints (weights, optimizer, scheduler,
global RNGs, data position).

TRL's `GRPOTrainer` keeps, per process, a micro-step counter that decides when to generate, the buffered rollouts of
an unfinished PPO cycle (`num_iterations > 1` or `steps_per_generation > 1`) and the metrics accumulated since the
last log; our trainers add private `torch.Generator`s (rollout sampling, coupled masks) and, with `sync_ref_model`,
a reference model that is no longer the base model. None of these is in a `Trainer` checkpoint, so a resumed run
would replay the generators from step 1, regenerate in the middle of a cycle and start the reference model over: a
silently different run. This mixin saves them next to each process's `rng_state*.pth` and restores them where
`Trainer` restores its RNGs, so `k` steps + `--resume_from_checkpoint` to `N` equals `N` steps straight.
"""

from __future__ import annotations

import os

import torch

STATE_FILE = "trl_ext_state{}.pt"
REF_MODEL_FILE = "trl_ext_ref_model.pt"


class ExactResumeMixin:
    """Mix into a `GRPOTrainer` subclass (before it) to checkpoint and restore the state listed above."""

    def _private_generators(self) -> dict[str, torch.Generator]:
        return {name: value for name, value in vars(self).items() if isinstance(value, torch.Generator)}

    def _stateful_rewards(self) -> dict[str, object]:
        names = getattr(self, "reward_func_names", None) or [str(i) for i in range(len(self.reward_funcs))]
        return {
            name: func
            for name, func in zip(names, self.reward_funcs)
            if callable(getattr(func, "state_dict", None)) and callable(getattr(func, "load_state_dict", None))
        }

    def _resume_state(self) -> dict:
        return {
            "step": self._step,
            "buffered_inputs": self._buffered_inputs,
            "metrics": {mode: {k: list(v) for k, v in values.items()} for mode, values in self._metrics.items()},
            "generators": {name: g.get_state() for name, g in self._private_generators().items()},
            "rewards": {name: func.state_dict() for name, func in self._stateful_rewards().items()},
            # the rewards a logging window without a generation reports (RunGuardsMixin.log)
            "last_reward_metrics": getattr(self, "_last_reward_metrics", None),
        }

    def _state_path(self, folder: str) -> str:
        suffix = f"_{self.args.process_index}" if self.args.world_size > 1 else ""
        return os.path.join(folder, STATE_FILE.format(suffix))

    def _save_rng_state(self, output_dir: str) -> None:
        super()._save_rng_state(output_dir)
        os.makedirs(output_dir, exist_ok=True)
        torch.save(self._resume_state(), self._state_path(output_dir))
        if self.args.sync_ref_model and self.ref_model is not None and self.accelerator.is_main_process:
            # The reference model has been mixed with the policy: it is part of the run's state.
            ref = self.accelerator.unwrap_model(self.ref_model)
            torch.save(
                {k: v.detach().cpu() for k, v in ref.state_dict().items()}, os.path.join(output_dir, REF_MODEL_FILE)
            )

    def _load_rng_state(self, checkpoint: str | None) -> None:
        super()._load_rng_state(checkpoint)
        if checkpoint is None:
            return
        path = self._state_path(checkpoint)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} is missing: the checkpoint was not written by a trl_ext trainer with this number of "
                f"processes ({self.args.world_size}), so the run cannot resume exactly. Resume with the process "
                "count it was saved with."
            )
        state = torch.load(path, map_location="cpu", weights_only=False)
        self._step = state["step"]
        self._buffered_inputs = _to_device(state["buffered_inputs"], self.accelerator.device)
        for mode, values in state["metrics"].items():
            self._metrics[mode].clear()
            self._metrics[mode].update(values)
        self._last_reward_metrics = state.get("last_reward_metrics")
        for name, generator in self._private_generators().items():
            generator.set_state(state["generators"][name].cpu())  # a generator's state is a CPU byte tensor
        for name, func in self._stateful_rewards().items():
            func.load_state_dict(state["rewards"][name])
        ref_path = os.path.join(checkpoint, REF_MODEL_FILE)
        if self.args.sync_ref_model and self.ref_model is not None and os.path.isfile(ref_path):
            ref = self.accelerator.unwrap_model(self.ref_model)
            ref.load_state_dict(torch.load(ref_path, map_location="cpu", weights_only=True))


def _to_device(value, device):
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_device(v, device) for v in value)
    return value
