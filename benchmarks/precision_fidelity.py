"""How much reduced-precision sampling changes what the metrics see, on the TRAINED mini checkpoints.

Random-weight models (the speed rows) amplify any rounding difference over the DDIM steps, so the
fidelity of bf16 autocast is judged here on trained models, by the suite's own judges: the digit
classifier's label agreement (mini-digits) and the judge-embedding distance that retention uses
(mini-shapes, when its checkpoint is present). Same seeds, prompts/labels, steps and guidance.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from bench.core.fast import FastPaths, apply_fast_paths


def _timed_sample(model, keys, seeds, steps, guidance, fast: FastPaths):
    apply_fast_paths(model, fast)
    model.sample(keys[:2], seeds[:2], steps=1, guidance=guidance)  # warm-up
    t0 = time.perf_counter()
    imgs = model.sample(keys, seeds, steps=steps, guidance=guidance)
    return imgs, time.perf_counter() - t0


def bench_fidelity(device: str = "cpu", low: FastPaths | None = None, n: int = 100) -> list[dict]:
    from bench.core.adapters.class_conditional import ClassConditionalModel
    from metrics.classification import predict
    from tasks.mini.recipes import load_digit_classifier
    from tasks.mini_digits import MODEL_DIR

    low = low or FastPaths(autocast="bf16")
    ref_fp = FastPaths()
    rows = []

    model = ClassConditionalModel.load(MODEL_DIR, device=device)
    model.denoiser.eval()
    labels, seeds = [i % 10 for i in range(n)], list(range(n))
    ref, t_ref = _timed_sample(model, labels, seeds, 25, 2.0, ref_fp)
    out, t_low = _timed_sample(model, labels, seeds, 25, 2.0, low)
    clf = load_digit_classifier()
    p_ref, p_low = predict(clf, ref), predict(clf, out)
    target = torch.as_tensor(labels)
    rows.append({
        "model": "mini-digits (trained)", "images": n, "steps": 25, "guidance": 2.0, "low": low.autocast,
        "fp32_s": t_ref, "low_s": t_low, "mean_abs_diff": float((out - ref).abs().mean()), "max_abs_diff": float((out - ref).abs().max()),
        "judge": "digit-cnn label agreement", "judge_value": float((p_ref == p_low).float().mean()),
        "fp32_acc": float((p_ref == target).float().mean()), "low_acc": float((p_low == target).float().mean()),
    })

    from tasks.mini.shapes_recipes import MODEL_DIR as SHAPES_DIR

    if Path(SHAPES_DIR).exists():
        from bench.core.adapters.text_to_image import TextToImageModel
        from metrics.retention import paired_cosine_distance
        from tasks.base import T2I_EVAL_SEEDS, seeds_for
        from tasks.mini.shapes_recipes import load_shapes_judge
        from tasks.mini_shapes import concept_sets

        shapes = TextToImageModel.load(SHAPES_DIR, device=device)
        shapes.denoiser.eval()
        m = min(n, 64)
        prompts = concept_sets("cross", 8, m)["eval_remain_test"]
        seeds = seeds_for(m, T2I_EVAL_SEEDS["remain_test"])  # the tasks' remain_test evaluation seeds
        ref, t_ref = _timed_sample(shapes, prompts, seeds, 20, 3.0, ref_fp)
        out, t_low = _timed_sample(shapes, prompts, seeds, 20, 3.0, low)
        judge = load_shapes_judge()
        dist = paired_cosine_distance(judge.encode_images(ref), judge.encode_images(out))
        rows.append({
            "model": "mini-shapes (trained)", "images": m, "steps": 20, "guidance": 3.0, "low": low.autocast,
            "fp32_s": t_ref, "low_s": t_low, "mean_abs_diff": float((out - ref).abs().mean()),
            "max_abs_diff": float((out - ref).abs().max()), "judge": "retention distance (1−cos judge emb.)",
            "judge_value": float(dist.mean()), "fp32_acc": None, "low_acc": None,
        })
    apply_fast_paths(model, ref_fp)
    return rows
