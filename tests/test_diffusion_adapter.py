import pytest
import torch
import torch.nn.functional as F

from trl_ext.models import MaskedDiffusionAdapter
from trl_ext.testing import make_tiny_causal_lm, make_tiny_dream_lm, make_tiny_llada_lm, make_tokenizer

BUILDERS = {"dream": make_tiny_dream_lm, "llada": make_tiny_llada_lm}


def full_logits(model, ids, attention_mask):
    mask, pos = MaskedDiffusionAdapter.attention_inputs(attention_mask, torch.float32)
    return model(input_ids=ids, attention_mask=mask, position_ids=pos).logits


@pytest.mark.parametrize("family", ["dream", "llada"])
def test_detects_family_and_mask_token(tokenizer, family):
    model = BUILDERS[family](tokenizer)
    adapter = MaskedDiffusionAdapter.from_model(model, tokenizer)
    assert adapter.mask_token_id == tokenizer.mask_token_id
    assert adapter.shift_logits == (family == "dream")


@pytest.mark.parametrize("family", ["dream", "llada"])
def test_attention_is_bidirectional_and_padding_invariant(tokenizer, family):
    model = BUILDERS[family](tokenizer)
    torch.manual_seed(0)
    ids = torch.randint(0, 250, (2, 9))
    attn = torch.ones_like(ids)
    attn[1, :4] = 0
    out = full_logits(model, ids, attn)
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 250
    # A causal model could not see the last token from position 5.
    assert (full_logits(model, changed, attn)[:, 5] - out[:, 5]).abs().max() > 1e-4
    unpadded = full_logits(model, ids[1:, 4:], torch.ones(1, 5, dtype=torch.long))
    torch.testing.assert_close(out[1, 4:], unpadded[0], atol=1e-5, rtol=1e-5)
    assert not out.isnan().any()


@pytest.mark.parametrize("family", ["dream", "llada"])
def test_completion_logits_and_scores_follow_the_shift(tokenizer, family):
    model = BUILDERS[family](tokenizer)
    adapter = MaskedDiffusionAdapter.from_model(model, tokenizer)
    torch.manual_seed(1)
    ids = torch.randint(0, 250, (2, 10))
    attn = torch.ones_like(ids)
    attn[0, :2] = 0
    with torch.no_grad():
        logits = full_logits(model, ids, attn)
        got = adapter.completion_logits(model, ids, attn, num_completion=4)
        # Obviously-right reading of the convention: token j is scored by logit j-1 (Dream) or j (LLaDA).
        expected = logits[:, 5:9] if family == "dream" else logits[:, 6:10]
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)

        rows = torch.tensor([0, 1, 1])
        positions = torch.tensor([7, 6, 9])
        targets = ids[rows, positions]
        logps, entropy = adapter.score_tokens(model, ids, attn, rows, positions, targets)
        read = positions - 1 if family == "dream" else positions
        ref = F.log_softmax(logits[rows, read].double(), -1)
        torch.testing.assert_close(logps.double(), ref.gather(-1, targets[:, None]).squeeze(-1), atol=1e-5, rtol=0)
        torch.testing.assert_close(entropy.double(), -(ref.exp() * ref).sum(-1), atol=1e-5, rtol=0)


def test_causal_model_is_refused_with_a_clear_error(tokenizer):
    with pytest.raises(ValueError, match="diffusion_type"):
        MaskedDiffusionAdapter.from_model(make_tiny_causal_lm(tokenizer), tokenizer)
    # Declaring the family explicitly is the documented way out.
    adapter = MaskedDiffusionAdapter.from_model(make_tiny_causal_lm(tokenizer), tokenizer, diffusion_type="dream")
    assert adapter.shift_logits


def test_missing_mask_token_is_refused_with_a_clear_error(tokenizer):
    bare = make_tokenizer(with_mask_token=False)
    model = make_tiny_dream_lm(tokenizer)
    model.config.mask_token_id = None
    with pytest.raises(ValueError, match="mask_token_id"):
        MaskedDiffusionAdapter.from_model(model, bare)
    with pytest.raises(ValueError, match="outside the model's vocabulary"):
        MaskedDiffusionAdapter.from_model(model, bare, mask_token_id=10_000)


def test_family_survives_save_and_reload(tokenizer, tmp_path):
    from transformers import AutoModelForCausalLM

    make_tiny_dream_lm(tokenizer).save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    adapter = MaskedDiffusionAdapter.from_model(reloaded, tokenizer)
    assert adapter.shift_logits and adapter.mask_token_id == tokenizer.mask_token_id
