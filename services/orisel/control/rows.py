"""Jobs as rows: a new job's row (its fields checked), the canonical JSON of a spec, job ids,
and events as read back."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from orisel.control.job import KINDS, Job, JobState
from orisel.control.schema import KEY_LEN, NAME_LEN
from orisel.kernel.errors import InvalidArgument

ID_RE = re.compile(r"[0-9a-f]{32}")
MAX_SPEC_BYTES = 64 * 1024


def canonical(spec: dict[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True, separators=(",", ":"))


def check_id(job_id: str, field: str = "id") -> str:
    if not isinstance(job_id, str) or not ID_RE.fullmatch(job_id):
        raise InvalidArgument(field, "a job id as returned by Submit (32 hex digits)", job_id)
    return job_id


@dataclass(frozen=True)
class NewJob:
    """What a Submit (or a parent creating a child) asks for."""

    kind: str
    spec: dict[str, Any]
    task: str
    queue: str
    idempotency_key: str = ""
    owner: str = ""
    parent_id: str = ""


@dataclass(frozen=True)
class Event:
    job_id: str
    seq: int
    at: float
    type: str
    state: JobState
    principal: str
    data: dict[str, Any]


def new_row(new: NewJob, now: float) -> dict[str, Any]:
    """The row of a new job, created at `now`, its fields checked; raises InvalidArgument
    naming the field."""
    if new.kind not in KINDS:
        raise InvalidArgument("kind", f"one of {', '.join(KINDS)}", new.kind)
    key = new.idempotency_key
    if len(key) > KEY_LEN or any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise InvalidArgument("idempotency_key", f"at most {KEY_LEN} printable characters", key)
    body = canonical(new.spec).encode()
    if len(body) > MAX_SPEC_BYTES:
        raise InvalidArgument("spec", f"at most {MAX_SPEC_BYTES} bytes as JSON", len(body))
    return {
        "id": uuid.uuid4().hex,
        "kind": new.kind,
        "state": int(JobState.QUEUED),
        "spec": new.spec,
        "spec_sha256": hashlib.sha256(body).hexdigest(),
        "idempotency_key": new.idempotency_key or None,
        "owner": new.owner,
        "parent_id": new.parent_id or None,
        "task": new.task,
        "queue": new.queue,
        "metrics": {},
        "outputs": [],
        "version": 1,
        "created_at": now,
        "updated_at": now,
        "dispatch_at": now,
    }


def queued_job(values: dict[str, Any]) -> Job:
    """The job a new row (new_row) holds, as committed: its columns that are the Job's
    fields, the rest at their defaults (the columns' server defaults)."""
    fields = {f.name for f in dataclasses.fields(Job)}
    given = {k: v for k, v in values.items() if k in fields}
    given |= {
        "state": JobState.QUEUED,
        "idempotency_key": values["idempotency_key"] or "",
        "parent_id": values["parent_id"] or "",
        "outputs": (),
    }
    return Job(**given)


def event_row(
    job_id: str, seq: int, at: float, type_: str, state: int, principal: str, data: dict[str, Any]
) -> dict[str, Any]:
    """The job_events row of one recorded change."""
    return {
        "job_id": job_id,
        "seq": seq,
        "at": at,
        "type": type_,
        "state": state,
        "principal": principal[:NAME_LEN],
        "data": data,
    }
