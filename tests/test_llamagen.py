"""LlamaGen on the HF stack: numerics against a direct re-implementation, KV cache, converters, VQ tokenizer."""

import argparse
import math

import pytest
import torch
import torch.nn.functional as F
from transformers import JanusVQVAE

from trl_ext.models.llamagen import (
    LlamaGenConfig,
    LlamaGenForImageGeneration,
    LlamaGenKVCache,
    check_image_tokenizer,
    decode_image_tokens,
    encode_images,
    llamagen_vq_config,
    pixels_to_pil,
)
from trl_ext.models.llamagen.convert import (
    convert_llamagen_gpt_state_dict,
    convert_llamagen_vq_state_dict,
    llamagen_gpt_config_from_state_dict,
    llamagen_vq_config_from_state_dict,
)
from trl_ext.models.llamagen.convert import (
    main as convert_main,
)
from trl_ext.testing_image import (
    make_llamagen_gpt_state_dict,
    make_llamagen_vq_state_dict,
    make_tiny_llamagen,
    make_tiny_vq,
)


# ----------------------------------------------------------------------------------------------------------------
# A direct re-implementation of LlamaGen's GPT and VQ decoder on raw (LlamaGen-named) state dicts: explicit loops,
# complex-number rotations and a hand-written softmax attention, independent of the code under test.
# ----------------------------------------------------------------------------------------------------------------
def reference_rotation(num_cond: int, grid: int, head_dim: int, theta: float = 10000.0) -> torch.Tensor:
    """Complex rotations `(num_cond + grid**2, head_dim // 2)`: 0 at condition positions (LlamaGen zeroes them)."""
    quarter, half = head_dim // 4, head_dim // 2
    rot = torch.zeros(num_cond + grid * grid, half, dtype=torch.complex64)
    for i in range(grid):
        for j in range(grid):
            for m in range(quarter):
                freq = theta ** (-(2 * m) / half)
                rot[num_cond + i * grid + j, m] = complex(math.cos(i * freq), math.sin(i * freq))
                rot[num_cond + i * grid + j, quarter + m] = complex(math.cos(j * freq), math.sin(j * freq))
    return rot


def reference_gpt_logits(sd, n_head, tokens, cond, grid, caption_mask=None, n_kv_head=None):
    """LlamaGen `Transformer.forward` in training mode (no dropout): logits `[:, cls_token_num - 1:]`."""
    n_kv_head = n_kv_head or n_head
    if "cls_embedding.embedding_table.weight" in sd:
        h = sd["cls_embedding.embedding_table.weight"][cond][:, None]
    else:
        x = cond @ sd["cls_embedding.cap_proj.fc1.weight"].T
        x = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
        h = x @ sd["cls_embedding.cap_proj.fc2.weight"].T
    num_cond = h.shape[1]
    h = torch.cat([h, sd["tok_embeddings.weight"][tokens]], 1)
    batch, length, dim = h.shape
    head_dim = dim // n_head
    rot = reference_rotation(num_cond, grid, head_dim)[:length]
    allowed = torch.tril(torch.ones(length, length, dtype=torch.bool)).expand(batch, -1, -1).clone()
    if caption_mask is not None:
        allowed[:, :, :num_cond] &= caption_mask.bool()[:, None, :]
        allowed |= torch.eye(length, dtype=torch.bool)

    def rms(x, w):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-5) * w

    def rotate(x):  # (B, L, H, D)
        c = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2).contiguous())
        return torch.view_as_real(c * rot[None, :, None]).flatten(3)

    layers = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("layers."))
    for i in range(layers):
        p = f"layers.{i}."
        x = rms(h, sd[p + "attention_norm.weight"])
        qkv = x @ sd[p + "attention.wqkv.weight"].T
        q, k, v = qkv.split([dim, n_kv_head * head_dim, n_kv_head * head_dim], -1)
        q = rotate(q.view(batch, length, n_head, head_dim))
        k = rotate(k.view(batch, length, n_kv_head, head_dim)).repeat_interleave(n_head // n_kv_head, 2)
        v = v.view(batch, length, n_kv_head, head_dim).repeat_interleave(n_head // n_kv_head, 2)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(head_dim)
        scores = scores.masked_fill(~allowed[:, None], float("-inf"))
        out = torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v).reshape(batch, length, dim)
        h = h + out @ sd[p + "attention.wo.weight"].T
        x = rms(h, sd[p + "ffn_norm.weight"])
        gate = x @ sd[p + "feed_forward.w1.weight"].T
        h = (
            h
            + (gate * torch.sigmoid(gate) * (x @ sd[p + "feed_forward.w3.weight"].T))
            @ sd[p + "feed_forward.w2.weight"].T
        )
    return (rms(h, sd["norm.weight"]) @ sd["output.weight"].T)[:, num_cond - 1 :]


def reference_vq_decode(sd, codes, grid):
    """LlamaGen `VQModel.decode_code` on a raw state dict."""

    def conv(x, name, padding):
        return F.conv2d(x, sd[f"{name}.weight"], sd[f"{name}.bias"], padding=padding)

    def norm(x, name):
        return F.group_norm(x, 32, sd[f"{name}.weight"], sd[f"{name}.bias"], eps=1e-6)

    def swish(x):
        return x * torch.sigmoid(x)

    def res(x, name):
        h = conv(swish(norm(x, f"{name}.norm1")), f"{name}.conv1", 1)
        h = conv(swish(norm(h, f"{name}.norm2")), f"{name}.conv2", 1)
        return (conv(x, f"{name}.nin_shortcut", 0) if f"{name}.nin_shortcut.weight" in sd else x) + h

    def attn(x, name):
        h = norm(x, f"{name}.norm")
        b, c, hh, ww = x.shape
        q, k, v = (conv(h, f"{name}.{part}", 0).reshape(b, c, -1) for part in "qkv")
        weights = torch.softmax(q.transpose(1, 2) @ k / math.sqrt(c), dim=-1)  # (b, query, key)
        out = (v @ weights.transpose(1, 2)).reshape(b, c, hh, ww)
        return x + conv(out, f"{name}.proj_out", 0)

    codebook = sd["quantize.embedding.weight"]
    codebook = codebook / codebook.norm(dim=-1, keepdim=True)
    z = codebook[codes].reshape(codes.shape[0], grid, grid, -1).permute(0, 3, 1, 2)
    h = conv(conv(z, "post_quant_conv", 0), "decoder.conv_in", 1)
    h = res(attn(res(h, "decoder.mid.0"), "decoder.mid.1"), "decoder.mid.2")
    levels = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("decoder.conv_blocks."))
    for n in range(levels):
        blocks = 1 + max(int(k.split(".")[4]) for k in sd if k.startswith(f"decoder.conv_blocks.{n}.res."))
        for j in range(blocks):
            h = res(h, f"decoder.conv_blocks.{n}.res.{j}")
            if f"decoder.conv_blocks.{n}.attn.{j}.q.weight" in sd:
                h = attn(h, f"decoder.conv_blocks.{n}.attn.{j}")
        if n != levels - 1:
            h = conv(F.interpolate(h, scale_factor=2.0, mode="nearest"), f"decoder.conv_blocks.{n}.upsample.conv", 1)
    return conv(swish(norm(h, "decoder.norm_out")), "decoder.conv_out", 1)


def reference_vq_encode(sd, pixels):
    """LlamaGen's nearest-code search: cosine similarity between the normalised latent and normalised codes."""

    def conv(x, name, padding=1):
        return F.conv2d(x, sd[f"{name}.weight"], sd[f"{name}.bias"], padding=padding)

    vq = JanusVQVAE(llamagen_vq_config_from_state_dict(sd, image_size=pixels.shape[-1]))
    vq.load_state_dict(convert_llamagen_vq_state_dict(sd, vq.config))
    z = conv(vq.encoder(pixels), "quant_conv", 0)  # the encoder itself is checked by decode; the search is the point
    z = F.normalize(z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]), dim=-1)
    codebook = F.normalize(sd["quantize.embedding.weight"], dim=-1)
    return torch.cdist(z, codebook).argmin(-1).view(pixels.shape[0], -1)


def _config_for(sd, condition_type, grid=4, n_head=4):
    dim = sd["tok_embeddings.weight"].shape[1]
    return LlamaGenConfig(
        hidden_size=dim,
        num_hidden_layers=1 + max(int(k.split(".")[1]) for k in sd if k.startswith("layers.")),
        num_attention_heads=n_head,
        num_key_value_heads=(sd["layers.0.attention.wqkv.weight"].shape[0] // (dim // n_head) - n_head) // 2,
        vocab_size=sd["tok_embeddings.weight"].shape[0],
        intermediate_size=sd["layers.0.feed_forward.w1.weight"].shape[0],
        condition_type=condition_type,
        num_classes=10,
        caption_dim=16,
        num_condition_tokens=1 if condition_type == "c2i" else 120,
        grid_size=grid,
    )


def _converted(sd, condition_type, **kwargs):
    config = _config_for(sd, condition_type, **kwargs)
    model = LlamaGenForImageGeneration(config).eval()
    model.load_state_dict(convert_llamagen_gpt_state_dict(sd, config))
    return model


# ----------------------------------------------------------------------------------------------------------------
# GPT numerics
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_kv_head", [None, 2])
def test_converted_c2i_matches_reference(n_kv_head):
    sd = make_llamagen_gpt_state_dict("c2i", n_kv_head=n_kv_head, seed=1)
    model = _converted(sd, "c2i")
    tokens = torch.randint(0, 32, (3, 16), generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 4, 9])
    with torch.no_grad():
        ours = model(tokens[:, :-1], class_labels=labels).logits
    expected = reference_gpt_logits(sd, 4, tokens[:, :-1], labels, grid=4, n_kv_head=n_kv_head)
    assert ours.shape == (3, 16, 32)
    torch.testing.assert_close(ours, expected, atol=2e-5, rtol=1e-4)


def test_converted_t2i_matches_reference_with_caption_padding():
    sd = make_llamagen_gpt_state_dict("t2i", seed=2)
    model = _converted(sd, "t2i")
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 32, (2, 16), generator=generator)
    mask = torch.ones(2, 120, dtype=torch.long)
    mask[0, :117] = 0  # a 3-token caption, left-padded
    captions = torch.randn(2, 120, 16, generator=generator) * mask[..., None]
    with torch.no_grad():
        ours = model(tokens[:, :-1], caption_embeds=captions, caption_mask=mask).logits
    expected = reference_gpt_logits(sd, 4, tokens[:, :-1], captions, grid=4, caption_mask=mask)
    torch.testing.assert_close(ours, expected, atol=2e-5, rtol=1e-4)
    # the padding really is masked: changing padded features changes nothing
    noisy = captions + torch.randn(2, 120, 16, generator=generator) * (1 - mask[..., None])
    with torch.no_grad():
        torch.testing.assert_close(model(tokens[:, :-1], caption_embeds=noisy, caption_mask=mask).logits, ours)


@pytest.mark.parametrize("condition_type", ["c2i", "t2i"])
def test_kv_cache_decoding_equals_full_forward(condition_type):
    model = make_tiny_llamagen(condition_type, grid_size=4, num_condition_tokens=6, seed=3)
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 32, (3, 16), generator=generator)
    if condition_type == "c2i":
        condition = {"class_labels": torch.tensor([1, 2, 10])}  # 10 = the null class
    else:
        embeds, mask = model.prepare_captions(
            torch.randn(3, 5, 16, generator=generator), torch.tensor([[1] * 5, [1, 1, 0, 0, 0], [0, 0, 1, 1, 1]])
        )
        condition = {"caption_embeds": embeds, "caption_mask": mask}
    with torch.no_grad():
        full = model(tokens[:, :-1], **condition).logits
        cache = LlamaGenKVCache(model.config)
        steps = [model(**condition, cache=cache).logits]
        # a chunk of several tokens, then one token at a time
        steps.append(model(tokens[:, :3], cache=cache).logits)
        for t in range(3, 15):
            steps.append(model(tokens[:, t : t + 1], cache=cache).logits)
    assert cache.length == model.config.num_condition_tokens + 15
    with torch.no_grad():
        torch.testing.assert_close(model(tokens[:, :-1], **condition, logits_to_keep=3).logits, full[:, -3:])
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_unconditional_rows_use_the_null_condition():
    model = make_tiny_llamagen("c2i")
    tokens = torch.randint(0, 32, (2, 5))
    with torch.no_grad():
        flagged = model(tokens, class_labels=torch.tensor([3, 3]), unconditional=torch.tensor([False, True])).logits
        explicit = model(tokens, class_labels=torch.tensor([3, 10])).logits
    torch.testing.assert_close(flagged, explicit)
    t2i = make_tiny_llamagen("t2i", num_condition_tokens=4)
    captions = torch.randn(1, 4, 16)
    with torch.no_grad():
        flagged = t2i(tokens[:1], caption_embeds=captions, unconditional=torch.tensor([True])).logits
        explicit = t2i(tokens[:1], caption_embeds=t2i.caption_embedder.null_caption[None]).logits
    torch.testing.assert_close(flagged, explicit)


def test_prepare_captions_right_aligns_and_truncates():
    model = make_tiny_llamagen("t2i", num_condition_tokens=4)
    embeds = torch.arange(2 * 6 * 16, dtype=torch.float32).view(2, 6, 16)
    mask = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]])  # right-padded short caption, long caption
    out, out_mask = model.prepare_captions(embeds, mask)
    assert out_mask.tolist() == [[0, 0, 1, 1], [1, 1, 1, 1]]
    torch.testing.assert_close(out[0, 2:], embeds[0, :2])
    assert out[0, :2].abs().sum() == 0
    torch.testing.assert_close(out[1], embeds[1, :4])


def test_save_and_load_round_trip(tmp_path):
    for condition_type in ("c2i", "t2i"):
        model = make_tiny_llamagen(condition_type, num_condition_tokens=4)
        model.save_pretrained(tmp_path / condition_type)
        assert (tmp_path / condition_type / "model.safetensors").exists()
        loaded = LlamaGenForImageGeneration.from_pretrained(tmp_path / condition_type).eval()
        for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
            torch.testing.assert_close(a, b, msg=name)


def test_bad_inputs_name_the_field():
    model = make_tiny_llamagen("c2i", num_classes=10)
    with pytest.raises(ValueError, match="class_labels"):
        model(class_labels=torch.tensor([11]))
    with pytest.raises(ValueError, match="class_labels"):
        model(class_labels=torch.tensor([-1]))
    with pytest.raises(Exception, match="condition_type"):
        LlamaGenConfig(condition_type="video")
    with pytest.raises(ValueError, match="downsample_ratio"):
        LlamaGenConfig.from_size("XL", image_size=250)
    with pytest.raises(ValueError, match="past the condition"):
        model(torch.zeros(1, 17, dtype=torch.long), class_labels=torch.tensor([1]))
    t2i = make_tiny_llamagen("t2i", num_condition_tokens=4)
    with pytest.raises(ValueError, match="prepare_captions"):
        t2i(caption_embeds=torch.randn(1, 3, 16))


def test_named_sizes():
    sizes = {name: LlamaGenConfig.from_size(name, image_size=384) for name in ("B", "L", "XL", "XXL", "3B")}
    assert [(c.num_hidden_layers, c.hidden_size, c.num_attention_heads) for c in sizes.values()] == [
        (12, 768, 12),
        (24, 1024, 16),
        (36, 1280, 20),
        (48, 1536, 24),
        (24, 3200, 32),
    ]
    assert sizes["XL"].intermediate_size == 3584 and sizes["3B"].intermediate_size == 8704
    assert sizes["XL"].grid_size == 24 and sizes["XL"].num_image_tokens == 576


# ----------------------------------------------------------------------------------------------------------------
# Converters
# ----------------------------------------------------------------------------------------------------------------
def test_gpt_converter_is_strict():
    sd = make_llamagen_gpt_state_dict("c2i")
    config = _config_for(sd, "c2i")
    with pytest.raises(ValueError, match="does not define.*layers.0.attention.bogus"):
        convert_llamagen_gpt_state_dict({**sd, "layers.0.attention.bogus": torch.zeros(1)}, config)
    missing = dict(sd)
    del missing["layers.1.ffn_norm.weight"]
    with pytest.raises(ValueError, match="missing.*layers.1.post_attention_layernorm.weight"):
        convert_llamagen_gpt_state_dict(missing, config)
    wrong = {**sd, "output.weight": torch.zeros(33, 32)}
    with pytest.raises(ValueError, match="lm_head.weight"):
        convert_llamagen_gpt_state_dict(wrong, config)
    # the KV caches LlamaGen's setup_caches registers are known buffers, dropped
    with_caches = make_llamagen_gpt_state_dict("c2i", kv_cache_length=24)
    assert (
        convert_llamagen_gpt_state_dict(with_caches, config).keys()
        == convert_llamagen_gpt_state_dict(sd, config).keys()
    )


def test_gpt_config_is_read_from_tensors():
    sd = make_llamagen_gpt_state_dict(
        "c2i", dim=768, n_layer=12, n_head=12, vocab_size=64, num_classes=7, ffn_hidden=16
    )
    config = llamagen_gpt_config_from_state_dict(sd, image_size=256)
    assert (config.num_attention_heads, config.num_classes, config.vocab_size, config.grid_size) == (12, 7, 64, 16)
    assert config.intermediate_size == 16
    t2i = make_llamagen_gpt_state_dict("t2i", dim=768, n_layer=12, n_head=12, caption_dim=24, ffn_hidden=16)
    config = llamagen_gpt_config_from_state_dict(t2i, image_size=256)
    assert (config.condition_type, config.caption_dim, config.num_condition_tokens) == ("t2i", 24, 120)
    with pytest.raises(ValueError, match="size"):
        llamagen_gpt_config_from_state_dict(make_llamagen_gpt_state_dict("c2i"), image_size=64)


def test_gpt_cli_round_trip(tmp_path):
    # B's width and depth (the head count comes from the size table); a narrow FFN keeps it cheap.
    sd = make_llamagen_gpt_state_dict("c2i", dim=768, n_layer=12, n_head=12, vocab_size=64, ffn_hidden=16, seed=5)
    checkpoint = tmp_path / "ckpt.pt"
    torch.save({"model": sd, "steps": 10, "args": argparse.Namespace(gpt_model="GPT-B")}, checkpoint)
    convert_main(["gpt", str(checkpoint), str(tmp_path / "hf"), "--image-size", "64"])
    model = LlamaGenForImageGeneration.from_pretrained(tmp_path / "hf").eval()
    assert model.config.condition_type == "c2i" and model.config.grid_size == 4
    tokens, labels = torch.randint(0, 64, (2, 16)), torch.tensor([3, 9])
    with torch.no_grad():
        ours = model(tokens[:, :-1], class_labels=labels).logits
    torch.testing.assert_close(
        ours, reference_gpt_logits(sd, 12, tokens[:, :-1], labels, grid=4), atol=1e-4, rtol=1e-4
    )


def test_gpt_cli_converts_a_checkpoint_outside_the_named_sizes(tmp_path):
    # 3 layers of width 64 with 4 heads (of 16) and GQA: no LlamaGen size; the head count is given explicitly.
    sd = make_llamagen_gpt_state_dict("c2i", dim=64, n_layer=3, n_head=4, n_kv_head=2, vocab_size=32, seed=6)
    checkpoint = tmp_path / "ckpt.pt"
    torch.save({"model": sd}, checkpoint)
    with pytest.raises(ValueError, match="pass `size` explicitly"):
        convert_main(["gpt", str(checkpoint), str(tmp_path / "no"), "--image-size", "64"])
    with pytest.raises(ValueError, match="must divide the checkpoint's width"):
        convert_main(["gpt", str(checkpoint), str(tmp_path / "no"), "--image-size", "64", "--num-heads", "5"])
    convert_main(["gpt", str(checkpoint), str(tmp_path / "hf"), "--image-size", "64", "--num-heads", "4"])
    model = LlamaGenForImageGeneration.from_pretrained(tmp_path / "hf").eval()
    config = model.config
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (3, 64, 4)
    assert config.num_key_value_heads == 2 and config.grid_size == 4
    tokens, labels = torch.randint(0, 32, (2, 16)), torch.tensor([3, 9])
    with torch.no_grad():
        ours = model(tokens[:, :-1], class_labels=labels).logits
    expected = reference_gpt_logits(sd, 4, tokens[:, :-1], labels, grid=4, n_kv_head=2)
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)


def test_vq_conversion_matches_reference(tmp_path):
    sd = make_llamagen_vq_state_dict(ch_mult=(1, 1, 2), codebook_size=40, num_res_blocks=1, seed=7)
    checkpoint = tmp_path / "vq.pt"
    torch.save({"model": sd, "args": argparse.Namespace(vq_model="VQ-8")}, checkpoint)
    convert_main(["vq", str(checkpoint), str(tmp_path / "vq"), "--image-size", "16"])
    vq = JanusVQVAE.from_pretrained(tmp_path / "vq").eval()
    assert vq.config.num_embeddings == 40 and vq.config.channel_multiplier == [1, 1, 2]
    codes = torch.randint(0, 40, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = decode_image_tokens(vq, codes)
        expected = reference_vq_decode(sd, codes, grid=4).clamp(-1, 1)
        assert ours.shape == (2, 3, 16, 16)
        torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)
        # encoding finds LlamaGen's codes (cosine nearest) though JanusVQVAE searches by Euclidean distance
        pixels = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
        assert torch.equal(encode_images(vq, pixels), reference_vq_encode(sd, pixels))
    with pytest.raises(ValueError, match="does not define"):
        convert_llamagen_vq_state_dict({**sd, "discriminator.x": torch.zeros(1)}, vq.config)


# ----------------------------------------------------------------------------------------------------------------
# VQ helpers
# ----------------------------------------------------------------------------------------------------------------
def test_decode_shape_range_and_pil():
    vq = make_tiny_vq(codebook_size=32, downsample_ratio=2, grid_size=4)
    codes = torch.randint(0, 32, (5, 16))
    with torch.no_grad():
        pixels = decode_image_tokens(vq, codes)
    assert pixels.shape == (5, 3, 8, 8)
    assert pixels.min() >= -1 and pixels.max() <= 1 and pixels.std() > 0.05
    images = pixels_to_pil(pixels)
    assert len(images) == 5 and images[0].size == (8, 8) and images[0].mode == "RGB"
    with pytest.raises(ValueError, match="codebook size"):
        decode_image_tokens(vq, torch.full((1, 16), 32))
    with torch.no_grad():  # non-square grids decode too
        assert decode_image_tokens(vq, torch.randint(0, 32, (1, 8)), grid=(2, 4)).shape == (1, 3, 4, 8)


def test_check_image_tokenizer_errors():
    vq = make_tiny_vq(codebook_size=32, downsample_ratio=2)
    assert check_image_tokenizer(vq, vocab_size=32, grid_size=4) == 8
    with pytest.raises(ValueError, match="num_embeddings=32.*vocab_size"):
        check_image_tokenizer(vq, vocab_size=64, grid_size=4)
    with pytest.raises(ValueError, match="image_size.*multiple of the VQ stride"):
        check_image_tokenizer(vq, vocab_size=32, grid_size=4, image_size=9)
    with pytest.raises(ValueError, match="grid"):
        check_image_tokenizer(vq, vocab_size=32, grid_size=4, image_size=10)
    with pytest.raises(ValueError, match="image_size"):
        llamagen_vq_config(image_size=100)
