import pytest
import torch
from torch import nn

from trl_ext.generation import MaskedDiffusionSampler, block_transfer_schedule, dream_transfer_schedule
from trl_ext.models import MaskedDiffusionAdapter
from trl_ext.testing import make_tiny_dream_lm, make_tiny_llada_lm


@pytest.fixture
def setup(tokenizer):
    model = make_tiny_dream_lm(tokenizer)
    adapter = MaskedDiffusionAdapter.from_model(model, tokenizer)
    prompts = tokenizer(["hi", "a longer prompt"], return_tensors="pt", padding=True)
    return model, adapter, prompts.input_ids, prompts.attention_mask


def reveal_counts(reveal_step, num_forwards):
    return [torch.bincount(row, minlength=num_forwards).tolist() for row in reveal_step]


@pytest.mark.parametrize("num_tokens,steps", [(16, 16), (16, 5), (7, 3), (32, 8)])
def test_dream_schedule_reveals_everything(num_tokens, steps):
    counts = dream_transfer_schedule(num_tokens, steps)
    assert len(counts) == steps and sum(counts) == num_tokens and min(counts) >= 0


@pytest.mark.parametrize("alg", ["maskgit_plus", "topk_margin", "entropy"])
def test_whole_canvas_reveals_exactly_the_scheduled_counts(setup, alg):
    model, adapter, ids, mask = setup
    sampler = MaskedDiffusionSampler(adapter, max_new_tokens=12, steps=5, alg=alg, temperature=1.0)
    out = sampler.sample(model, ids, mask, generator=torch.Generator().manual_seed(0))
    scheduled = [c for c in dream_transfer_schedule(12, 5) if c > 0]  # zero-count steps cost no forward
    assert out.num_forwards == len(scheduled)
    assert reveal_counts(out.reveal_step, out.num_forwards) == [scheduled, scheduled]
    assert (out.completion_ids != adapter.mask_token_id).all()


def test_blocks_decode_left_to_right_with_even_counts(setup):
    model, adapter, ids, mask = setup
    sampler = MaskedDiffusionSampler(adapter, max_new_tokens=12, steps=6, block_length=4, alg="maskgit_plus")
    out = sampler.sample(model, ids, mask)
    per_block = block_transfer_schedule(4, 2)
    assert reveal_counts(out.reveal_step, out.num_forwards) == [per_block * 3] * 2
    steps = out.reveal_step.view(2, 3, 4)
    assert (steps[:, :-1].amax(-1) < steps[:, 1:].amin(-1)).all()


def test_prompt_is_never_touched(setup):
    model, adapter, ids, mask = setup
    sampler = MaskedDiffusionSampler(adapter, max_new_tokens=6, alg="origin", temperature=1.0)
    # Capture every canvas the model sees: the prompt part must always equal the input prompt.
    seen = []
    handle = model.model.register_forward_pre_hook(lambda m, a, k: seen.append(k["input_ids"].clone()), with_kwargs=True)
    try:
        out = sampler.sample(model, ids, mask, generator=torch.Generator().manual_seed(1))
    finally:
        handle.remove()
    assert seen and all(torch.equal(canvas[:, : ids.size(1)], ids) for canvas in seen)
    assert (out.completion_ids != adapter.mask_token_id).all()


def test_topk_selection_matches_a_slow_reference(setup):
    model, adapter, ids, mask = setup
    sampler = MaskedDiffusionSampler(adapter, max_new_tokens=8, steps=4, alg="topk_margin")
    out = sampler.sample(model, ids, mask)
    # Slow reference for the first step: margins of every masked position, top-k of them.
    canvas = torch.cat([ids, torch.full((2, 8), adapter.mask_token_id)], 1)
    attn = torch.cat([mask, torch.ones(2, 8, dtype=torch.long)], 1)
    with torch.no_grad():
        probs = adapter.completion_logits(model, canvas, attn, 8).float().softmax(-1)
    top2 = probs.topk(2, -1).values
    margin = top2[..., 0] - top2[..., 1]
    first = [c for c in dream_transfer_schedule(8, 4) if c > 0][0]
    for row in range(2):
        expected = set(margin[row].topk(first).indices.tolist())
        assert set((out.reveal_step[row] == 0).nonzero().flatten().tolist()) == expected
        # Greedy decoding: the revealed tokens are the argmax at that step.
        for pos in expected:
            assert out.completion_ids[row, pos] == probs[row, pos].argmax()


def test_threshold_decoding_reveals_several_tokens_per_forward(setup):
    model, adapter, ids, mask = setup
    eager = MaskedDiffusionSampler(adapter, max_new_tokens=8, confidence_threshold=1e-9)
    out = eager.sample(model, ids, mask)
    assert out.num_forwards == 1 and out.tokens_per_forward == 8
    strict = MaskedDiffusionSampler(adapter, max_new_tokens=8, block_length=4, confidence_threshold=1.0)
    out = strict.sample(model, ids, mask)
    assert out.num_forwards == 8  # nothing passes the threshold: one token per step


def test_left_to_right_decoding_has_full_ar_ness(setup):
    model, adapter, ids, mask = setup
    out = MaskedDiffusionSampler(adapter, max_new_tokens=6, steps=6, block_length=1).sample(model, ids, mask)
    torch.testing.assert_close(out.ar_ness, torch.ones(2))


class EOSHead(nn.Module):
    """An LM head that always prefers EOS, to test stopping."""

    def __init__(self, vocab_size, eos):
        super().__init__()
        self.vocab_size, self.eos = vocab_size, eos

    def forward(self, hidden):
        logits = torch.zeros(*hidden.shape[:-1], self.vocab_size)
        logits[..., self.eos] = 10.0
        return logits


def test_stops_at_eos_and_masks_after_it(tokenizer):
    model = make_tiny_llada_lm(tokenizer)
    model.set_output_embeddings(EOSHead(len(tokenizer), tokenizer.eos_token_id))
    adapter = MaskedDiffusionAdapter.from_model(model, tokenizer)
    sampler = MaskedDiffusionSampler(
        adapter, max_new_tokens=8, block_length=2, steps=8, alg="maskgit_plus",
        eos_token_ids=[tokenizer.eos_token_id], pad_token_id=tokenizer.pad_token_id,
    )
    prompts = tokenizer(["x"], return_tensors="pt")
    out = sampler.sample(model, prompts.input_ids, prompts.attention_mask)
    # The first block reveals EOS at position 0; everything after is never decoded.
    assert out.num_forwards == 1
    assert out.completion_ids[0, 0] == tokenizer.eos_token_id
    assert (out.completion_ids[0, 2:] == tokenizer.pad_token_id).all()
    assert out.completion_mask.tolist() == [[1, 0, 0, 0, 0, 0, 0, 0]]


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"alg": "random"}, "alg"),
        ({"block_length": 5}, "block_length"),
        ({"block_length": 4, "steps": 3}, "steps"),
        ({"confidence_threshold": 1.5}, "confidence_threshold"),
        ({"alg": "origin", "block_length": 4}, "origin"),
        ({"top_p": 0.0}, "top_p"),
    ],
)
def test_bad_settings_name_the_field(setup, kwargs, field):
    _, adapter, _, _ = setup
    with pytest.raises(ValueError, match=field):
        MaskedDiffusionSampler(adapter, max_new_tokens=8, **kwargs)
