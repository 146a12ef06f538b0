"""
Masked-diffusion rollouts: tokens/s and forwards per token of `MaskedDiffusionSampler` settings, against today's
baseline measured in the same run, on a random-weight native Dream model.

    (a) one token per step, uncached (the baseline)
    (b) confidence-threshold parallel decoding, uncached
    (c) prefix KV cache (prompt and finished blocks), one token per step
    (d) dual KV cache (the masked suffix too), one token per step
    (e) dual KV cache + threshold decoding
    (w) the papers' whole-canvas setting (Dream/DiffuCoder): no blocks, one token per step, uncached

Settings (a)-(e) decode semi-autoregressively in blocks of `--block_length` (the cache needs blocks to pay off); (w)
refines the whole completion canvas at every step, which is what DiffuCoder's rollouts do. All are greedy, so each reports its agreement with (a)'s output (fraction of identical completion tokens). Random weights
give flat next-token distributions, which no confidence threshold ever passes; `--sharpen` scales the LM head so that
the model is confident about part of the canvas, as a trained one is (the speed of the uncached/cached forwards does
not depend on it).

    python benchmarks/dllm_rollouts.py                                  # CPU: 8 layers, hidden 512, vocab 32k, 256+256, batch 8
    python benchmarks/dllm_rollouts.py --batch 2                        # the same shape, ~9 min on 2 cores (batch 8: > 40 min)
    python benchmarks/dllm_rollouts.py --device cuda --shape dream-7b   # bf16, SDPA; 10 x (200 prompt + 256)
"""

import argparse
import time

import torch

from trl_ext.generation import MaskedDiffusionSampler
from trl_ext.models import MaskedDiffusionAdapter
from trl_ext.models.dream import DreamConfig, DreamModel

SHAPES = {
    "cpu": dict(hidden_size=512, intermediate_size=1408, num_hidden_layers=8, num_attention_heads=8,
                num_key_value_heads=4, vocab_size=32000),
    # DiffuCoder-7B / Dream-v0-7B (Qwen2.5-7B's shape)
    "dream-7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                     num_key_value_heads=4, vocab_size=152064),
}  # fmt: skip

SETTINGS = {
    "(a) 1 token/step, uncached": dict(),
    "(b) threshold, uncached": dict(confidence_threshold=0.9),
    "(c) prefix cache": dict(kv_cache="prefix"),
    "(d) dual cache": dict(kv_cache="dual"),
    "(e) dual cache + threshold": dict(kv_cache="dual", confidence_threshold=0.9),
    "(w) whole canvas (paper default)": dict(block_length=None),
}


def build(args):
    torch.manual_seed(0)
    shape = SHAPES[args.shape]
    config = DreamConfig(**shape, mask_token_id=shape["vocab_size"] - 1, max_position_embeddings=4096)
    config._attn_implementation = "sdpa"
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    model = DreamModel(config).to(device=args.device, dtype=dtype).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(args.sharpen)
    adapter = MaskedDiffusionAdapter.from_model(model, mask_token_id=config.mask_token_id)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, config.vocab_size - 1, (args.batch, args.prompt), generator=generator).to(args.device)
    mask = torch.ones_like(ids)
    mask[1::2, : args.prompt // 4] = 0  # left padding on every other row
    return model, adapter, ids, mask


def run(model, adapter, ids, mask, args, **setting):
    setting = {"block_length": args.block_length, **setting}
    sampler = MaskedDiffusionSampler(adapter, max_new_tokens=args.completion, steps=args.completion, **setting)
    if args.device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = sampler.sample(model, ids, mask)
    if args.device == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shape", default="cpu", choices=sorted(SHAPES))
    parser.add_argument("--batch", type=int, default=None, help="default: 8 on CPU, 10 on CUDA")
    parser.add_argument("--prompt", type=int, default=None, help="default: 256 on CPU, 200 on CUDA")
    parser.add_argument("--completion", type=int, default=256)
    parser.add_argument("--block_length", type=int, default=32)
    parser.add_argument("--sharpen", type=float, default=30.0, help="LM-head scale (confident random model)")
    parser.add_argument("--settings", default="abcdew", help="which settings to run, e.g. 'ad'")
    args = parser.parse_args()
    cuda = args.device == "cuda"
    args.batch = args.batch or (10 if cuda else 8)
    args.prompt = args.prompt or (200 if cuda else 256)
    model, adapter, ids, mask = build(args)
    name = torch.cuda.get_device_name() if cuda else f"CPU ({torch.get_num_threads()} threads)"
    print(f"{args.shape} shape, batch {args.batch} x ({args.prompt} prompt + {args.completion}), blocks of "
          f"{args.block_length}, greedy, on {name}\n")  # fmt: skip
    with torch.no_grad():
        run(model, adapter, ids[:1], mask[:1], argparse.Namespace(**{**vars(args), "completion": args.block_length}))
    rows, baseline = [], None
    for label, setting in SETTINGS.items():
        if label[1] not in args.settings:
            continue
        out, seconds = run(model, adapter, ids, mask, args, **setting)
        tokens = int(out.completion_mask.sum())
        if baseline is None and label.startswith("(a)"):
            baseline = (out.completion_ids, tokens / seconds)
        agree = float((out.completion_ids == baseline[0]).float().mean()) if baseline else float("nan")
        rows.append((label, tokens / seconds, out.num_forwards / args.completion, out.cache_hit_fraction, agree))
    print("| setting | tokens/s | forwards/token | cache hit | agreement with (a) | speed-up vs (a) |")
    print("|---|---|---|---|---|---|")
    for label, speed, forwards, hit, agree in rows:
        ratio = speed / baseline[1] if baseline else float("nan")
        print(f"| {label} | {speed:.1f} | {forwards:.3f} | {hit:.2f} | {agree:.3f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
