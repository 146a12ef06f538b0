"""
Coupled log-likelihood estimate: trl_ext's batched, selective estimator vs the naive 3-pass full-vocabulary one.

Naive (what the reference implementation does): one forward over the 3 passes, logits `[3B, L, V]` for every
position, full log-softmax in float32, gather. Ours: the same single forward of the backbone, but only the positions
that enter the estimate (every completion token once in the full pass, once in its partial pass) go through the LM
head and log-softmax. Both compute forward + backward, as in training, on the same inputs and masks.

Each method runs in its own subprocess so that its peak memory (CPU: peak RSS above the loaded model; CUDA:
`max_memory_allocated`) is its own.

    python benchmarks/coupled_estimator.py            # vocab 32k, 256 completion tokens, batch 4
    python benchmarks/coupled_estimator.py --device cuda --batch 16
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from transformers import Qwen2Config, Qwen2ForCausalLM


def build(args):
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=2 * args.hidden, num_hidden_layers=args.layers,
        num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=4096, tie_word_embeddings=False,
    )
    config.diffusion_type, config.mask_token_id = "dream", args.vocab - 1
    model = Qwen2ForCausalLM(config).to(args.device)
    prompt_ids = torch.randint(0, args.vocab - 1, (args.batch, args.prompt), device=args.device)
    completion_ids = torch.randint(0, args.vocab - 1, (args.batch, args.completion), device=args.device)
    ones = torch.ones_like
    return model, prompt_ids, ones(prompt_ids), completion_ids, ones(completion_ids)


def naive(model, adapter, prompt_ids, prompt_mask, completion_ids, completion_mask, plan):
    from trl_ext.trainers.coupled_estimator import build_noisy_inputs

    num_passes = plan.coef.size(1)
    ids = build_noisy_inputs(prompt_ids, completion_ids, plan, adapter.mask_token_id)
    attn = torch.cat([prompt_mask, completion_mask], 1).repeat(num_passes, 1)
    mask4d, pos = adapter.attention_inputs(attn, torch.float32)
    logits = model(input_ids=ids, attention_mask=mask4d, position_ids=pos).logits[:, :-1]
    logits = logits[:, -completion_ids.size(1):].float()
    logp = F.log_softmax(logits, -1)
    targets = completion_ids.repeat(num_passes, 1)
    per_pass = logp.gather(-1, targets[..., None]).squeeze(-1).view(num_passes, *completion_ids.shape)
    return (plan.coef.transpose(0, 1) * per_pass).sum(0)


def ours(model, adapter, prompt_ids, prompt_mask, completion_ids, completion_mask, plan):
    from trl_ext.trainers.coupled_estimator import estimate_log_likelihood

    return estimate_log_likelihood(
        lambda *a: adapter.score_tokens(model, *a), prompt_ids, prompt_mask, completion_ids, completion_mask, plan,
        adapter.mask_token_id,
    )[0]


def run_one(args):
    from trl_ext.models import MaskedDiffusionAdapter
    from trl_ext.trainers.coupled_estimator import draw_mask_plan

    model, prompt_ids, prompt_mask, completion_ids, completion_mask = build(args)
    adapter = MaskedDiffusionAdapter.from_model(model)
    plan = draw_mask_plan(completion_mask, "coupled", generator=torch.Generator(args.device).manual_seed(0))
    fn = {"naive": naive, "ours": ours}[args.method]
    cuda = args.device.startswith("cuda")
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for i in range(args.warmup + args.reps):
        model.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        estimate = fn(model, adapter, prompt_ids, prompt_mask, completion_ids, completion_mask, plan)
        estimate.sum().backward()
        if cuda:
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_rss) / 1024
    # The two estimators must agree: print a checksum.
    print(json.dumps({"time": statistics.median(times), "peak_mib": peak, "checksum": float(estimate.sum())}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--prompt", type=int, default=64)
    parser.add_argument("--completion", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--method", choices=["naive", "ours"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.method:
        return run_one(args)

    results = {}
    for method in ("naive", "ours"):
        cmd = [sys.executable, __file__, "--method", method] + [
            f"--{k}={v}" for k, v in vars(args).items() if k != "method" and v is not None
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        results[method] = json.loads(out.strip().splitlines()[-1])
    naive_r, ours_r = results["naive"], results["ours"]
    print(
        f"coupled estimate, forward+backward: batch {args.batch}, prompt {args.prompt}, completion {args.completion}, "
        f"vocab {args.vocab}, hidden {args.hidden}, {args.layers} layers, device {args.device}"
    )
    print(f"{'method':<28}{'time (s)':>12}{'peak mem (MiB)':>18}")
    print(f"{'naive 3-pass full vocab':<28}{naive_r['time']:>12.3f}{naive_r['peak_mib']:>18.1f}")
    print(f"{'trl_ext selective':<28}{ours_r['time']:>12.3f}{ours_r['peak_mib']:>18.1f}")
    print(
        f"speed-up {naive_r['time'] / ours_r['time']:.2f}x, peak memory ratio "
        f"{ours_r['peak_mib'] / max(naive_r['peak_mib'], 1e-9):.2f} (ours / naive); "
        f"checksums {naive_r['checksum']:.3f} vs {ours_r['checksum']:.3f}"
    )


if __name__ == "__main__":
    main()
