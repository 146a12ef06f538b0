"""
The native Dream and LLaDA classes against references we did not write: transformers' own Qwen2 run bidirectionally
(Dream) and a slow hand-written LLaDA block; padding never changes a real token's logits.
"""

import math

import pytest
import torch
from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

from trl_ext.models import MaskedDiffusionAdapter
from trl_ext.testing_dllm import write_dream_checkpoint, write_llada_checkpoint


def _left_pad(rows, pad_id):
    length = max(len(r) for r in rows)
    ids = torch.tensor([[pad_id] * (length - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (length - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


ROWS = [[11, 12, 13, 14, 15, 16, 17], [21, 22, 23], [31, 32, 33, 34, 35]]


@pytest.fixture(scope="module")
def dream(tmp_path_factory):
    path = write_dream_checkpoint(tmp_path_factory.mktemp("dream"), hidden_size=64, num_layers=3)
    return path, AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def llada(tmp_path_factory):
    path = write_llada_checkpoint(tmp_path_factory.mktemp("llada"), hidden_size=64, num_layers=3, n_kv_heads=2)
    return path, AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def test_dream_equals_transformers_qwen2_run_bidirectionally(dream):
    _, model = dream
    config = Qwen2Config(
        **{k: v for k, v in model.config.to_dict().items() if k not in ("model_type", "architectures")}
    )
    qwen = Qwen2ForCausalLM(config).eval()
    qwen.load_state_dict(model.state_dict(), strict=True)
    ids, mask = _left_pad(ROWS, model.config.pad_token_id)
    # Transformers' Qwen2 is bidirectional when given a 4-D additive mask; padding keys are excluded, and the
    # positions count real tokens only.
    mask4d, positions = MaskedDiffusionAdapter.attention_inputs(mask, torch.float32)
    with torch.no_grad():
        expected = qwen(input_ids=ids, attention_mask=mask4d, position_ids=positions).logits
        ours = model(input_ids=ids, attention_mask=mask).logits
        unpadded = model(input_ids=torch.tensor([ROWS[0]])).logits
        qwen_unpadded = qwen(input_ids=torch.tensor([ROWS[0]]), attention_mask=torch.zeros(1, 1, 7, 7)).logits
    real = mask.bool()
    torch.testing.assert_close(ours[real], expected[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(unpadded, qwen_unpadded, atol=1e-5, rtol=1e-5)
    # Sanity: the causal Qwen2 differs, so the comparison can fail.
    with torch.no_grad():
        causal = qwen(input_ids=torch.tensor([ROWS[0]])).logits
    assert (causal - unpadded).abs().max() > 1e-2


def _slow_llada(model, ids):
    """LLaDA's block written out op by op (one unpadded row), from the config and the state dict alone."""
    c, sd = model.config, {k: v.double() for k, v in model.state_dict().items()}
    d, heads, kv = c.d_model, c.n_heads, c.n_kv_heads
    hd = d // heads
    x = sd["model.transformer.wte.weight"][ids]  # (T, d)
    length = x.size(0)

    def rms(h, w):
        return w * (h / torch.sqrt((h * h).mean(-1, keepdim=True) + c.rms_norm_eps))

    def rope(v):  # v: (heads, T, hd)
        out = torch.empty_like(v)
        for pos in range(length):
            for i in range(hd // 2):
                angle = pos / c.rope_theta ** (2 * i / hd)
                a, b = v[:, pos, i], v[:, pos, i + hd // 2]
                out[:, pos, i] = a * math.cos(angle) - b * math.sin(angle)
                out[:, pos, i + hd // 2] = b * math.cos(angle) + a * math.sin(angle)
        return out

    for n in range(c.n_layers):
        p = f"model.transformer.blocks.{n}."
        h = rms(x, sd[p + "attn_norm.weight"])
        q = (h @ sd[p + "q_proj.weight"].T).view(length, heads, hd).transpose(0, 1)
        k = (h @ sd[p + "k_proj.weight"].T).view(length, kv, hd).transpose(0, 1)
        v = (h @ sd[p + "v_proj.weight"].T).view(length, kv, hd).transpose(0, 1)
        q, k = rope(q), rope(k)
        heads_out = []
        for head in range(heads):
            kh, vh = k[head // (heads // kv)], v[head // (heads // kv)]
            weights = torch.softmax(q[head] @ kh.T / math.sqrt(hd), dim=-1)  # bidirectional: no mask
            heads_out.append(weights @ vh)
        att = torch.cat(heads_out, dim=-1)
        x = x + att @ sd[p + "attn_out.weight"].T
        h = rms(x, sd[p + "ff_norm.weight"])
        gate, up = h @ sd[p + "ff_proj.weight"].T, h @ sd[p + "up_proj.weight"].T
        x = x + (gate * torch.sigmoid(gate) * up) @ sd[p + "ff_out.weight"].T
    x = rms(x, sd["model.transformer.ln_f.weight"])
    return x @ sd["model.transformer.ff_out.weight"].T


def test_llada_equals_a_slow_reference_of_its_block(llada):
    path, model = llada
    ids = torch.tensor(ROWS[0])
    reference = _slow_llada(model, ids)  # float64
    with torch.no_grad():
        fp32 = model(input_ids=ids[None]).logits[0]
        fp64 = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float64).eval()(input_ids=ids[None]).logits[0]
    # RoPE angles are float32 by design (LLaDA's `rope_full_precision`), so even a float64 model is not exact.
    torch.testing.assert_close(fp64, reference, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fp32.double(), reference, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", ["dream", "llada"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_padding_never_changes_real_logits(request, family, dtype):
    path, _ = request.getfixturevalue(family)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).eval()
    ids, mask = _left_pad(ROWS, model.config.pad_token_id)
    tolerance = 1e-10 if dtype == torch.float64 else 1e-4  # float32: reduction order only
    with torch.no_grad():
        padded = model(input_ids=ids, attention_mask=mask).logits
        for i, row in enumerate(ROWS):
            alone = model(input_ids=torch.tensor([row])).logits[0]
            torch.testing.assert_close(padded[i, -len(row) :], alone, atol=tolerance, rtol=tolerance)


@pytest.mark.parametrize("family", ["dream", "llada"])
def test_attention_implementations_agree(request, family):
    path, model = request.getfixturevalue(family)
    ids, mask = _left_pad(ROWS, model.config.pad_token_id)
    eager = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        a = eager(input_ids=ids, attention_mask=mask).logits
        b = model(input_ids=ids, attention_mask=mask).logits
    assert model.config._attn_implementation == "sdpa"
    torch.testing.assert_close(a[mask.bool()], b[mask.bool()], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("family", ["dream", "llada"])
def test_adapter_scores_padded_and_unpadded_prompts_alike(request, family):
    _, model = request.getfixturevalue(family)
    adapter = MaskedDiffusionAdapter.from_model(model)
    assert adapter.native and adapter.shift_logits == (family == "dream")
    m = adapter.mask_token_id
    rows = [r + [m, m, m] for r in ROWS]
    ids, mask = _left_pad(rows, model.config.pad_token_id)
    with torch.no_grad():
        batch = adapter.completion_logits(model, ids, mask, 3)
        for i, row in enumerate(rows):
            alone = adapter.completion_logits(model, torch.tensor([row]), torch.ones(1, len(row)), 3)
            torch.testing.assert_close(batch[i], alone[0], atol=1e-4, rtol=1e-4)
