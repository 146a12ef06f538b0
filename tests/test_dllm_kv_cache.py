"""
Fast-dLLM-style KV caching and parallel decoding in `MaskedDiffusionSampler`, checked against the uncached sampler
and slow reference computations, for both families (Dream: logits shifted by one; LLaDA: unshifted).
"""

import pytest
import torch

from trl_ext.generation import MaskedDiffusionSampler
from trl_ext.generation.masked_diffusion import _CachedWindow, factor_rule_counts
from trl_ext.models import MaskedDiffusionAdapter
from trl_ext.testing import make_tiny_causal_lm, make_tiny_dream_lm, make_tiny_llada_lm

BUILDERS = {"dream": make_tiny_dream_lm, "llada": make_tiny_llada_lm}
SETTINGS = {
    "whole-canvas": dict(max_new_tokens=16, steps=16),
    "whole-canvas-fewer-steps": dict(max_new_tokens=16, steps=6),
    "blocks": dict(max_new_tokens=16, steps=8, block_length=4),
    "threshold": dict(max_new_tokens=16, block_length=8, confidence_threshold=0.02),
    "factor": dict(max_new_tokens=16, block_length=8, threshold_factor=1.05),
}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def family(request):
    from trl_ext.testing import make_tokenizer

    tokenizer = make_tokenizer()
    model = BUILDERS[request.param](tokenizer).eval()
    adapter = MaskedDiffusionAdapter.from_model(model, tokenizer)
    # Left padding: the rows have different prompt lengths.
    prompt = tokenizer(["hi", "a much longer prompt here", "abc"], return_tensors="pt", padding=True)
    assert (prompt.attention_mask[:, 0] == 0).any()
    return request.param, model, adapter, prompt.input_ids, prompt.attention_mask


def _early_eos(model, adapter, ids, mask, **options) -> int:
    """A token these settings put in the middle of the first row: used as EOS, that row stops early (the rows are
    independent, so the draws up to that point are the same with and without it)."""
    out = _run(model, adapter, ids, mask, **{"max_new_tokens": 16, **options})
    return int(out.completion_ids[0, 5])


def _run(model, adapter, ids, mask, seed=0, **kwargs):
    return MaskedDiffusionSampler(adapter, **kwargs).sample(model, ids, mask, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_refreshing_every_step_equals_the_uncached_sampler(family, setting, temperature):
    _, model, adapter, ids, mask = family
    options = dict(SETTINGS[setting], temperature=temperature)
    options.update(eos_token_ids=[_early_eos(model, adapter, ids, mask, **options)], pad_token_id=0)
    reference = _run(model, adapter, ids, mask, **options)
    assert (reference.completion_mask.sum(-1) < 16).any(), "no row stopped early: the EOS case is not exercised"
    for kv_cache in ("prefix", "dual"):
        cached = _run(model, adapter, ids, mask, kv_cache=kv_cache, cache_refresh=1, **options)
        assert torch.equal(cached.completion_ids, reference.completion_ids), kv_cache
        assert torch.equal(cached.reveal_step, reference.reveal_step), kv_cache
        assert cached.num_forwards == reference.num_forwards
        assert cached.cache_hit_fraction == 0.0  # every step was a full forward


def test_cached_keys_and_values_equal_a_fresh_forward_at_a_refresh(family):
    """At a refresh the cache holds exactly the keys/values a fresh full forward computes for the positions outside
    the window, in the cache's order; a step without a refresh leaves them untouched."""
    from transformers import DynamicCache

    _, model, adapter, ids, mask = family
    length, mask_id = 12, adapter.mask_token_id
    canvas = torch.cat([ids, ids.new_full((ids.size(0), length), mask_id)], 1)
    canvas[:, ids.size(1) : ids.size(1) + 4] = 7  # the first block is decoded
    full_mask = torch.cat([mask, mask.new_ones(ids.size(0), length)], 1)
    backbone = model.model
    for mode in ("prefix", "dual"):
        sampler = MaskedDiffusionSampler(adapter, max_new_tokens=length, block_length=4, steps=6, kv_cache=mode)
        window = _CachedWindow(sampler, full_mask, ids.size(1), 4, 8, length)
        window.logits(model, canvas)
        fresh = DynamicCache()
        positions = (full_mask.cumsum(-1) - 1).clamp(min=0)
        backbone(input_ids=canvas, attention_mask=full_mask, position_ids=positions, cache=fresh, use_cache=True)
        shift = 1 if adapter.shift_logits else 0
        start = ids.size(1) + 4 - shift
        end = ids.size(1) + 8 if mode == "dual" else canvas.size(1)
        outside = list(range(0, start)) + list(range(end, canvas.size(1)))
        assert window.outside.tolist() == outside
        for ours, theirs in zip(window.cache.layers, fresh.layers):
            torch.testing.assert_close(ours.keys, theirs.keys[:, :, outside], rtol=0, atol=0)
            torch.testing.assert_close(ours.values, theirs.values[:, :, outside], rtol=0, atol=0)
        kept = [layer.keys.clone() for layer in window.cache.layers]
        canvas[:, ids.size(1) + 5] = 9  # a step reveals a token in the block
        window.logits(model, canvas)
        assert window.computed == end - start
        assert all(torch.equal(a, layer.keys) for a, layer in zip(kept, window.cache.layers))


def test_window_logits_equal_a_full_forward_on_an_unchanged_canvas(family):
    """Right after a refresh, with nothing revealed since, the window's logits equal the full forward's: the cache
    is then exact, so any difference would be a bug in positions, mask order or the shift."""
    _, model, adapter, ids, mask = family
    length, mask_id = 12, adapter.mask_token_id
    canvas = torch.cat([ids, ids.new_full((ids.size(0), length), mask_id)], 1)
    full_mask = torch.cat([mask, mask.new_ones(ids.size(0), length)], 1)
    reference = adapter.completion_logits(model, canvas, full_mask, length)[:, 4:8]
    for mode in ("prefix", "dual"):
        sampler = MaskedDiffusionSampler(adapter, max_new_tokens=length, block_length=4, steps=6, kv_cache=mode)
        window = _CachedWindow(sampler, full_mask, ids.size(1), 4, 8, length)
        torch.testing.assert_close(window.logits(model, canvas), reference, rtol=0, atol=0)  # the refresh
        torch.testing.assert_close(window.logits(model, canvas), reference, rtol=1e-4, atol=1e-5)  # from the cache


@pytest.mark.parametrize("kv_cache", ["prefix", "dual"])
def test_approximate_cache_decodes_everything_with_fewer_positions(family, kv_cache):
    _, model, adapter, ids, mask = family
    options = dict(max_new_tokens=16, block_length=4, steps=16, temperature=1.0)
    reference = _run(model, adapter, ids, mask, **options)
    cached = _run(model, adapter, ids, mask, kv_cache=kv_cache, **options)
    assert not (cached.completion_ids == adapter.mask_token_id).any()
    assert cached.num_forwards == reference.num_forwards == 16  # the schedule, not the cache, sets the forwards
    # 4 blocks of 4 steps: one full forward per block, then windows (prefix: block + suffix; dual: the block).
    prompt_len, canvas = ids.size(1), ids.size(1) + 16
    shift = 1 if adapter.shift_logits else 0
    computed = 0
    for block in range(4):
        start = prompt_len + 4 * block - shift
        window = (prompt_len + 4 * block + 4 if kv_cache == "dual" else canvas) - start
        computed += canvas + 3 * window
    assert cached.cache_hit_fraction == pytest.approx(1 - computed / (16 * canvas))
    fewer = _run(model, adapter, ids, mask, kv_cache=kv_cache, cache_refresh=2, **options)
    assert 0 < fewer.cache_hit_fraction < cached.cache_hit_fraction


def test_factor_rule_matches_a_slow_reference():
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        probs = torch.rand(4, 9, generator=generator) ** 0.3
        eligible = torch.rand(4, 9, generator=generator) < 0.7
        scores = probs.masked_fill(~eligible, float("-inf"))
        factor = float(torch.rand(1, generator=generator) * 3)
        expected = []
        for row in scores.tolist():
            ordered = sorted((p for p in row if p != float("-inf")), reverse=True)
            best = max([n for n in range(1, len(ordered) + 1) if (n + 1) * (1 - ordered[n - 1]) < factor], default=0)
            # the condition must hold for every n up to the one taken (c_n falls with n)
            assert all((n + 1) * (1 - ordered[n - 1]) < factor for n in range(1, best + 1))
            expected.append(max(1, min(best, len(ordered))) if ordered else 1)
        assert factor_rule_counts(scores, factor).tolist() == expected


def test_factor_rule_decodes_in_parallel_and_stops_per_row(family):
    _, model, adapter, ids, mask = family
    eos = _early_eos(model, adapter, ids, mask, block_length=8, threshold_factor=50.0)
    out = _run(
        model, adapter, ids, mask, max_new_tokens=16, block_length=8, threshold_factor=50.0, eos_token_ids=[eos]
    )
    assert out.num_forwards < 16  # several tokens per forward
    one = _run(model, adapter, ids, mask, max_new_tokens=16, block_length=8, threshold_factor=1e-6)
    assert one.num_forwards == 16  # a factor no token meets still reveals one per step
    # Each row alone decodes the same as in the batch (left padding, per-row stopping).
    for row in range(ids.size(0)):
        keep = mask[row].bool()
        alone = _run(
            model, adapter, ids[row : row + 1, keep], mask[row : row + 1, keep], max_new_tokens=16, block_length=8,
            threshold_factor=50.0, eos_token_ids=[eos],
        )  # fmt: skip
        n = int(out.completion_mask[row].sum())
        assert torch.equal(alone.completion_ids[0, :n], out.completion_ids[row, :n])


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"kv_cache": "full"}, "kv_cache"),
        ({"kv_cache": "prefix", "cache_refresh": 0}, "cache_refresh"),
        ({"threshold_factor": 0.0}, "threshold_factor"),
        ({"threshold_factor": 1.0, "confidence_threshold": 0.9}, "threshold_factor"),
        ({"kv_cache": "dual", "alg": "origin"}, "origin"),
    ],
)
def test_bad_cache_settings_name_the_field(family, kwargs, field):
    _, _, adapter, _, _ = family
    with pytest.raises(ValueError, match=field):
        MaskedDiffusionSampler(adapter, max_new_tokens=8, **kwargs)


def test_a_model_without_cache_support_is_refused(tokenizer):
    model = make_tiny_causal_lm(tokenizer)
    adapter = MaskedDiffusionAdapter(mask_token_id=tokenizer.mask_token_id or 3, shift_logits=True)
    prompt = tokenizer(["hi"], return_tensors="pt")
    with pytest.raises(ValueError, match="kv_cache"):
        _run(model, adapter, prompt.input_ids, prompt.attention_mask, max_new_tokens=4, kv_cache="prefix")


def test_rollout_benchmark_runs_every_setting():
    """`benchmarks/dllm_rollouts.py` (what the README's rollout table comes from) runs all six settings on a short shape."""
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    command = [sys.executable, os.path.join(root, "benchmarks", "dllm_rollouts.py"), "--batch", "2", "--prompt", "8"]
    command += ["--completion", "16", "--block_length", "8"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": root})
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| (")]
    assert [row[3] for row in rows] == list("abcdew")
    assert rows[0].endswith("| 1.000 | 1.00x |")  # the baseline agrees with itself
    whole = rows[-1].split("|")
    assert float(whole[3]) > 0.9 and float(whole[4]) == 0.0  # one forward per token, nothing cached
