"""
Image-token sampling throughput: trl_ext's `ImageTokenSampler` (static KV cache, classifier-free guidance batched as
`[cond; uncond]` in one forward) against

- the same sampler logic on the same LlamaGen model *without* a cache (the whole prefix re-run at every token), and
- transformers' `generate` on a Llama model of the same width, depth and vocabulary, for the same number of new
  tokens (sampling, no guidance: `generate` has none), at the batch size of the images and at twice that (the rows
  that batched guidance runs).

It prints images per second, ratios against our guided sampler, and the per-token time of each sampler at several
grid sizes: with the cache, a token costs the same at the end of a 16x16 image as at the start; without it, the cost
grows with the prefix.

    python benchmarks/image_sampling.py                                 # small model on CPU (a couple of minutes)
    python benchmarks/image_sampling.py --device cuda --size XL --dtype bfloat16
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from trl_ext.generation.image_tokens import ImageTokenSampler, filter_logits, sample_categorical
from trl_ext.models.llamagen import LLAMAGEN_SIZES, LlamaGenConfig, LlamaGenForImageGeneration


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeats: int) -> float:
    """Best wall time of `repeats` runs after one warm-up (the best run is the least disturbed by other load)."""
    fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


@torch.no_grad()
def sample_without_cache(model, sampler: ImageTokenSampler, class_labels: torch.Tensor, generator) -> torch.Tensor:
    """The sampler's algorithm (batched CFG, same draws) re-running the whole prefix at every token (only the last
    position goes through the LM head, as `generate` without a cache would do)."""
    batch, num_tokens = class_labels.size(0), model.config.num_image_tokens
    scales = sampler.guidance_scales(num_tokens, class_labels.device)
    labels = torch.cat([class_labels, class_labels])
    unconditional = torch.arange(2 * batch, device=class_labels.device) >= batch
    tokens = torch.empty(batch, 0, dtype=torch.long, device=class_labels.device)
    for t in range(num_tokens):
        inputs = torch.cat([tokens, tokens]) if t else None
        logits = model(inputs, class_labels=labels, unconditional=unconditional, logits_to_keep=1).logits[:, -1]
        cond, uncond = logits[:batch], logits[batch:]
        probs = filter_logits(
            (uncond + scales[t] * (cond - uncond)) / sampler.temperature, sampler.top_k, sampler.top_p
        ).softmax(-1)
        token = sample_categorical(probs, generator)
        tokens = torch.cat([tokens, token[:, None]], 1)
    return tokens


def build_llamagen(args, grid: int) -> LlamaGenForImageGeneration:
    layers, heads, width = LLAMAGEN_SIZES[args.size] if args.size else (args.layers, args.heads, args.hidden_size)
    config = LlamaGenConfig(
        vocab_size=args.vocab_size,
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        grid_size=grid,
        num_classes=1000,
    )
    torch.manual_seed(0)
    model = LlamaGenForImageGeneration(config).to(args.device, getattr(torch, args.dtype)).eval()
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, 0.02)  # LlamaGen starts at zero: make the distributions non-uniform
    return model


def build_llama(config: LlamaGenConfig, args) -> LlamaForCausalLM:
    """A Llama with the generator's width, depth, heads, MLP and vocabulary."""
    llama_config = LlamaConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        max_position_embeddings=config.num_image_tokens + 8,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=0,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    return LlamaForCausalLM(llama_config).to(args.device, getattr(torch, args.dtype)).eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--size", choices=sorted(LLAMAGEN_SIZES), help="A LlamaGen size (else --hidden-size etc.).")
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab-size", type=int, default=16384, help="Codebook size (VQ-16: 16384).")
    parser.add_argument("--batch-size", type=int, default=16, help="Images per batch.")
    parser.add_argument("--grid", type=int, default=16, help="Tokens per side (16: 256 tokens, a 256-px image).")
    parser.add_argument("--cfg-scale", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3, help="Timed runs per measurement (the best is kept).")
    parser.add_argument("--per-token-grids", type=int, nargs="+", default=[8, 12], help="Also time these grids.")
    parser.add_argument("--skip-no-cache", action="store_true", help="Skip the (slow) no-cache baseline.")
    args = parser.parse_args()

    device, batch = args.device, args.batch_size
    llamagen = build_llamagen(args, args.grid)
    llama = build_llama(llamagen.config, args)
    num_tokens = llamagen.config.num_image_tokens
    labels = torch.arange(batch, device=device) % 1000
    guided, plain = ImageTokenSampler(cfg_scale=args.cfg_scale), ImageTokenSampler(cfg_scale=1.0)

    def ours(sampler, model):
        return lambda: sampler.sample(model, class_labels=labels, generator=torch.Generator(device).manual_seed(0))

    def no_cache(model):
        return lambda: sample_without_cache(model, guided, labels, torch.Generator(device).manual_seed(0))

    def hf_generate(rows):
        prompt = torch.ones(rows, 1, dtype=torch.long, device=device)
        kwargs = dict(do_sample=True, max_new_tokens=num_tokens, min_new_tokens=num_tokens, top_k=0, pad_token_id=0)
        return lambda: llama.generate(prompt, attention_mask=torch.ones_like(prompt), **kwargs)

    config = llamagen.config
    print(
        f"model: {config.num_hidden_layers} layers, width {config.hidden_size}, {config.num_attention_heads} heads, "
        f"vocabulary {config.vocab_size}; {num_tokens} tokens per image, batch {batch} images, CFG {args.cfg_scale}, "
        f"{args.dtype} on {device}"
    )
    rows = [("ours: KV cache, batched CFG", ours(guided, llamagen)), ("ours: KV cache, no CFG", ours(plain, llamagen))]
    if not args.skip_no_cache:
        rows.append(("same model, no cache, batched CFG", no_cache(llamagen)))
    rows += [
        (f"transformers generate (Llama), batch {batch}", hf_generate(batch)),
        (
            f"transformers generate (Llama), {2 * batch} rows (the work of {batch} guided images)",
            hf_generate(2 * batch),
        ),
    ]
    print("\n| sampler | images/s | ratio vs ours (CFG) |\n|---|---:|---:|", flush=True)
    seconds = {}
    for name, fn in rows:
        with torch.no_grad():
            # The no-cache baseline is an order of magnitude slower; one timed run is precise enough.
            seconds[name] = timed(fn, device, 1 if "no cache" in name else args.repeats)
        ratio = seconds["ours: KV cache, batched CFG"] / seconds[name]
        print(f"| {name} | {batch / seconds[name]:.2f} | {ratio:.2f}x |", flush=True)

    print(f"\nper-token time (ms), batched CFG, batch {batch}:\n| tokens | KV cache | no cache |\n|---:|---:|---:|")
    per_token = {
        num_tokens: (seconds["ours: KV cache, batched CFG"], seconds.get("same model, no cache, batched CFG"))
    }
    for grid in args.per_token_grids:
        model = build_llamagen(args, grid)
        with torch.no_grad():
            cached = timed(ours(guided, model), device, args.repeats)
            uncached = None if args.skip_no_cache else timed(no_cache(model), device, 1)
        per_token[grid * grid] = (cached, uncached)
    for n, (cached, uncached) in sorted(per_token.items()):
        no_cache_ms = "-" if uncached is None else f"{1000 * uncached / n:.2f}"
        print(f"| {n} | {1000 * cached / n:.2f} | {no_cache_ms} |", flush=True)


if __name__ == "__main__":
    main()
