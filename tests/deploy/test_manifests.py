"""Deployment, checked offline: every overlay renders with kubectl's kustomize and passes
kubernetes-validate --strict; the GPU shape lands on the GPU workers only; every container
runs non-root on a read-only root with limits; the Dockerfile passes hadolint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = ROOT / ".tools" / "bin" / "kubectl"
CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
BIN = Path(sys.executable).parent
GPU_WORKERS = {"orisel-worker-training", "orisel-worker-extraction", "orisel-worker-ablation"}
needs_kubectl = pytest.mark.skipif(not KUBECTL.exists(), reason="run `make tools` first")


def render(overlay: str, registry: str = "", tag: str = "") -> list[dict[str, Any]]:
    env = {**os.environ, "PATH": f"{KUBECTL.parent}:{os.environ['PATH']}"}
    done = subprocess.run(
        [str(ROOT / "deploy" / "render.sh"), overlay, registry, tag],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def pods(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "Job"):
            out[d["metadata"]["name"]] = d["spec"]["template"]["spec"]
    return out


@needs_kubectl
@pytest.mark.parametrize("overlay", ["dev", "gpu"])
def test_overlay_renders_and_validates_strictly(overlay: str, tmp_path: Path) -> None:
    docs = render(overlay)
    out = tmp_path / f"{overlay}.yaml"
    out.write_text(yaml.safe_dump_all(docs))
    done = subprocess.run(
        [str(BIN / "kubernetes-validate"), "--strict", "--quiet", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ServiceAccount", "StatefulSet", "Job", "ConfigMap"} <= kinds
    assert "PodDisruptionBudget" in kinds
    assert all(d["metadata"].get("namespace") == "orisel" for d in docs if d["kind"] != "Namespace")
    assert not [d for d in docs if d["kind"] == "Secret"]  # referenced, never committed


@needs_kubectl
def test_gpu_limits_and_tolerations_on_the_gpu_workers_only() -> None:
    gpu, dev = pods(render("gpu")), pods(render("dev"))
    for name, spec in gpu.items():
        c = spec["containers"][0]
        has_gpu = "nvidia.com/gpu" in c["resources"].get("limits", {})
        tolerated = any(t["key"] == "nvidia.com/gpu" for t in spec.get("tolerations", []))
        assert has_gpu == tolerated == (name in GPU_WORKERS), name
        assert ("orisel-gpu" in c["image"]) == (name in GPU_WORKERS), name
    assert not any("nvidia.com/gpu" in str(spec) for spec in dev.values())
    kinds = {d["kind"] for d in render("gpu")}
    assert {"ScaledObject", "ServiceMonitor", "NetworkPolicy"} <= kinds


@needs_kubectl
def test_every_container_is_locked_down_with_limits_and_probes() -> None:
    for name, spec in pods(render("gpu")).items():
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert {"cpu", "memory"} <= set(c["resources"]["limits"]), name
        if name.removeprefix("orisel-") in ("training", "extraction", "scoring", "ablation"):
            main = spec["containers"][0]
            assert main["readinessProbe"] == {"grpc": {"port": 50051}, "periodSeconds": 5}
            assert main["args"] == ["serve", name.removeprefix("orisel-")]


@needs_kubectl
def test_registry_and_tag_reach_every_orisel_image() -> None:
    images = {
        c["image"]
        for spec in pods(render("gpu", "reg.example/team/", "v9")).values()
        for c in spec["containers"] + spec.get("initContainers", [])
    }
    ours = {i for i in images if "orisel" in i}
    assert ours == {"reg.example/team/orisel:v9", "reg.example/team/orisel-gpu:v9"}


@needs_kubectl
@pytest.mark.skipif(not CHECKOV.exists(), reason="run `make tools` first")
@pytest.mark.parametrize("overlay", ["dev", "gpu"])
def test_checkov_passes_with_every_skip_explained(overlay: str, tmp_path: Path) -> None:
    out = tmp_path / "rendered.yaml"
    out.write_text(yaml.safe_dump_all(render(overlay, "reg.example/team", "v1")))
    config = ROOT / ".checkov.yaml"
    for target, framework in ((out, "kubernetes"), (ROOT / "docker" / "Dockerfile", "dockerfile")):
        done = subprocess.run(
            [str(CHECKOV), "--config-file", str(config), "-f", str(target),
             "--framework", framework, "-o", "json"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    skipped = yaml.safe_load(config.read_text())["skip-check"]
    text = config.read_text()
    for check in skipped:  # each skip has a comment saying why, right above it
        above = text.split(f"- {check}")[0].rstrip().splitlines()[-1]
        assert above.strip().startswith("#"), check


def test_generated_base_is_fresh() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "k8s" / "generate.py"), "--check"])
    assert done.returncode == 0


def test_dockerfile_passes_hadolint() -> None:
    done = subprocess.run(
        [str(BIN / "hadolint"), str(ROOT / "docker" / "Dockerfile")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = (ROOT / "docker" / "Dockerfile").read_text()
    assert "USER 10001" in text
    assert 'ENTRYPOINT ["orisel"]' in text
