import string

import pytest
import torch
from datasets import Dataset
from huggingface_hub import ModelCard

from trl_ext import CoupledGRPOConfig, CoupledGRPOTrainer
from trl_ext.testing import (
    make_tiny_causal_lm,
    make_tiny_dream_lm,
    make_tiny_llada_lm,
    make_tokenizer,
    save_tiny_model,
    target_fraction_reward,
)

LOWERCASE = target_fraction_reward(string.ascii_lowercase)


def dataset(n=64):
    return Dataset.from_dict({"prompt": [[{"role": "user", "content": "write something"}]] * n})


def config(tmp_path, **overrides):
    kwargs = dict(
        output_dir=str(tmp_path / "out"),
        max_completion_length=8,
        num_generations=4,
        per_device_train_batch_size=8,
        max_steps=3,
        bf16=False,
        report_to="none",
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        gradient_checkpointing=False,
        disable_tqdm=True,
        seed=0,
    )
    kwargs.update(overrides)
    return CoupledGRPOConfig(**kwargs)


@pytest.mark.slow
def test_learns_to_raise_a_simple_reward(tokenizer, tmp_path):
    path = save_tiny_model(make_tiny_dream_lm(tokenizer, hidden_size=64), tokenizer, tmp_path / "model")
    args = config(
        tmp_path, num_generations=8, per_device_train_batch_size=16, max_steps=40, learning_rate=3e-3, logging_steps=5
    )
    trainer = CoupledGRPOTrainer(path, LOWERCASE, args=args, train_dataset=dataset(1024), processing_class=tokenizer)
    trainer.train()
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    # Random start: ~10% of byte tokens are lowercase letters. 40 steps reliably reach well above 20%.
    assert rewards[0] < 0.15
    assert sum(rewards[-2:]) / 2 > rewards[0] + 0.1, rewards
    logged = trainer.state.log_history[0]
    for key in ("kl", "clip_ratio/region_mean", "diffusion/ar_ness", "diffusion/tokens_per_forward", "entropy"):
        assert key in logged


@pytest.mark.parametrize("builder", [make_tiny_dream_lm, make_tiny_llada_lm])
@pytest.mark.parametrize("estimator", ["coupled", "d1"])
def test_every_parameter_is_trained(tokenizer, tmp_path, builder, estimator):
    model = builder(tokenizer)
    path = save_tiny_model(model, tokenizer, tmp_path / "model")
    args = config(tmp_path, likelihood_estimator=estimator, learning_rate=0.1, beta=0.0)
    trainer = CoupledGRPOTrainer(path, LOWERCASE, args=args, train_dataset=dataset(), processing_class=tokenizer)
    before = {n: p.clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    for name, param in trainer.model.named_parameters():
        assert not torch.equal(param, before[name]), f"{name} did not change"


@pytest.mark.parametrize("context", ["canvas", "completion"])
def test_rollout_rows_carry_one_fresh_plan_per_iteration(tokenizer, tmp_path, context):
    path = save_tiny_model(make_tiny_dream_lm(tokenizer), tokenizer, tmp_path / "model")
    args = config(tmp_path, num_iterations=2, beta=0.01, max_steps=1, likelihood_context=context)
    trainer = CoupledGRPOTrainer(path, LOWERCASE, args=args, train_dataset=dataset(), processing_class=tokenizer)
    trainer.model.train()
    batch = trainer._generate_and_score_completions(list(dataset(8)))
    b, t = batch["completion_ids"].shape
    # The canvas context masks the whole sampled canvas (max_completion_length = 8 tokens).
    assert batch["coupled_masks"].shape == (b, 2, 3, 8 if context == "canvas" else t)
    assert ("coupled_canvas" in batch) == (context == "canvas")
    assert batch["old_per_token_logps"].shape == (b, 2, t) and batch["ref_per_token_logps"].shape == (b, 2, t)
    assert not torch.equal(batch["coupled_masks"][:, 0], batch["coupled_masks"][:, 1])
    # Before any update, the policy estimate under iteration k's plan equals the cached old estimate for k.
    for iteration in range(2):
        trainer._step = iteration * trainer.args.steps_per_generation
        trainer._loss_plan = None
        inputs = {k: v for k, v in batch.items()}
        from trl_ext.trainers import MaskPlan

        trainer._loss_plan = MaskPlan(inputs["coupled_masks"][:, iteration], inputs["coupled_coef"][:, iteration])
        trainer._loss_canvas = inputs.get("coupled_canvas")
        ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
        mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
        with torch.no_grad():
            logps, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, t)
        trainer._loss_plan = trainer._loss_canvas = None
        torch.testing.assert_close(logps, batch["old_per_token_logps"][:, iteration], atol=1e-5, rtol=1e-5)


def test_leave_one_out_scales_the_mean_baseline(tokenizer, tmp_path):
    path = save_tiny_model(make_tiny_dream_lm(tokenizer), tokenizer, tmp_path / "model")
    results = {}
    for baseline in ("mean", "leave_one_out"):
        args = config(tmp_path, advantage_baseline=baseline, beta=0.0, num_iterations=1)
        trainer = CoupledGRPOTrainer(path, LOWERCASE, args=args, train_dataset=dataset(), processing_class=tokenizer)
        trainer.model.train()
        trainer._sample_generator.manual_seed(0)
        results[baseline] = trainer._generate_and_score_completions(list(dataset(8)))["advantages"]
    torch.testing.assert_close(results["leave_one_out"], results["mean"] * 4 / 3)


def test_peft_lora_and_gradient_checkpointing(tokenizer, tmp_path):
    from peft import LoraConfig

    path = save_tiny_model(make_tiny_dream_lm(tokenizer), tokenizer, tmp_path / "model")
    args = config(tmp_path, gradient_checkpointing=True, beta=0.01, learning_rate=0.1)
    trainer = CoupledGRPOTrainer(
        path,
        LOWERCASE,
        args=args,
        train_dataset=dataset(),
        processing_class=tokenizer,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]),
    )
    before = {n: p.clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    for name, param in trainer.model.named_parameters():
        changed = not torch.equal(param, before[name])
        assert changed == ("lora_B" in name or "lora_A" in name), name


def test_model_card_names_the_base_model_and_method(tokenizer, tmp_path):
    path = save_tiny_model(make_tiny_dream_lm(tokenizer), tokenizer, tmp_path / "model")
    args = config(tmp_path, max_steps=1)
    trainer = CoupledGRPOTrainer(path, LOWERCASE, args=args, train_dataset=dataset(), processing_class=tokenizer)
    trainer.train()
    trainer.create_model_card(dataset_name="my-org/hard-code-prompts")
    text = (tmp_path / "out" / "README.md").read_text()
    card = ModelCard(text)
    card.validate = None  # offline: validation against the Hub API is not reachable
    assert "[None]" not in text and "coupled-GRPO" in text and "2506.20639" in text
    assert "fraction_in_target" in text and "likelihood_estimator" in text
    assert card.data.datasets == ["my-org/hard-code-prompts"] and "coupled-grpo" in card.data.tags


def test_bad_inputs_raise_early_with_the_field_name(tokenizer, tmp_path):
    with pytest.raises(ValueError, match="diffusion_type"):
        CoupledGRPOTrainer(
            make_tiny_causal_lm(tokenizer),
            LOWERCASE,
            args=config(tmp_path),
            train_dataset=dataset(),
            processing_class=tokenizer,
        )
    bare = make_tokenizer(with_mask_token=False)
    model = make_tiny_dream_lm(tokenizer)
    model.config.mask_token_id = None
    with pytest.raises(ValueError, match="mask_token_id"):
        CoupledGRPOTrainer(model, LOWERCASE, args=config(tmp_path), train_dataset=dataset(), processing_class=bare)
    with pytest.raises(ValueError, match="num_generations"):
        config(tmp_path, num_generations=3, per_device_train_batch_size=8)
    with pytest.raises(ValueError, match="mask_t_min"):
        config(tmp_path, mask_t_min=0.0)
    with pytest.raises(ValueError, match="mask_t_min"):
        config(tmp_path, mask_t_max=1.2)
    with pytest.raises(ValueError, match="likelihood_estimator"):
        config(tmp_path, likelihood_estimator="uncoupled")


def _diffucoder_reference(model, prompt, canvas, eos_at, mask_a, t, mask_id):
    """
    DiffuCoder's `_get_per_token_logps` for one unpadded row, written out: three passes over prompt + the whole
    canvas (pass 1 masks every canvas token, pass 2 those with R < t, pass 3 the rest; the prompt never), shifted
    logits, float32 log-softmax, and `(logp_1 + logp_{2 or 3} / ratio) / 2` for the tokens up to the first EOS.
    """
    length = len(canvas)
    passes = [torch.ones(length, dtype=torch.bool), mask_a, ~mask_a]
    logps = []
    for masked in passes:
        ids = torch.tensor(prompt + canvas)
        ids[len(prompt) :][masked] = mask_id
        with torch.no_grad():
            logits = model(input_ids=ids[None]).logits[0].float()
        scoring = logits[len(prompt) - 1 : len(prompt) - 1 + length]  # logit i - 1 scores token i
        logps.append(scoring.log_softmax(-1).gather(-1, torch.tensor(canvas)[:, None]).squeeze(-1))
    weighted = torch.where(mask_a, logps[1] / t, logps[2] / (1 - t))
    return ((logps[0] + weighted) / 2)[: eos_at + 1]


def test_canvas_context_equals_diffucoders_own_likelihood(tokenizer, tmp_path):
    model = make_tiny_dream_lm(tokenizer, hidden_size=64, seed=1)
    path = save_tiny_model(model, tokenizer, tmp_path / "model")
    args = config(tmp_path, likelihood_context="canvas", num_iterations=1, beta=0.0, max_completion_length=10)
    trainer = CoupledGRPOTrainer(path, LOWERCASE, args=args, train_dataset=dataset(), processing_class=tokenizer)
    trainer.model.eval()
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    prompts = [tokenizer("write f").input_ids, tokenizer("hi").input_ids]
    g = torch.Generator().manual_seed(0)
    canvases = torch.randint(0, 250, (2, 10), generator=g)
    canvases[0, 4], canvases[1, 7] = eos, eos  # answers end at 4 and 7; the canvas goes on after them
    eos_at = [4, 7]
    prompt_ids = torch.tensor([[pad] * (len(prompts[0]) - len(p)) + p for p in prompts])
    prompt_mask = torch.tensor([[0] * (len(prompts[0]) - len(p)) + [1] * len(p) for p in prompts])
    t = max(eos_at) + 1
    completion_ids = torch.stack([torch.where(torch.arange(10) <= e, c, pad) for c, e in zip(canvases, eos_at)])[:, :t]
    completion_mask = torch.stack([(torch.arange(10) <= e).long() for e in eos_at])[:, :t]
    trainer._loss_canvas = canvases
    plan = trainer._draw_plans(prompt_mask, completion_mask, 1)[0]
    # Passes A and B mask every canvas token exactly once, the post-EOS part included; only the answer is scored.
    a, b = plan.completion_masks[:, 1], plan.completion_masks[:, 2]
    assert ((a.long() + b.long()) == 1).all() and plan.completion_masks[:, 0].all()
    assert ((plan.coef != 0).any(1) == (torch.arange(10) <= torch.tensor(eos_at)[:, None])).all()
    trainer._loss_plan = plan
    with torch.no_grad():
        ours, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, torch.cat([prompt_ids, completion_ids], 1), torch.cat([prompt_mask, completion_mask], 1), t
        )
    trainer._loss_plan = trainer._loss_canvas = None
    for row in range(2):
        ratio = (
            float(0.5 / plan.coef[row, 1][a[row]][0])
            if a[row].any()
            else 1 - float(0.5 / plan.coef[row, 2][b[row]][0])
        )
        expected = _diffucoder_reference(
            trainer.model, prompts[row], canvases[row].tolist(), eos_at[row], a[row], ratio, tokenizer.mask_token_id
        )
        torch.testing.assert_close(ours[row, : eos_at[row] + 1], expected, atol=1e-5, rtol=1e-5)
        assert (ours[row, eos_at[row] + 1 :] == 0).all()
    # The 'completion' context (the context cut at the first EOS) gives different estimates on the same masks.
    trainer.args.likelihood_context = "completion"
    cut = trainer._draw_plans(prompt_mask, completion_mask, 1)[0]
    trainer._loss_plan = cut
    with torch.no_grad():
        other, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, torch.cat([prompt_ids, completion_ids], 1), torch.cat([prompt_mask, completion_mask], 1), t
        )
    trainer._loss_plan = None
    assert not torch.allclose(other[0, :5], ours[0, :5])


@pytest.mark.slow
def test_llada_learns_with_gradient_checkpointing(tokenizer, tmp_path):
    path = save_tiny_model(make_tiny_llada_lm(tokenizer, hidden_size=64), tokenizer, tmp_path / "model")
    args = config(
        tmp_path, num_generations=8, per_device_train_batch_size=16, max_steps=40, learning_rate=3e-3, logging_steps=5,
        gradient_checkpointing=True, block_length=4, diffusion_steps=8, diffusion_alg="maskgit_plus",
    )  # fmt: skip
    trainer = CoupledGRPOTrainer(path, LOWERCASE, args=args, train_dataset=dataset(1024), processing_class=tokenizer)
    trainer.train()
    assert trainer.model.is_gradient_checkpointing
    assert all(block.gradient_checkpointing for block in trainer.model.model.transformer.blocks)
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    assert rewards[0] < 0.15
    assert sum(rewards[-2:]) / 2 > rewards[0] + 0.1, rewards


@pytest.mark.slow
def test_cached_rollouts_learn_like_exact_ones(tokenizer, tmp_path):
    """The coupled estimator recomputes every likelihood without a cache, so Fast-dLLM's approximate dual cache only
    changes which completions are drawn: same seeds, same decoding schedule, the reward curve rises like the exact
    sampler's (last two logged rewards within 0.1 of each other) while most positions come from the cache."""
    path = save_tiny_model(make_tiny_dream_lm(tokenizer, hidden_size=64), tokenizer, tmp_path / "model")
    curves, logs = {}, {}
    for name, extra in [("exact", {}), ("cached", {"kv_cache": "dual"})]:
        args = config(
            tmp_path / name, num_generations=8, per_device_train_batch_size=16, max_steps=40, learning_rate=3e-3,
            logging_steps=5, block_length=4, diffusion_steps=4, **extra,
        )  # fmt: skip
        trainer = CoupledGRPOTrainer(
            path, LOWERCASE, args=args, train_dataset=dataset(1024), processing_class=tokenizer
        )
        trainer.train()
        logs[name] = [h for h in trainer.state.log_history if "reward" in h and "loss" in h]
        curves[name] = [h["reward"] for h in logs[name]]
    for name, rewards in curves.items():
        assert sum(rewards[-2:]) / 2 > rewards[0] + 0.1, (name, curves)
    assert abs(sum(curves["cached"][-2:]) - sum(curves["exact"][-2:])) / 2 < 0.1, curves
    # 2 blocks of 2 steps (2 tokens each): a full forward, then a forward of the block against the cache.
    assert logs["exact"][0]["diffusion/cache_hit_fraction"] == 0.0
    assert logs["cached"][0]["diffusion/cache_hit_fraction"] > 0.3
    assert "diffusion/rollout_seconds" in logs["cached"][0] and "diffusion/tokens_per_second" in logs["cached"][0]
