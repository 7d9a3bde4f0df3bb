"""Service benchmarks, each measured side by side in one run (ratios, not absolute targets).
(Submit latency, streams, List and recovery are in bench_control.py.)

overhead  one ablation sweep through the ablation service + a Celery worker process against
          the library called directly, same checkpoint, images and thread count
store     put/get throughput of the S3 store (sha256 recorded and verified) against the raw
          minio client, on a local S3 server (moto)

Needs PostgreSQL and Redis on 127.0.0.1 and the CIFAR-10 archive (--data).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.procs import moto_server
from tests.stack import stack

from orisel.ablation.scores import UnitScores
from orisel.ablation.spec import AblateSpec
from orisel.analyses import ablate
from orisel.api.ablation.v1 import ablation_pb2, ablation_pb2_grpc
from orisel.client.cli import main as cli
from orisel.data.prepare import stratified_split
from orisel.data.sources import load_cifar10
from orisel.extraction.network import load_network
from orisel.runtime.settings import Settings
from orisel.store.backend import LocalStore, S3Store


def _checkpoint(root: Path, data: Path) -> tuple[Path, Path]:
    run, tune = root / "run", root / "tune"
    base = ["--data", str(data), "-q"]
    assert (
        cli(
            [
                "train",
                *base,
                "--out",
                str(run),
                "--epochs",
                "1",
                "--train-subset",
                "4000",
                "--val-size",
                "1000",
                "--test-subset",
                "1000",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    best = str(run / "best.pt")
    assert (
        cli(
            [
                "tune",
                *base,
                "--checkpoint",
                best,
                "--out",
                str(tune),
                "--permutations",
                "10",
                "--test-subset",
                "1000",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    return run / "best.pt", tune


def bench_overhead(root: Path, data: Path, images: int) -> dict[str, Any]:

    ckpt, tune = _checkpoint(root / "overhead", data)
    spec = AblateSpec()
    ds = load_cifar10(data)
    _, keep = stratified_split(ds.test_labels, images, seed=0)
    t0 = time.perf_counter()
    ablate(
        load_network(ckpt, device="cpu"),
        spec,
        UnitScores(tune, "gratings"),
        ds.test_images[keep],
        ds.test_labels[keep],
        root / "overhead" / "library",
    )
    library_s = time.perf_counter() - t0

    # The worker reads the same decoded-data cache as the library did (the user's default).
    cache = Settings().cache_dir
    with stack(root / "overhead" / "stack", data=data, cache_dir=cache) as live:
        store = LocalStore(live.settings.store_root, live.settings.bucket)
        ckpt_ref = store.put_file("runs/bench/best.pt", ckpt)
        units_ref = store.put_file("analyses/bench/tune/units.csv", tune / "units.csv")
        live.serve(("ablation",))
        live.start_controller()
        live.worker("ablation", threads=torch.get_num_threads())  # as many as the library
        sweep = ablation_pb2.SweepSpec(
            checkpoint=ckpt_ref.to_proto(), scores=units_ref.to_proto(), test_subset=images
        )
        time.sleep(5)  # the worker is up before the clock starts, as in a running deployment
        with grpc.insecure_channel(live.address) as channel:
            stub = ablation_pb2_grpc.AblationServiceStub(channel)
            t0 = time.perf_counter()
            job = stub.Submit(ablation_pb2.SubmitRequest(sweep=sweep)).job
            for update in stub.Watch(ablation_pb2.WatchRequest(id=job.id)):
                job = update.job
            service_s = time.perf_counter() - t0
    return {
        "images": images,
        "library_s": round(library_s, 1),
        "service_s": round(service_s, 1),
        "state": job.state,
        "ratio_service_over_library": round(service_s / library_s, 3),
        "target_ratio": 1.10,
    }


def bench_store(size_mb: int = 64) -> dict[str, Any]:
    out: dict[str, Any] = {"object_mb": size_mb}
    with moto_server() as endpoint, tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "blob"
        src.write_bytes(np.random.default_rng(0).bytes(size_mb * 2**20))
        store = S3Store(endpoint, "test", "test", "bench")
        store.ensure_bucket()
        raw = store.client
        times: dict[str, list[float]] = {
            k: [] for k in ("orisel_put", "orisel_get", "raw_put", "raw_get")
        }
        for i in range(3):
            t = time.perf_counter()
            ref = store.put_file(f"o/{i}", src)
            times["orisel_put"].append(time.perf_counter() - t)
            t = time.perf_counter()
            store.get_file(ref, Path(tmp) / f"got{i}")
            times["orisel_get"].append(time.perf_counter() - t)
            t = time.perf_counter()
            raw.fput_object("bench", f"r/{i}", str(src))
            times["raw_put"].append(time.perf_counter() - t)
            t = time.perf_counter()
            raw.fget_object("bench", f"r/{i}", str(Path(tmp) / f"raw{i}"))
            times["raw_get"].append(time.perf_counter() - t)
    for k, v in times.items():
        out[f"{k}_mb_s"] = round(size_mb / float(np.median(v)), 1)
    out["put_ratio_orisel_over_raw"] = round(out["orisel_put_mb_s"] / out["raw_put_mb_s"], 3)
    out["get_ratio_orisel_over_raw"] = round(out["orisel_get_mb_s"] / out["raw_get_mb_s"], 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, required=True, help="CIFAR-10 archive")
    ap.add_argument("--only", choices=["overhead", "store"], action="append")
    ap.add_argument("--images", type=int, default=10_000, help="test images in the sweep")
    ap.add_argument("--out", type=Path, help="write the results as JSON here too")
    args = ap.parse_args()
    parts = args.only or ["overhead", "store"]
    results: dict[str, Any] = {"torch_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if "store" in parts:
            results["store"] = bench_store()
        if "overhead" in parts:
            results["overhead"] = bench_overhead(root, args.data, args.images)
    text = json.dumps(results, indent=2)
    sys.stdout.write(text + "\n")
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
