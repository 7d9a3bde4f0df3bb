"""Monitoring as code: alert rules pass promtool's checks and unit tests, and every metric
the rules and the dashboard query is one orisel exports (or a named external one)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import orisel.runtime.metrics  # noqa: F401  (registers every metric)

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
EXTERNAL = {"up", "DCGM_FI_DEV_GPU_UTIL"}  # Prometheus' own and NVIDIA's DCGM exporter
promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool")


def _exported() -> set[str]:
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    names = set()
    for family in REGISTRY.collect():
        names |= {family.name + s for s in suffixes.get(family.type, ())}
    return names | {"orisel_queue_messages"}  # collected from the broker at scrape time


def _metrics_in(expr: str) -> set[str]:
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*(?=\s*[{\[(]|\s*$|\s*[<>=!+\-*/)])", expr))
    return {w for w in words if w.startswith(("orisel_", "DCGM_")) or w == "up"}


@promtool
def test_rules_and_config_pass_promtool() -> None:
    for args in (
        ["check", "rules", "rules/orisel.rules.yml"],
        ["check", "config", "prometheus.yml"],
        ["test", "rules", "tests/orisel.test.yml"],
    ):
        done = subprocess.run(["promtool", *args], cwd=PROM, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_every_queried_metric_exists() -> None:
    exported = _exported() | EXTERNAL
    rules = yaml.safe_load((PROM / "rules" / "orisel.rules.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "orisel.json").read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = set().union(*(_metrics_in(e) for e in exprs))
    assert "orisel_training_last_progress_timestamp_seconds" in used
    assert used - exported == set()
    assert len(dashboard["panels"]) >= 10
