"""Artifacts through ArtifactService: `orisel fetch` (a job's whole result, or one key) and
`orisel push`; inside a deployment, `fetch --direct` reads the store itself."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

from tqdm import tqdm

from orisel.client.args import emit
from orisel.client.follow import state_name
from orisel.kernel.errors import FailedPrecondition, InvalidArgument
from orisel.runtime.settings import get_settings

# A job's id (uuid4 hex); anything else `orisel fetch` reads as an artifact's key.
JOB_ID = re.compile(r"[0-9a-f]{32}")
MAX_LISTED = 1000  # ArtifactService.List's cap


def _job_artifacts(job: Any, client: Any) -> dict[str, Any]:
    """Every artifact of a job, by its path inside the job's result: what is stored under
    runs/<job>/ (training) and analyses/<job>/ (analyses), and the job's recorded outputs."""
    from orisel.store.backend import ArtifactRef

    found: dict[str, Any] = {}
    refs = [ArtifactRef.from_proto(o) for o in job.outputs]
    for prefix in (f"runs/{job.id}/", f"analyses/{job.id}/"):
        listed = client.list(prefix)
        if len(listed) >= MAX_LISTED:
            raise FailedPrecondition(
                f"job {job.id} has more than {MAX_LISTED} artifacts under {prefix}: fetch them "
                "by key (orisel fetch KEY)"
            )
        refs += listed
    for ref in refs:
        rel = ref.key.split("/", 2)[2]
        if found.setdefault(rel, ref).key != ref.key:
            raise FailedPrecondition(f"job {job.id}: {ref.key} and {found[rel].key} collide")
    return found


def _fetch_job(args: argparse.Namespace) -> int:
    """`orisel fetch JOB --out DIR`: the job's whole result into a new folder, each file
    checked against its sha256; the folder appears only once complete."""
    import shutil
    import tempfile

    from orisel.client.artifacts import ArtifactClient
    from orisel.client.jobs import JobClient

    out = Path(args.out or args.key)
    if out.exists() or out.is_symlink():
        raise FailedPrecondition(f"{out} exists: fetch never writes over anything; choose --out")
    jobs, client = JobClient(args.server), ArtifactClient(args.server)
    try:
        job = jobs.get(args.key)
        artifacts = _job_artifacts(job, client)
        if not artifacts:
            raise FailedPrecondition(f"job {job.id} ({state_name(job.state)}) has no artifacts yet")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        total = sum(r.size for r in artifacts.values())
        bar = tqdm(total=total, unit="B", unit_scale=True, disable=args.quiet or args.json)
        try:
            for rel, ref in sorted(artifacts.items()):
                bar.set_postfix_str(rel)
                client.download(ref.key, tmp / rel)
                bar.update(ref.size)
            os.rename(tmp, out)  # refuses a folder that appeared meanwhile with files in it
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            bar.close()
    finally:
        jobs.close()
        client.close()
    files = [{"path": str(out / rel), **ref.__dict__} for rel, ref in sorted(artifacts.items())]
    emit(
        args,
        {"job": job.id, "out": str(out), "files": files},
        f"job {job.id}: {len(files)} files ({total} bytes, each sha256-checked) -> {out}",
    )
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    if JOB_ID.fullmatch(args.key) and not args.direct:
        return _fetch_job(args)
    out = Path(args.out or Path(args.key).name)
    if args.direct:
        # Inside a deployment (a worker's init container): the store with its own credentials.

        from orisel.store.backend import make_store

        store = make_store(get_settings())
        ref = store.stat(args.key)
        store.get_file(ref, out)
    else:
        from orisel.client.artifacts import ArtifactClient

        client = ArtifactClient(args.server)
        try:
            ref = client.download(args.key, out)
        finally:
            client.close()
    emit(
        args,
        {"path": str(out), **ref.__dict__},
        f"{ref.key} ({ref.size} bytes, sha256 {ref.sha256[:12]}) -> {out}",
    )
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from orisel.client.artifacts import ArtifactClient

    path = Path(args.file)
    if not path.is_file():
        raise InvalidArgument("FILE", "an existing file", str(path))
    client = ArtifactClient(args.server)
    try:
        ref = client.upload(path, args.key)
    finally:
        client.close()
    emit(args, ref.__dict__, f"{path} -> {ref.key} ({ref.size} bytes, sha256 {ref.sha256[:12]})")
    return 0
