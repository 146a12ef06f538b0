"""ImageTokenSampler: batched CFG, KV-cache decoding, filtering and draws checked against slow, direct versions."""

import pytest
import torch

from trl_ext.generation.image_tokens import ImageTokenSampler, cfg_scale_schedule, filter_logits
from trl_ext.testing_image import make_tiny_llamagen


def two_forward_guided_logprobs(model, tokens, scales, temperature, **condition):
    """Guided log-probs from two *separate* full forwards (cond, then uncond), mixed with the CFG formula."""
    with torch.no_grad():
        if "class_labels" in condition:
            cond = model(tokens[:, :-1], **condition).logits
            null = torch.full_like(condition["class_labels"], model.config.num_classes)
            uncond = model(tokens[:, :-1], class_labels=null).logits
        else:
            cond = model(tokens[:, :-1], **condition).logits
            null = model.caption_embedder.null_caption.expand_as(condition["caption_embeds"])
            uncond = model(tokens[:, :-1], caption_embeds=null, caption_mask=condition["caption_mask"]).logits
    guided = uncond + scales[None, :, None] * (cond - uncond)
    return torch.log_softmax(guided / temperature, -1).gather(-1, tokens[..., None])[..., 0]


@pytest.mark.parametrize("schedule,interval", [("constant", None), ("linear", None), ("constant", 5)])
def test_sampler_logprobs_equal_two_forward_cfg_formula(schedule, interval):
    model = make_tiny_llamagen("c2i", seed=1)
    sampler = ImageTokenSampler(cfg_scale=3.0, cfg_schedule=schedule, cfg_interval=interval, temperature=0.8)
    labels = torch.tensor([0, 3, 3, 9])
    out = sampler.sample(model, class_labels=labels, generator=torch.Generator().manual_seed(0), return_logprobs=True)
    assert out.image_token_ids.shape == (4, 16) and out.num_forwards == 16
    scales = cfg_scale_schedule(16, 3.0, schedule, interval)
    expected = two_forward_guided_logprobs(model, out.image_token_ids, scales, 0.8, class_labels=labels)
    torch.testing.assert_close(out.logprobs, expected, atol=1e-5, rtol=1e-5)
    # the trainer-side scorer agrees with both (one batched forward, [cond; uncond])
    with torch.no_grad():
        scored, _ = sampler.score(model, out.image_token_ids, class_labels=labels, guided=True)
    torch.testing.assert_close(scored, expected, atol=1e-5, rtol=1e-5)


def test_t2i_sampling_with_raw_captions():
    model = make_tiny_llamagen("t2i", num_condition_tokens=6, seed=2)
    generator = torch.Generator().manual_seed(0)
    embeds = torch.randn(3, 4, 16, generator=generator)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]])
    sampler = ImageTokenSampler(cfg_scale=2.0)
    out = sampler.sample(model, caption_embeds=embeds, caption_mask=mask, generator=generator, return_logprobs=True)
    assert out.image_token_ids.shape == (3, 16)
    fitted, fitted_mask = model.prepare_captions(embeds, mask)
    scales = sampler.guidance_scales(16)
    expected = two_forward_guided_logprobs(
        model, out.image_token_ids, scales, 1.0, caption_embeds=fitted, caption_mask=fitted_mask
    )
    torch.testing.assert_close(out.logprobs, expected, atol=1e-5, rtol=1e-5)


def test_conditional_score_is_the_plain_forward():
    model = make_tiny_llamagen("c2i", seed=3)
    tokens = torch.randint(0, 32, (2, 16))
    labels = torch.tensor([1, 2])
    logps, entropies = ImageTokenSampler(cfg_scale=4.0, temperature=2.0).score(
        model, tokens, class_labels=labels, compute_entropy=True
    )
    with torch.no_grad():
        logits = model(tokens[:, :-1], class_labels=labels).logits / 2.0
    expected = torch.log_softmax(logits, -1)
    torch.testing.assert_close(logps.detach(), expected.gather(-1, tokens[..., None])[..., 0])
    torch.testing.assert_close(entropies.detach(), -(expected.exp() * expected).sum(-1))


def test_ids_in_range_and_seeded():
    model = make_tiny_llamagen("c2i", vocab_size=24, grid_size=3, seed=4)
    sampler = ImageTokenSampler(cfg_scale=2.0, top_k=10, top_p=0.9)
    labels = torch.arange(8) % 10
    first = sampler.sample(model, class_labels=labels, generator=torch.Generator().manual_seed(7)).image_token_ids
    again = sampler.sample(model, class_labels=labels, generator=torch.Generator().manual_seed(7)).image_token_ids
    other = sampler.sample(model, class_labels=labels, generator=torch.Generator().manual_seed(8)).image_token_ids
    assert first.shape == (8, 9) and first.dtype == torch.long
    assert first.min() >= 0 and first.max() < 24
    assert torch.equal(first, again) and not torch.equal(first, other)


def reference_filter(logits, top_k, top_p):
    """Row by row: keep the top_k best, then the shortest prefix (by probability) whose mass reaches top_p."""
    out = torch.full_like(logits, float("-inf"))
    for r, row in enumerate(logits):
        order = sorted(range(len(row)), key=lambda i: -row[i].item())
        keep = order[:top_k]
        probs = torch.softmax(row[keep], 0)
        kept, mass = [], 0.0
        for i, p in zip(keep, probs.tolist()):
            kept.append(i)
            mass += p
            if mass >= top_p:
                break
        out[r, kept] = row[kept]
    return out


def test_filter_logits_matches_reference():
    logits = torch.randn(6, 20, generator=torch.Generator().manual_seed(0)) * 2
    for top_k, top_p in [(5, 1.0), (20, 0.7), (8, 0.5), (1, 0.9), (20, 0.05)]:
        torch.testing.assert_close(filter_logits(logits, top_k, top_p), reference_filter(logits, top_k, top_p))


def test_draws_follow_the_guided_filtered_distribution():
    # One token per image, so every row is an independent draw from the same distribution.
    model = make_tiny_llamagen("c2i", vocab_size=12, grid_size=1, lm_head_std=1.5, seed=5)
    sampler = ImageTokenSampler(cfg_scale=2.5, temperature=0.7, top_k=8, top_p=0.95)
    n = 6000
    out = sampler.sample(model, class_labels=torch.full((n,), 4), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        c = model(class_labels=torch.tensor([4])).logits[0, -1]
        u = model(class_labels=torch.tensor([10])).logits[0, -1]
    expected = filter_logits(((u + 2.5 * (c - u)) / 0.7)[None], 8, 0.95).softmax(-1)[0]
    counts = torch.bincount(out.image_token_ids[:, 0], minlength=12).float()
    assert counts[expected == 0].sum() == 0  # nothing outside top-k/top-p is ever drawn
    # within 4.5 binomial standard deviations everywhere
    std = (n * expected * (1 - expected)).sqrt()
    assert ((counts - n * expected).abs() <= 4.5 * std + 1).all(), (counts / n, expected)


def test_cfg_schedule_values():
    torch.testing.assert_close(cfg_scale_schedule(4, 3.0), torch.full((4,), 3.0))
    torch.testing.assert_close(cfg_scale_schedule(4, 3.0, "linear"), torch.tensor([1.5, 2.0, 2.5, 3.0]))
    torch.testing.assert_close(cfg_scale_schedule(4, 3.0, interval=2), torch.tensor([3.0, 3.0, 1.0, 1.0]))


def test_bad_sampler_inputs_name_the_field():
    with pytest.raises(ValueError, match="cfg_scale"):
        ImageTokenSampler(cfg_scale=0.5)
    with pytest.raises(ValueError, match="cfg_schedule"):
        ImageTokenSampler(cfg_schedule="cosine")
    with pytest.raises(ValueError, match="top_p"):
        ImageTokenSampler(top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        ImageTokenSampler(temperature=0.0)
    model = make_tiny_llamagen("c2i", num_classes=10)
    with pytest.raises(ValueError, match=r"class_labels.*\[0, 10\)"):
        ImageTokenSampler().sample(model, class_labels=torch.tensor([10]))
