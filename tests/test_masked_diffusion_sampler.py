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


# ---------------------------------------------------------------------------------------------------------------------
# Termination: the sampler must end whatever the model says.
# ---------------------------------------------------------------------------------------------------------------------
class MaskLovingHead(nn.Module):
    """An output layer whose argmax is the mask token at every position (a tiny model after a few RL steps can be
    this degenerate); the other tokens keep a little probability so sampled decoding has something to draw."""

    def __init__(self, vocab_size, mask_id):
        super().__init__()
        self.vocab_size, self.mask_id = vocab_size, mask_id
        self.weight = nn.Parameter(torch.zeros(vocab_size, 1))

    def forward(self, hidden):
        logits = hidden[..., :1].new_zeros(*hidden.shape[:-1], self.vocab_size) + 0.01 * hidden.sum(-1, keepdim=True)
        logits[..., self.mask_id] = 50.0
        return logits


MODES = {
    "whole-canvas": dict(max_new_tokens=12, steps=12),
    "whole-canvas-fewer-steps": dict(max_new_tokens=12, steps=5),
    "blocks": dict(max_new_tokens=12, steps=6, block_length=4),
    "threshold": dict(max_new_tokens=12, block_length=4, confidence_threshold=0.9),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("builder", [make_tiny_dream_lm, make_tiny_llada_lm])
@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("alg", ["origin", "maskgit_plus", "topk_margin", "entropy"])
@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_model_that_always_proposes_the_mask_token_still_finishes(tokenizer, builder, mode, alg, temperature):
    settings = MODES[mode]
    if alg == "origin" and ("block_length" in settings):
        pytest.skip("origin decodes the whole canvas only")
    model = builder(tokenizer)
    model.set_output_embeddings(MaskLovingHead(len(tokenizer), tokenizer.mask_token_id))
    adapter = MaskedDiffusionAdapter.from_model(model, tokenizer)
    sampler = MaskedDiffusionSampler(adapter, alg=alg, temperature=temperature, **settings)
    prompts = tokenizer(["hi", "a longer prompt"], return_tensors="pt", padding=True)
    out = sampler.sample(model, prompts.input_ids, prompts.attention_mask, generator=torch.Generator().manual_seed(0))
    assert (out.completion_ids != tokenizer.mask_token_id).all()
    assert out.num_forwards <= settings.get("steps", settings["max_new_tokens"])


def test_suppressed_ids_are_never_proposed(setup, tokenizer):
    model, adapter, ids, mask = setup
    banned = tokenizer.convert_tokens_to_ids(["a", "e"])
    sampler = MaskedDiffusionSampler(adapter, max_new_tokens=16, temperature=5.0, suppress_token_ids=banned)
    out = sampler.sample(model, ids, mask, generator=torch.Generator().manual_seed(0))
    assert not torch.isin(out.completion_ids, torch.tensor(banned + [adapter.mask_token_id])).any()
    with pytest.raises(ValueError, match="include an EOS id"):
        MaskedDiffusionSampler(adapter, eos_token_ids=[banned[0]], suppress_token_ids=banned)


# ---------------------------------------------------------------------------------------------------------------------
# Dream's `diffusion_generate`, written out slowly (one row, greedy) from its published algorithm.
# ---------------------------------------------------------------------------------------------------------------------
def dream_reference(model, prompt, mask_id, length, steps, alg, eps=1e-3, generator=None):
    """The completion, and the number of steps Dream runs before no mask is left."""
    x = torch.tensor([prompt + [mask_id] * length])
    grid = torch.linspace(1, eps, steps + 1)
    steps_until_done = steps
    for i in range(steps):
        masked = (x == mask_id)[0]
        if not masked.any():
            steps_until_done = min(steps_until_done, i)
        with torch.no_grad():
            logits = model(input_ids=x).logits[0].float()
        logits = torch.cat([logits[:1], logits[:-1]])  # the logit at i - 1 scores token i
        logits[:, mask_id] = float("-inf")  # the mask token is never a proposal
        positions = masked.nonzero().flatten().tolist()
        t, s = grid[i], grid[i + 1]
        if alg == "origin":
            p = 1 - s / t if i < steps - 1 else 1
            draws = torch.rand(len(positions), generator=generator) < p
            for pos, draw in zip(positions, draws.tolist()):
                if draw:
                    x[0, pos] = logits[pos].argmax()
            continue
        conf = {}
        for pos in positions:
            probs = logits[pos].softmax(-1)
            if alg == "maskgit_plus":
                conf[pos] = probs.max().item()
            elif alg == "topk_margin":
                top = probs.topk(2).values
                conf[pos] = (top[0] - top[1]).item()
            else:
                conf[pos] = (probs * torch.log(probs + 1e-10)).sum().item()
        count = int(torch.tensor(float(len(positions))) * (1 - s / t)) if i < steps - 1 else len(positions)
        for pos in sorted(conf, key=lambda q: (-conf[q], q))[:count]:
            x[0, pos] = logits[pos].argmax()
    return x[0, len(prompt) :].tolist(), steps_until_done


@pytest.mark.parametrize("alg", ["origin", "maskgit_plus", "topk_margin", "entropy"])
@pytest.mark.parametrize("length,steps", [(12, 12), (12, 5), (8, 16)])
def test_greedy_whole_canvas_equals_dreams_algorithm(tokenizer, alg, length, steps):
    model = make_tiny_dream_lm(tokenizer, hidden_size=64, seed=3)
    adapter = MaskedDiffusionAdapter.from_model(model, tokenizer)
    prompt = tokenizer("def f(x):").input_ids
    expected, dream_steps = dream_reference(
        model, prompt, adapter.mask_token_id, length, steps, alg, generator=torch.Generator().manual_seed(7)
    )
    sampler = MaskedDiffusionSampler(adapter, max_new_tokens=length, steps=steps, alg=alg, temperature=0.0)
    out = sampler.sample(
        model, torch.tensor([prompt]), torch.ones(1, len(prompt), dtype=torch.long),
        generator=torch.Generator().manual_seed(7),
    )  # fmt: skip
    assert out.completion_ids[0].tolist() == expected
    if alg == "origin":  # Dream runs (and draws for) every step, the first included, even when steps == length
        assert out.num_forwards == dream_steps
