"""Write k8s/base/: one file per component, all from the tables below.

The five services, the controller and the five worker queues share one shape, so they come
from one skeleton instead of eleven hand-kept copies; `make lint` runs this with --check and
fails when the committed files differ from a fresh generation.

usage: python k8s/generate.py [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

BASE = Path(__file__).resolve().parent / "base"
SERVICES = ("training", "extraction", "scoring", "ablation", "pipeline")
GRPC, HEALTH, METRICS = 50051, 50052, 9100
# The services' certificate (cert-manager's Certificate in components/tls writes it).
TLS_SECRET, TLS_PATH = "orisel-tls", "/tls"
DATA_KEY, DATA_PATH = "datasets/cifar10-jpeg.tar.gz", "/work/data/cifar10-jpeg.tar.gz"
PART_OF = "orisel"
# Requests/limits per worker queue (CPU shape; the gpu component adds the accelerator).
WORKER_RESOURCES = {
    "training": ({"cpu": "2", "memory": "4Gi"}, {"cpu": "4", "memory": "8Gi"}),
    "extraction": ({"cpu": "1", "memory": "4Gi"}, {"cpu": "4", "memory": "8Gi"}),
    # Permutation statistics on stored activations: CPU work only, no network loaded.
    "scoring": ({"cpu": "2", "memory": "2Gi"}, {"cpu": "4", "memory": "4Gi"}),
    "ablation": ({"cpu": "1", "memory": "4Gi"}, {"cpu": "4", "memory": "8Gi"}),
    "pipeline": ({"cpu": "250m", "memory": "1Gi"}, {"cpu": "1", "memory": "2Gi"}),
}
SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
POD_SECURITY = {"fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}}
# Settings that carry credentials come from Secrets (deploy/README.md), the rest from the
# ConfigMap orisel-settings (settings.yaml).
SECRET_ENV = [
    ("ORISEL_DATABASE_URL", "orisel-database", "url"),
    ("ORISEL_BROKER_URL", "orisel-redis", "url"),
    ("ORISEL_S3_ACCESS_KEY", "orisel-s3", "access-key"),
    ("ORISEL_S3_SECRET_KEY", "orisel-s3", "secret-key"),
]
# Idle front ends and the controller hold no models: about 105 MB each.
SMALL = {
    "requests": {"cpu": "100m", "memory": "192Mi"},
    "limits": {"cpu": "1", "memory": "512Mi"},
}
METRICS_PROBES = {
    "readinessProbe": {"httpGet": {"path": "/metrics", "port": "metrics"}, "periodSeconds": 10},
    "livenessProbe": {
        "httpGet": {"path": "/metrics", "port": "metrics"},
        "periodSeconds": 30,
        "failureThreshold": 4,
    },
}


def labels(component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": f"orisel-{component}",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
    }


def meta(name: str, component: str) -> dict[str, Any]:
    return {"name": name, "labels": labels(component)}


def scratch() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Writable folders under a read-only root filesystem: /work (artifacts, data) and /tmp."""
    volumes = [
        {"name": "work", "emptyDir": {"sizeLimit": "20Gi"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}},
    ]
    mounts = [{"name": "work", "mountPath": "/work"}, {"name": "tmp", "mountPath": "/tmp"}]
    return volumes, mounts


def container(name: str, args: list[str], ports: list[dict[str, Any]]) -> dict[str, Any]:
    _, mounts = scratch()
    return {
        "name": name,
        "image": "orisel",
        "imagePullPolicy": "Always",
        "args": args,
        "envFrom": [{"configMapRef": {"name": "orisel-settings"}}],
        "env": [
            {"name": env, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
            for env, secret, key in SECRET_ENV
        ],
        "ports": ports,
        "securityContext": SECURITY,
        "volumeMounts": mounts,
    }


def migrate() -> dict[str, Any]:
    """First init container of every orisel pod: `orisel db upgrade` brings the job
    database's schema to head (the main containers run with ORISEL_DB_AUTO_MIGRATE=false).
    Idempotent, and concurrent runs queue on a PostgreSQL advisory lock."""
    c = container("migrate", ["db", "upgrade"], [])
    del c["ports"]
    c["resources"] = SMALL
    return c


def pod_spec(
    sa: str, c: dict[str, Any], grace: int, init: tuple[dict[str, Any], ...] = ()
) -> dict[str, Any]:
    volumes, _ = scratch()
    return {
        "serviceAccountName": sa,
        "automountServiceAccountToken": False,
        "securityContext": POD_SECURITY,
        "terminationGracePeriodSeconds": grace,
        "initContainers": [migrate(), *init],
        "containers": [c],
        "volumes": volumes,
    }


def workload(
    full: str, component: str, replicas: int, spec: dict[str, Any]
) -> list[dict[str, Any]]:
    """A component's ServiceAccount and Deployment."""
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(full, component)},
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta(full, component),
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels(component)},
                "template": {"metadata": {"labels": labels(component)}, "spec": spec},
            },
        },
    ]


def service_docs(name: str) -> list[dict[str, Any]]:
    component = name
    full = f"orisel-{name}"
    c = container(
        "server",
        ["serve", name],
        [
            {"name": "grpc", "containerPort": GRPC, "protocol": "TCP"},
            {"name": "metrics", "containerPort": METRICS, "protocol": "TCP"},
        ],
    )
    c["resources"] = SMALL
    # TLS on the service port; kubelet's gRPC probes speak no TLS, so they use a plaintext
    # port that serves only grpc.health.v1.
    c["ports"].append({"name": "health", "containerPort": HEALTH, "protocol": "TCP"})
    c["env"] += [
        {"name": "ORISEL_TLS_CERT_FILE", "value": f"{TLS_PATH}/tls.crt"},
        {"name": "ORISEL_TLS_KEY_FILE", "value": f"{TLS_PATH}/tls.key"},
        {"name": "ORISEL_HEALTH_PORT", "value": str(HEALTH)},
    ]
    c["volumeMounts"].append({"name": "tls", "mountPath": TLS_PATH, "readOnly": True})
    c["readinessProbe"] = {"grpc": {"port": HEALTH}, "periodSeconds": 5}
    # Liveness asks for the entry that stays SERVING while the job database is away (the
    # services read NOT_SERVING then: not ready, but a restart would not help).
    c["livenessProbe"] = {
        "grpc": {"port": HEALTH, "service": "liveness"},
        "periodSeconds": 20,
        "failureThreshold": 3,
    }
    c["startupProbe"] = {"grpc": {"port": HEALTH}, "periodSeconds": 2, "failureThreshold": 60}
    spec = pod_spec(full, c, 30)
    spec["volumes"].append({"name": "tls", "secret": {"secretName": TLS_SECRET}})
    return [
        *workload(full, component, 2, spec),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(full, component),
            "spec": {
                "selector": labels(component),
                "ports": [{"name": "grpc", "port": GRPC, "targetPort": "grpc"}],
            },
        },
        metrics_service(f"{full}-metrics", component),
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta(full, component),
            "spec": {"minAvailable": 1, "selector": {"matchLabels": labels(component)}},
        },
    ]


def controller_docs() -> list[dict[str, Any]]:
    """Sends queued jobs' tasks (the outbox) and re-sends what lost its worker or message;
    exports the job-state and queue-depth gauges. One replica is enough, more are safe."""
    component = "controller"
    full = f"orisel-{component}"
    c = container(
        "controller",
        ["controller"],
        [{"name": "metrics", "containerPort": METRICS, "protocol": "TCP"}],
    )
    c["resources"] = SMALL
    c |= METRICS_PROBES
    return [
        *workload(full, component, 1, pod_spec(full, c, 30)),
        metrics_service(f"{full}-metrics", component),
    ]


def metrics_service(name: str, component: str) -> dict[str, Any]:
    """Headless: DNS lists every pod, for Prometheus' dns_sd and the ServiceMonitor."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {**meta(name, component), "labels": {**labels(component), "metrics": "true"}},
        "spec": {
            "clusterIP": "None",
            "selector": labels(component),
            "ports": [{"name": "metrics", "port": METRICS, "targetPort": "metrics"}],
        },
    }


def worker_docs(queue: str) -> list[dict[str, Any]]:
    component = f"worker-{queue}"
    full = f"orisel-{component}"
    # Solo pool: one task at a time in the worker process itself, which serves /metrics.
    c = container(
        "worker",
        ["worker", "--queues", queue, "--pool", "solo"],
        [{"name": "metrics", "containerPort": METRICS, "protocol": "TCP"}],
    )
    requests, limits = WORKER_RESOURCES[queue]
    c["resources"] = {"requests": requests, "limits": limits}
    # The data set lives in the bucket (`orisel push`); each worker pod pulls it once.
    fetch = container("fetch-data", ["fetch", "--direct", DATA_KEY, "--out", DATA_PATH], [])
    del fetch["ports"]
    fetch["resources"] = {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    # The worker process itself serves /metrics: it answers while the worker lives.
    c |= METRICS_PROBES
    # A task in flight is requeued (acks_late) if the pod is stopped anyway; a worker killed
    # outright loses its lease, and the controller re-sends the job.
    spec = pod_spec(full, c, 120, (fetch,))
    return [
        *workload(full, component, 1, spec),
        metrics_service(f"{full}-metrics", component),
    ]


class Dumper(yaml.SafeDumper):
    """Spells shared values out in full: no &anchors and *aliases in the manifests."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(docs: list[dict[str, Any]]) -> str:
    header = "# Generated by k8s/generate.py; edit that, then `make manifests`.\n"
    return header + "---\n".join(yaml.dump(d, Dumper=Dumper, sort_keys=False) for d in docs)


def files() -> dict[str, str]:
    out = {f"{s}.yaml": dump(service_docs(s)) for s in SERVICES}
    out["controller.yaml"] = dump(controller_docs())
    out |= {f"worker-{q}.yaml": dump(worker_docs(q)) for q in SERVICES}
    return out


def main(check: bool) -> int:
    stale = []
    for name, text in files().items():
        path = BASE / name
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        sys.stderr.write(f"k8s/base is stale ({', '.join(stale)}): run `make manifests`\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main("--check" in sys.argv[1:]))
