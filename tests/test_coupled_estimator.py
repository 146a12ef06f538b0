import pytest
import torch
import torch.nn.functional as F
from trl.trainer.utils import shuffle_sequence_dict, split_tensor_dict

from trl_ext.models import MaskedDiffusionAdapter
from trl_ext.testing import make_tiny_dream_lm, make_tiny_llada_lm
from trl_ext.trainers import ESTIMATORS, MaskPlan, draw_mask_plan, estimate_log_likelihood

BUILDERS = {"dream": make_tiny_dream_lm, "llada": make_tiny_llada_lm}


def batch(tokenizer):
    torch.manual_seed(0)
    prompt_ids = torch.randint(0, 250, (3, 5))
    prompt_mask = torch.ones_like(prompt_ids)
    prompt_mask[0, :2] = 0  # left padding
    prompt_mask[2, :1] = 0
    prompt_ids[prompt_mask == 0] = tokenizer.pad_token_id
    completion_ids = torch.randint(0, 250, (3, 7))
    completion_mask = torch.ones_like(completion_ids)
    completion_mask[1, 4:] = 0  # a short completion, right padded
    completion_ids[completion_mask == 0] = tokenizer.pad_token_id
    return prompt_ids, prompt_mask, completion_ids, completion_mask


def slow_estimate(model, adapter, prompt_ids, prompt_mask, completion_ids, completion_mask, plan):
    """One forward per row and per pass, full-vocabulary log-softmax, explicit loops."""
    batch_size, num_passes, length = plan.coef.shape
    out = torch.zeros(batch_size, length, dtype=torch.float64)
    for b in range(batch_size):
        for p in range(num_passes):
            prompt = prompt_ids[b].clone()
            if plan.prompt_masks is not None:
                prompt[plan.prompt_masks[b, p]] = adapter.mask_token_id
            completion = completion_ids[b].clone()
            completion[plan.completion_masks[b, p]] = adapter.mask_token_id
            ids = torch.cat([prompt, completion])[None]
            attn = torch.cat([prompt_mask[b], completion_mask[b]])[None]
            mask4d, pos = adapter.attention_inputs(attn, torch.float32)
            with torch.no_grad():
                logits = model(input_ids=ids, attention_mask=mask4d, position_ids=pos).logits[0].double()
            logp = F.log_softmax(logits, -1)
            for k in range(length):
                if plan.coef[b, p, k] == 0:
                    continue
                position = prompt_ids.size(1) + k
                read = position - 1 if adapter.shift_logits else position
                out[b, k] += plan.coef[b, p, k].double() * logp[read, completion_ids[b, k]]
    return out


def test_coupled_masks_cover_each_completion_token_exactly_once(tokenizer):
    _, _, _, completion_mask = batch(tokenizer)
    for seed in range(20):
        plan = draw_mask_plan(completion_mask, "coupled", generator=torch.Generator().manual_seed(seed))
        full, a, b = plan.completion_masks.unbind(1)
        assert torch.equal(full, completion_mask.bool())
        assert torch.equal(a.long() + b.long(), completion_mask)  # exactly once, padding never
        # Weights: 1/(2t) on A, 1/(2(1-t)) on B with one t per row in [0.2, 0.8].
        for row in range(3):
            wa = plan.coef[row, 1][a[row]].unique()
            wb = plan.coef[row, 2][b[row]].unique()
            assert wa.numel() <= 1 and wb.numel() <= 1
            if wa.numel() and wb.numel():
                t = 1 / (2 * wa.item())
                assert 0.2 <= t <= 0.8
                assert wb.item() == pytest.approx(1 / (2 * (1 - t)), rel=1e-5)
        torch.testing.assert_close(plan.coef[:, 0], 0.5 * completion_mask.float())


def test_independent_and_d1_plans(tokenizer):
    prompt_ids, prompt_mask, _, completion_mask = batch(tokenizer)
    generator = torch.Generator().manual_seed(0)
    plan = draw_mask_plan(completion_mask, "independent", generator=generator)
    _, a, b = plan.completion_masks.unbind(1)
    assert ((a & b) | (~a & ~b) & completion_mask.bool()).any()  # not complementary
    d1 = draw_mask_plan(completion_mask, "d1", generator=generator, prompt_mask=prompt_mask, prompt_mask_prob=0.5)
    assert d1.coef.shape[1] == 1 and torch.equal(d1.completion_masks[:, 0], completion_mask.bool())
    assert not (d1.prompt_masks[:, 0] & ~prompt_mask.bool()).any()  # padding is never masked


def test_mask_draws_use_a_private_generator(tokenizer):
    _, _, _, completion_mask = batch(tokenizer)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = draw_mask_plan(completion_mask, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), state)
    b = draw_mask_plan(completion_mask, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.coef, b.coef)


@pytest.mark.parametrize("family", ["dream", "llada"])
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_batched_estimate_equals_slow_reference(tokenizer, family, estimator):
    model = BUILDERS[family](tokenizer)
    adapter = MaskedDiffusionAdapter.from_model(model, tokenizer)
    prompt_ids, prompt_mask, completion_ids, completion_mask = batch(tokenizer)
    plan = draw_mask_plan(
        completion_mask, estimator, generator=torch.Generator().manual_seed(3), prompt_mask=prompt_mask,
        prompt_mask_prob=0.4,
    )

    def score(*args):
        return adapter.score_tokens(model, *args)

    with torch.no_grad():
        fast, _ = estimate_log_likelihood(
            score, prompt_ids, prompt_mask, completion_ids, completion_mask, plan, adapter.mask_token_id
        )
    slow = slow_estimate(model, adapter, prompt_ids, prompt_mask, completion_ids, completion_mask, plan)
    torch.testing.assert_close(fast.double(), slow, atol=1e-5, rtol=1e-5)
    assert (fast[completion_mask == 0] == 0).all()


def test_estimate_is_differentiable(tokenizer):
    model = make_tiny_dream_lm(tokenizer).train()
    adapter = MaskedDiffusionAdapter.from_model(model, tokenizer)
    prompt_ids, prompt_mask, completion_ids, completion_mask = batch(tokenizer)
    plan = draw_mask_plan(completion_mask, generator=torch.Generator().manual_seed(0))
    est, _ = estimate_log_likelihood(
        lambda *a: adapter.score_tokens(model, *a), prompt_ids, prompt_mask, completion_ids, completion_mask, plan,
        adapter.mask_token_id,
    )
    est.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters() if p.requires_grad)


def test_masks_travel_with_their_rows_through_trl_shuffle_and_split(tokenizer):
    model = make_tiny_dream_lm(tokenizer)
    adapter = MaskedDiffusionAdapter.from_model(model, tokenizer)
    prompt_ids, prompt_mask, completion_ids, completion_mask = batch(tokenizer)
    plan = draw_mask_plan(completion_mask, generator=torch.Generator().manual_seed(0))
    rollout = {
        "prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": completion_ids,
        "completion_mask": completion_mask, "coupled_masks": plan.completion_masks, "coupled_coef": plan.coef,
        "row": torch.arange(3),
    }

    def estimate(d):
        p = MaskPlan(d["coupled_masks"], d["coupled_coef"])
        with torch.no_grad():
            return estimate_log_likelihood(
                lambda *a: adapter.score_tokens(model, *a), d["prompt_ids"], d["prompt_mask"], d["completion_ids"],
                d["completion_mask"], p, adapter.mask_token_id,
            )[0]

    before = estimate(rollout)
    for seed in range(10):  # a seed whose permutation actually moves rows
        torch.manual_seed(seed)
        shuffled = shuffle_sequence_dict(rollout)
        if not torch.equal(shuffled["row"], torch.arange(3)):
            break
    assert not torch.equal(shuffled["row"], torch.arange(3))
    for part in split_tensor_dict(shuffled, 3):
        torch.testing.assert_close(estimate(part)[0], before[part["row"][0]], atol=1e-5, rtol=1e-5)


def test_bad_mask_ratio_range_names_the_fields(tokenizer):
    _, _, _, completion_mask = batch(tokenizer)
    for t_min, t_max in [(0.0, 0.5), (0.3, 1.0), (0.7, 0.2)]:
        with pytest.raises(ValueError, match="mask_t_min"):
            draw_mask_plan(completion_mask, t_min=t_min, t_max=t_max)
    with pytest.raises(ValueError, match="likelihood_estimator"):
        draw_mask_plan(completion_mask, "uncoupled")
