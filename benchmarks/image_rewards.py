"""
Throughput of the image rewards: images/s when the reward is called once per image (batch 1, the reference's
per-image loop) versus once per batch (batch 32).

Model-backed rewards run on random weights of the real architectures (`--size full`: CLIP ViT-B/32, open_clip
ViT-H/14 for HPSv2, CLIP ViT-H/14 for PickScore, CLIP ViT-L/14 + MLP for the aesthetic score, MANIQA with ViT-B/8;
throughput does not depend on the weights) or of the toy ones the tests use (`--size tiny`, which measures the
per-call overhead). The VLM judge runs against a local OpenAI-compatible stub that answers after `--vlm-latency`
seconds, so the number shows the client's concurrency, not a model's speed.

    python benchmarks/image_rewards.py [--size full] [--device cuda] [--rewards clip_score maniqa ...]
        [--num-images 32] [--batch-size 32] [--image-size 256] [--repeats 3]
"""

import argparse
import asyncio
import gc
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch

from trl_ext.rewards.image import (
    MANIQA,
    AestheticMLP,
    ColourStatisticReward,
    JpegCompressibilityReward,
    VLMRealismReward,
    make_clip_score_reward,
    make_hps_v2_reward,
    make_laion_aesthetic_reward,
    make_maniqa_reward,
    make_pick_score_reward,
)
from trl_ext.testing_rewards import (
    make_test_images,
    make_tiny_clip_processor,
    make_tiny_transformers_clip,
    tiny_maniqa_config,
    tiny_open_clip_config,
)

ALL_REWARDS = [
    "clip_score",
    "hps_v2",
    "pick_score",
    "laion_aesthetic",
    "maniqa",
    "vlm_realism",
    "jpeg_compressibility",
    "saturation",
    "colourfulness",
]


def transformers_clip(size, tower):
    """A random transformers CLIP of a real size: `tower` is "B/32", "L/14" or "H/14"."""
    from transformers import CLIPConfig, CLIPModel

    if size == "tiny":
        return make_tiny_transformers_clip(), make_tiny_clip_processor()
    vision = {
        "B/32": dict(
            hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, patch_size=32
        ),
        "L/14": dict(
            hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16, patch_size=14
        ),
        "H/14": dict(
            hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16, patch_size=14
        ),
    }[tower]
    text = {
        "B/32": dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8),
        "L/14": dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12),
        "H/14": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16),
    }[tower]
    projection = {"B/32": 512, "L/14": 768, "H/14": 1024}[tower]
    config = CLIPConfig(text_config=text, vision_config=dict(image_size=224, **vision), projection_dim=projection)
    return CLIPModel(config).eval(), make_tiny_clip_processor(image_size=224)


def open_clip_model(size):
    import open_clip
    from open_clip.model import CLIP

    if size == "tiny":
        return CLIP(**tiny_open_clip_config()).eval()
    return open_clip.create_model("ViT-H-14", pretrained=None).eval()


def build(name, size, device, dtype, batch_size, vlm_url):
    common = dict(device=device, dtype=dtype, batch_size=batch_size)
    if name == "clip_score":
        model, processor = transformers_clip(size, "B/32")
        return make_clip_score_reward(model, processor=processor, **common)
    if name == "hps_v2":
        return make_hps_v2_reward(model=open_clip_model(size), **common)
    if name == "pick_score":
        model, processor = transformers_clip(size, "H/14")
        return make_pick_score_reward(model, processor=processor, **common)
    if name == "laion_aesthetic":
        model, processor = transformers_clip(size, "L/14")
        mlp = AestheticMLP(model.config.projection_dim, (32, 16, 8, 4) if size == "tiny" else (1024, 128, 64, 16))
        return make_laion_aesthetic_reward(mlp, clip_model=model, processor=processor, **common)
    if name == "maniqa":
        return make_maniqa_reward(MANIQA(tiny_maniqa_config() if size == "tiny" else None), **common)
    if name == "vlm_realism":
        client = {"max_retries": 0, "timeout": 30.0, "max_concurrency": 64}
        return VLMRealismReward(base_url=vlm_url, model="stub", client_kwargs=client)
    if name == "jpeg_compressibility":
        return JpegCompressibilityReward()
    if name in ("saturation", "colourfulness"):
        return ColourStatisticReward(name)
    raise ValueError(name)


def call(reward, images, captions):
    output = reward(prompts=captions, completions=images, caption=captions)
    if asyncio.iscoroutine(output):
        output = asyncio.run(output)
    if None in output:
        raise RuntimeError(f"{reward.__name__} failed during the benchmark: {output}")
    return output


def measure(reward, images, captions, per_image):
    start = time.perf_counter()
    if per_image:
        for image, caption in zip(images, captions):
            call(reward, [image], [caption])
    else:
        call(reward, images, captions)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return len(images) / (time.perf_counter() - start)


class _Server(ThreadingHTTPServer):
    # The default listen backlog (5) resets connections when the reward fires dozens of requests at once.
    request_queue_size = 128
    daemon_threads = True


def stub_server(latency):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(latency)
            body = json.dumps({"choices": [{"message": {"role": "assistant", "content": '{"score": 1}'}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = _Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--size", choices=["tiny", "full"], default="full")
    parser.add_argument("--rewards", nargs="+", default=ALL_REWARDS, choices=ALL_REWARDS)
    parser.add_argument("--num-images", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs (shared machines are noisy)")
    parser.add_argument("--vlm-latency", type=float, default=0.05, help="seconds the stub judge takes per answer")
    args = parser.parse_args()

    images = make_test_images(args.num_images, size=args.image_size)
    captions = [f"a photo of object number {i}" for i in range(args.num_images)]
    server, url = stub_server(args.vlm_latency)
    dtype = getattr(torch, args.dtype)
    print(
        f"{args.num_images} images of {args.image_size}px, {args.size} models, device {args.device}, {args.dtype}, "
        f"{torch.get_num_threads()} CPU threads"
    )
    print(f"{'reward':<22} {'batch 1 img/s':>14} {f'batch {args.batch_size} img/s':>15} {'speed-up':>9}")
    for name in args.rewards:
        reward = build(name, args.size, args.device, dtype, args.batch_size, url)
        call(reward, images[:2], captions[:2])  # warm-up: load, move, first kernels
        # Distinct captions per phase: neither run finds the other's text embeddings in the cache.
        single = batched = 0.0
        for repeat in range(args.repeats):
            one_by_one = [f"{c}, one by one {repeat}" for c in captions]
            in_a_batch = [f"{c}, in a batch {repeat}" for c in captions]
            single = max(single, measure(reward, images, one_by_one, per_image=True))
            batched = max(batched, measure(reward, list(images), in_a_batch, per_image=False))
        print(f"{name:<22} {single:>14.3g} {batched:>15.3g} {batched / single:>8.1f}x", flush=True)
        del reward
        gc.collect()
    server.shutdown()


if __name__ == "__main__":
    main()
