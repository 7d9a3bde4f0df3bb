"""The gRPC contract: every service offers the same job verbs; messages carry references."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

DOMAINS = ("training", "extraction", "scoring", "ablation", "pipeline")
VERBS = {"Submit", "Get", "Watch", "Cancel", "List"}


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_service_has_the_job_verbs(domain: str) -> None:
    pb2 = importlib.import_module(f"orisel.api.{domain}.v1.{domain}_pb2")
    (service,) = pb2.DESCRIPTOR.services_by_name.values()
    assert service.full_name.startswith(f"orisel.api.{domain}.v1.")
    assert {m.name for m in service.methods} == VERBS
    watch = service.methods_by_name["Watch"]
    assert watch.server_streaming
    assert "idempotency_key" in pb2.SubmitRequest.DESCRIPTOR.fields_by_name


def test_no_tensor_fields() -> None:
    """Specs reference artifacts; no message carries raw bytes."""
    for domain in ("common", *DOMAINS):
        pb2 = importlib.import_module(f"orisel.api.{domain}.v1.{domain}_pb2")
        for message in pb2.DESCRIPTOR.message_types_by_name.values():
            for f in message.fields:
                assert f.type != f.TYPE_BYTES, f"{message.full_name}.{f.name}"


def test_artifact_ref_roundtrip() -> None:
    from orisel.api.common.v1 import common_pb2

    ref = common_pb2.ArtifactRef(bucket="orisel", key="runs/a/best.pt", sha256="ab" * 32, size=7)
    assert common_pb2.ArtifactRef.FromString(ref.SerializeToString()) == ref


BUF = Path(sys.executable).parent / "buf"  # buf-bin, in the lint extra


def test_buf_lint_passes_the_contract_and_refuses_a_bad_message(tmp_path: Path) -> None:
    protos = Path(__file__).resolve().parents[2] / "protos"
    done = subprocess.run([str(BUF), "lint"], cwd=protos, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    bad = tmp_path / "orisel" / "api" / "bad" / "v1"
    bad.mkdir(parents=True)
    (tmp_path / "buf.yaml").write_text((protos / "buf.yaml").read_text())
    (bad / "bad.proto").write_text(
        'syntax = "proto3";\npackage orisel.api.bad.v1;\nmessage spec_message {\n'
        "  int32 BadField = 1;\n}\n"
    )
    done = subprocess.run([str(BUF), "lint"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode != 0
    assert "spec_message" in done.stdout
    assert "BadField" in done.stdout
