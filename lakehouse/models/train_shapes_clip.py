"""Train the small CLIP model that lakehouse ships for its tests and offline demo.

No package ships CLIP weights and the model hubs may be out of reach, so lakehouse trains its own
small CLIP (an open_clip config: 64x64 images in 8x8 patches, 4 transformer layers per tower, a
128-d joint space) on captioned pictures of shapes generated on the fly
(:mod:`lakehouse.samples.shapes`). Each batch pairs half its scenes with a twin that differs only
in shape, so the model must learn shape as well as colour, size and position. It is a test and
demo model: for real photos use a standard open_clip model from the hub.

    python -m lakehouse.models.train_shapes_clip --minutes 60 --out lakehouse/models/shapes_clip

writes ``open_clip_config.json`` and ``open_clip_model.safetensors`` (fp16), the layout that
``open_clip.create_model_and_transforms("local-dir:<folder>")`` loads, and prints the
text -> image top-1 / top-5 on a held-out set.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from lakehouse.samples import shapes

NAME = "shapes-clip"
MODEL_CFG: dict[str, Any] = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": shapes.SIZE, "layers": 4, "width": 128, "head_width": 32,
                   "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 4,
                 "layers": 4},
}
HELD_OUT_SEED = 424242


def build() -> tuple[torch.nn.Module, Any, Any]:
    """A fresh model, its image preprocessing and its tokenizer."""
    open_clip.factory._MODEL_CONFIGS[NAME] = MODEL_CFG
    model, _, preprocess = open_clip.create_model_and_transforms(NAME, pretrained=None,
                                                                 output_dict=True)
    return model, preprocess, open_clip.get_tokenizer(NAME)


def batch(rng: random.Random, size: int) -> list[tuple[Any, shapes.Scene]]:
    """``size`` (picture, scene) pairs; half come as twins that differ only in shape."""
    out = []
    while len(out) < size:
        scene = shapes.random_scene(rng)
        out.append((shapes.draw(scene, rng), scene))
        if len(out) < size and rng.random() < 0.5:
            other = rng.choice([s for s in shapes.SHAPES if s != scene.shape])
            twin = scene.with_shape(other)
            out.append((shapes.draw(twin, rng), twin))
    return out


def caption(scene: shapes.Scene, rng: random.Random) -> str:
    """The full caption most of the time, else one of the partial ones."""
    return scene.caption if rng.random() < 0.7 else rng.choice(shapes.partial_captions(scene))


def evaluate(model: torch.nn.Module, preprocess: Any, tokenizer: Any, n: int = 200) -> dict:
    """Text -> image top-1 and top-5 on ``n`` held-out scenes, by full caption."""
    model.train(False)  # inference mode for the evaluation
    pairs = list(shapes.samples(n, HELD_OUT_SEED))
    with torch.inference_mode():
        images = torch.stack([preprocess(im) for im, _ in pairs])
        texts = tokenizer([scene.caption for _, scene in pairs])
        img = F.normalize(model.encode_image(images).float(), dim=-1)
        txt = F.normalize(model.encode_text(texts).float(), dim=-1)
        ranks = (txt @ img.T).argsort(dim=1, descending=True)
    # a caption describes every scene with the same attributes: count any of them as right
    same = [[j for j, (_, s) in enumerate(pairs) if s == scene] for _, scene in pairs]
    top1 = sum(int(ranks[i, 0]) in same[i] for i in range(n)) / n
    top5 = sum(any(int(r) in same[i] for r in ranks[i, :5]) for i in range(n)) / n
    model.train()
    return {"top1": top1, "top5": top5, "n": n}


def train(minutes: float, batch_size: int, lr: float, seed: int) -> tuple[Any, Any, Any, dict]:
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model, preprocess, tokenizer = build()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    loss_fn = open_clip.ClipLoss()
    deadline = time.monotonic() + minutes * 60
    step = 0
    while time.monotonic() < deadline:
        left = max(0.0, (deadline - time.monotonic()) / (minutes * 60))
        for group in optimizer.param_groups:  # cosine decay over the time budget
            group["lr"] = lr * (0.05 + 0.95 * 0.5 * (1 + torch.cos(torch.tensor(
                (1 - left) * 3.14159)).item()))
        pairs = batch(rng, batch_size)
        images = torch.stack([preprocess(im) for im, _ in pairs])
        texts = tokenizer([caption(scene, rng) for _, scene in pairs])
        out = model(images, texts)
        loss = loss_fn(out["image_features"], out["text_features"], out["logit_scale"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if step % 200 == 0:
            print(f"step {step}: loss {loss.item():.3f}", flush=True)
    return model, preprocess, tokenizer, {"steps": step}


def save(model: torch.nn.Module, out: Path, metrics: dict) -> None:
    """Write the folder ``open_clip.create_model_and_transforms("local-dir:<out>")`` loads."""
    out.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": MODEL_CFG,
              "preprocess_cfg": {"mean": list(open_clip.OPENAI_DATASET_MEAN),
                                 "std": list(open_clip.OPENAI_DATASET_STD)},
              "lakehouse": {"trained_on": "lakehouse.samples.shapes", **metrics}}
    (out / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    weights = {k: v.detach().half().contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(out / "open_clip_model.safetensors"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "shapes_clip")
    args = parser.parse_args(argv)
    model, preprocess, tokenizer, info = train(args.minutes, args.batch_size, args.lr, args.seed)
    metrics = {**info, "minutes": args.minutes, **evaluate(model, preprocess, tokenizer)}
    print(json.dumps(metrics), flush=True)
    save(model, args.out, metrics)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
