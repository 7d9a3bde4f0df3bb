"""Analysis benchmarks, each measured side by side in one run (ratios, not absolute targets).

indices    gOSI permutation null for cnn7's 960 units x 1000 permutations on one thread
responses  extraction (render + hooks + reduction) against a bare forward pass over the
           same pre-rendered stimuli; peak memory for few vs many stimuli (VGG16)
sweep      ablation sweep (every layer x 3 orders x 11 fractions): naive full passes,
           the cached engine, and the lower bound = the suffix passes the sweep needs
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from orisel.models import CNN7
from orisel.science import ablation as ab
from orisel.science import selection as sel
from orisel.science import steps as chain
from orisel.science.indices import gosi, null_gosi, tuning
from orisel.science.responses import forward_collect, stimulus_batches
from orisel.science.stimuli import gratings


def _timed(fn: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def bench_indices() -> dict[str, Any]:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    g = gratings(32)
    responses = rng.exponential(size=(len(g), 960)).astype(np.float32)
    t, null = _timed(lambda: null_gosi(responses, g.shape, 1000, seed=0))
    t_obs, _ = _timed(lambda: gosi(tuning(responses, g.shape).curves))
    torch.set_num_threads(2)
    return {
        "units": 960,
        "permutations": 1000,
        "seconds_one_thread": round(t, 2),
        "observed_indices_s": round(t_obs, 4),
        "target_s": 5.0,
        "null_shape": list(null.shape),
    }


def _cnn7() -> torch.nn.Module:
    torch.manual_seed(0)
    return CNN7().eval()


def _grey(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a[:, None].repeat(3, 1) - 0.5)


def bench_responses(model_name: str, repeats: int) -> dict[str, Any]:
    from orisel.extraction.network import analysed_layers
    from orisel.models import build_model

    model = _cnn7() if model_name == "cnn7" else build_model(model_name)[0].eval()
    size = 32 if model_name == "cnn7" else 224
    g = gratings(size)
    layers = analysed_layers(model)
    batch = 256 if model_name == "cnn7" else 32
    pre = [_grey(g.render(np.arange(s, min(s + batch, len(g))))) for s in range(0, len(g), batch)]
    bare, ours = [], []
    with torch.no_grad():
        for _ in range(repeats):
            bare.append(_timed(lambda: [model(x) for x in pre])[0])
            ours.append(
                _timed(
                    lambda: forward_collect(
                        model, stimulus_batches(g.render, len(g), batch, _grey), layers
                    )
                )[0]
            )
    return {
        "model": model_name,
        "stimuli": len(g),
        "layers": len(layers),
        "bare_forward_s": round(min(bare), 3),
        "extraction_s": round(min(ours), 3),
        "ratio_extraction_over_bare": round(min(ours) / min(bare), 3),
        "target": 1.10,
    }


def _peak_rss_mb(model_name: str, n_frequencies: int) -> float:
    # VmHWM (the peak resident set of this process image) is read inside the child: unlike
    # ru_maxrss it does not inherit the parent's peak across fork and exec.
    code = (
        "import numpy as np, torch\n"
        "from orisel.models import build_model\n"
        "from orisel.extraction.network import analysed_layers\n"
        "from orisel.science.responses import forward_collect, stimulus_batches\n"
        "from orisel.science.stimuli import gratings\n"
        "def hwm():\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM'):\n"
        "            return int(line.split()[1]) / 1024\n"
        f"m = build_model({model_name!r})[0].eval()\n"
        f"g = gratings({224 if model_name != 'cnn7' else 32}, n_frequencies={n_frequencies})\n"
        "pre = lambda a: torch.from_numpy(a[:, None].repeat(3, 1) - 0.5)\n"
        "r = forward_collect(m, stimulus_batches(g.render, len(g), 32, pre), analysed_layers(m))\n"
        "print(hwm())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def bench_memory(model_name: str, few: int, many: int) -> dict[str, Any]:
    a = _peak_rss_mb(model_name, few)
    b = _peak_rss_mb(model_name, many)
    return {
        "model": model_name,
        "stimuli_few": 48 * few,
        "stimuli_many": 48 * many,
        "peak_rss_mb_few": round(a, 1),
        "peak_rss_mb_many": round(b, 1),
        "ratio_many_over_few": round(b / a, 3),
        "target_mb": 4096,
    }


def bench_sweep(n_images: int, with_naive: bool) -> dict[str, Any]:
    model = _cnn7()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n_images, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (n_images,), generator=gen)
    fractions = [round(0.1 * i, 1) for i in range(11)]
    steps = chain.sequential_view(model)
    assert steps is not None
    sites = ("bn1", "bn2", "bn3", "bn4", "bn5", "bn6", "bn7")
    masks: dict[str, np.ndarray] = {}
    for site in sites:
        with torch.no_grad():
            c = run_prefix_channels(steps, site, x[:1])
        scores = np.random.default_rng(1).random(c)
        masks[site] = np.concatenate(
            [
                sel.cumulative_masks(sel.ranking(scores, "descending"), fractions),
                sel.cumulative_masks(sel.ranking(scores, "ascending"), fractions),
                sel.cumulative_masks(sel.random_ranking(c, 0), fractions),
            ]
        )
    engine_s, fast = _timed(ab.sweep_sites, model, masks, x, y)
    bound_s = 0.0
    per_layer = []
    for site in sites:
        distinct = len({ab._mask_key(m) for m in masks[site] if m.any()})
        # The bound: only the suffix forward passes, one per distinct non-empty mask, in the
        # engine's batch sizes, on activations already in memory; no masking, no loss.
        prefix, suffix = chain.split_at(steps, site)
        with torch.no_grad():
            act = chain.run_steps(prefix, x[:1000])
            rows = ab.suffix_rows(act[0].numel() * act.element_size())
            rep = act.repeat(max(1, rows // len(act)), *[1] * (act.ndim - 1))
            t_rep, _ = _timed(_passes, suffix, rep, rows)
        bound = t_rep / len(rep) * n_images * distinct
        bound_s += bound
        per_layer.append(
            {
                "site": site,
                "masks": len(masks[site]),
                "distinct_nonempty": distinct,
                "bound_s": round(bound, 3),
            }
        )
    out: dict[str, Any] = {
        "images": n_images,
        "configs": sum(len(m) for m in masks.values()),
        "engine_s": round(engine_s, 2),
        "bound_s": round(bound_s, 2),
        "ratio_engine_over_bound": round(engine_s / bound_s, 3),
        "target": 1.25,
        "per_layer": per_layer,
    }
    if with_naive:
        naive_s, slow = _timed(ab.sweep_sites, model, masks, x, y, engine="naive")
        diff = max(
            max(abs(a.loss_increase_mean - b.loss_increase_mean), abs(a.accuracy - b.accuracy))
            for site in sites
            for a, b in zip(fast[site], slow[site], strict=True)
        )
        out |= {
            "naive_s": round(naive_s, 2),
            "speedup_naive_over_engine": round(naive_s / engine_s, 2),
            "max_abs_difference": diff,
        }
    return out


def bench_vgg_sweep(n_images: int, size: int = 64) -> dict[str, Any]:
    """VGG16 (random weights) at a small input size: the cached sweep engine against the
    naive one (the whole network per mask), same masks, same images, side by side."""
    from orisel.models.registry import build_model

    model, _ = build_model("vgg16", image_size=size)
    model.eval()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n_images, 3, size, size, generator=gen)
    y = torch.randint(0, 1000, (n_images,), generator=gen)
    fractions = [0.0, 0.25, 0.5, 0.75, 1.0]
    steps = chain.sequential_view(model)
    assert steps is not None
    sites = ("features.1", "features.15", "features.29")  # early, middle and last conv ReLU
    masks: dict[str, np.ndarray] = {}
    for site in sites:
        with torch.no_grad():
            c = run_prefix_channels(steps, site, x[:1])
        scores = np.random.default_rng(1).random(c)
        masks[site] = np.concatenate(
            [
                sel.cumulative_masks(sel.ranking(scores, "descending"), fractions),
                sel.cumulative_masks(sel.random_ranking(c, 0), fractions),
            ]
        )
    engine_s, fast = _timed(ab.sweep_sites, model, masks, x, y, chunk_images=n_images)
    naive_s, slow = _timed(ab.sweep_sites, model, masks, x, y, engine="naive")
    diff = max(
        abs(a.loss_increase_mean - b.loss_increase_mean)
        for site in sites
        for a, b in zip(fast[site], slow[site], strict=True)
    )
    return {
        "model": "vgg16 (random weights)",
        "input_size": size,
        "images": n_images,
        "sites": list(sites),
        "configs": sum(len(m) for m in masks.values()),
        "engine_s": round(engine_s, 2),
        "naive_s": round(naive_s, 2),
        "speedup_naive_over_engine": round(naive_s / engine_s, 2),
        "max_abs_difference": diff,
    }


def _passes(suffix: list[ab.Step], rep: torch.Tensor, rows: int) -> None:
    for i in range(0, len(rep), rows):
        chain.run_steps(suffix, rep[i : i + rows])


def run_prefix_channels(steps: list[ab.Step], site: str, x: torch.Tensor) -> int:
    prefix, _ = chain.split_at(steps, site)
    return int(chain.run_steps(prefix, x).shape[1])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--only", choices=["indices", "responses", "memory", "sweep", "vgg-sweep"], action="append"
    )
    ap.add_argument("--images", type=int, default=10_000, help="test images in the sweep")
    ap.add_argument("--no-naive", action="store_true", help="skip the (slow) naive sweep")
    ap.add_argument("--vgg", action="store_true", help="also time VGG16 extraction and memory")
    ap.add_argument("--out", type=Path, help="write the results as JSON here too")
    args = ap.parse_args()
    parts = args.only or ["indices", "responses", "memory", "sweep", "vgg-sweep"]
    results: dict[str, Any] = {"torch_threads": torch.get_num_threads()}
    if "indices" in parts:
        results["indices"] = bench_indices()
    if "responses" in parts:
        results["responses"] = [bench_responses("cnn7", 3)]
        if args.vgg:
            results["responses"].append(bench_responses("vgg16", 1))
    if "memory" in parts:
        results["memory"] = [bench_memory("cnn7", 1, 9)]
        if args.vgg:
            results["memory"].append(bench_memory("vgg16", 1, 9))
    if "sweep" in parts:
        results["sweep"] = bench_sweep(args.images, not args.no_naive)
    if "vgg-sweep" in parts:
        results["vgg_sweep"] = bench_vgg_sweep(min(args.images, 500))
    results["peak_rss_mb_this_process"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
    )
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
