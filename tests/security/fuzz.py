"""A property-based fuzzer for every RPC of every orisel service: Hypothesis builds request
messages from their descriptors, valid and invalid alike (traversal strings, huge and odd
Unicode, NULs, out-of-range enums and numbers, nested references), and sends them to a live
server; then, for every method, bytes that decode to no message (bad UTF-8, a truncated
varint, nesting past protobuf's limit) and a NUL in each of its string fields in turn. Used
by the test suite (a bounded run) and by `make bench` (a longer one)."""

from __future__ import annotations

import base64
import importlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor, ServiceDescriptor
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

# Service stubs by module: (pb2 module, grpc module, service name).
SERVICES = (
    ("orisel.api.jobs.v1.jobs", "JobService"),
    ("orisel.api.artifacts.v1.artifacts", "ArtifactService"),
    ("orisel.api.training.v1.training", "TrainingService"),
    ("orisel.api.extraction.v1.extraction", "ExtractionService"),
    ("orisel.api.scoring.v1.scoring", "ScoringService"),
    ("orisel.api.ablation.v1.ablation", "AblationService"),
    ("orisel.api.pipeline.v1.pipeline", "PipelineService"),
)
ESCAPE_DIR = "/tmp/orisel-fuzz-escape"  # nothing may ever create it
NASTY = [
    "",
    ".",
    "..",
    "../../../../etc/passwd",
    "/etc/passwd",
    f"{ESCAPE_DIR}/x",
    f"../../../../..{ESCAPE_DIR}/y",
    "runs/../../x",
    "datasets/x",
    "users/anonymous/x",
    "a\x00b",
    "\x00",
    "runs/%2e%2e/x",
    "C:\\Windows",
    "~/x",
    "gratings",
    "layer1",
    "gosi",
    "relu",
    "bn",
    "zero",
    "resnet18",
    "x" * 5000,
    "\U0001f600" * 300,
    "\u202e\u0000\ufeff",
    "0" * 32,
    "f" * 64,
    "orisel",
    "s3://other-bucket/key",
    # A page token that decodes, to a job id holding a NUL.
    base64.urlsafe_b64encode(json.dumps([1.0, "\x00"]).encode()).decode(),
]
BAD_CODES = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}


def _text() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(NASTY), st.text(max_size=40))


def _scalar(f: FieldDescriptor) -> st.SearchStrategy[Any]:
    t = f.type
    if t == FieldDescriptor.TYPE_STRING:
        return _text()
    if t == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=256)
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.one_of(
            st.floats(allow_nan=True, allow_infinity=True, width=32),
            st.sampled_from([0.0, 0.5, 1.0, -1.0, 1e300]),
        )
    if t == FieldDescriptor.TYPE_ENUM:
        return st.one_of(
            st.sampled_from([v.number for v in f.enum_type.values]), st.integers(-5, 1000)
        )
    if t in (
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SFIXED32,
    ):
        return st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from([0, 1, -1, 10, 10**6]))
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return st.integers(0, 2**32 - 1)
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return st.integers(0, 2**64 - 1)
    return st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, 1, -1, 7]))


def message(desc: Descriptor, cls: Callable[..., Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Messages of type `cls`: each field present or not, oneofs with one member or none."""
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for f in desc.fields:
        if f.message_type is not None:
            if depth >= 3 or f.message_type.full_name.startswith("google.protobuf"):
                continue
            sub_cls = _class_of(f.message_type)
            inner = message(f.message_type, sub_cls, depth + 1)
        else:
            inner = _scalar(f)
        if f.is_repeated:
            parts[f.name] = st.lists(inner, max_size=4)
        else:
            parts[f.name] = inner
    oneof_members = {f.name: o.name for o in desc.oneofs for f in o.fields}

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        chosen_oneof: dict[str, str] = {}
        values: dict[str, Any] = {}
        for name, strategy in parts.items():
            if not draw(st.booleans()):
                continue
            group = oneof_members.get(name)
            if group is not None:
                if group in chosen_oneof:
                    continue
                chosen_oneof[group] = name
            values[name] = draw(strategy)
        try:
            return cls(**values)
        except (ValueError, TypeError):  # a value protobuf itself refuses (e.g. bad UTF-8)
            return cls()

    return build()


_CLASSES: dict[str, Any] = {}


def _class_of(desc: Descriptor) -> Any:
    if desc.full_name not in _CLASSES:
        from google.protobuf import message_factory

        _CLASSES[desc.full_name] = message_factory.GetMessageClass(desc)
    return _CLASSES[desc.full_name]


@dataclass
class Report:
    examples: int = 0
    failures: list[str] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)


def methods() -> Iterator[tuple[str, str, Any, Any, bool, bool]]:
    """(service, method, request class, stub factory, client streams, server streams)."""
    for module, service in SERVICES:
        pb2 = importlib.import_module(f"{module}_pb2")
        grpc_mod = importlib.import_module(f"{module}_pb2_grpc")
        sd: ServiceDescriptor = pb2.DESCRIPTOR.services_by_name[service]
        stub = getattr(grpc_mod, f"{service}Stub")
        for m in sd.methods:
            yield (
                service,
                m.name,
                _class_of(m.input_type),
                stub,
                m.client_streaming,
                m.server_streaming,
            )


def _probe(
    call: Any, where: str, client_streams: bool, server_streams: bool, report: Report
) -> Callable[[Any], None]:
    def one(request: Any) -> None:
        report.examples += 1
        try:
            if client_streams:
                call(iter(request), timeout=10)
            elif server_streams:
                for _ in call(request, timeout=3):
                    pass
            else:
                call(request, timeout=10)
            code = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            code = exc.code()
        report.codes[code.name] = report.codes.get(code.name, 0) + 1
        if code in BAD_CODES:
            report.failures.append(f"{where}: {code.name} for {str(request)[:300]!r}")

    return one


def malformed(cls: Any) -> dict[str, bytes]:
    """Requests, as bytes, that no parser makes a message of `cls` (by what is wrong)."""
    out = {
        "truncated varint": b"\x08\xff",
        "length past the end": b"\x0a\x05ab",
        "nesting past the limit": b"\x0b" * 200 + b"\x0c" * 200,
    }
    text = [f for f in cls.DESCRIPTOR.fields if f.type == FieldDescriptor.TYPE_STRING]
    if text:
        out["bad UTF-8"] = bytes([text[0].number << 3 | 2, 2]) + b"\xff\xfe"
    return out


def string_paths(desc: Descriptor, depth: int = 0) -> Iterator[list[FieldDescriptor]]:
    """Every string field of a message and of the messages it holds (to depth 3)."""
    for f in desc.fields:
        if f.type == FieldDescriptor.TYPE_STRING:
            yield [f]
        elif f.message_type is not None and depth < 3 and _nested(f.message_type):
            yield from ([f, *rest] for rest in string_paths(f.message_type, depth + 1))


def _nested(desc: Descriptor) -> bool:
    """A message of ours a request holds (not a map entry, not a well-known type)."""
    return not desc.GetOptions().map_entry and not desc.full_name.startswith("google.protobuf")


def with_nul(cls: Any, path: list[FieldDescriptor]) -> Any:
    """A `cls` whose field at `path` (and nothing else) holds a NUL."""
    root = cls()
    target = root
    for f in path[:-1]:
        target = getattr(target, f.name).add() if f.is_repeated else getattr(target, f.name)
    last = path[-1]
    if last.is_repeated:
        getattr(target, last.name).append("a\x00b")
    else:
        setattr(target, last.name, "a\x00b")
    return root


def fuzz(channel: grpc.Channel, examples_per_method: int, report: Report, seed: int = 0) -> None:
    """Send generated requests to every method, then undecodable bytes and a NUL in every
    string field; record any UNKNOWN/INTERNAL answer."""
    for service, name, cls, stub_cls, client_streams, server_streams in methods():
        call = getattr(stub_cls(channel), name)
        where = f"{service}.{name}"
        raw_call = {
            (False, False): channel.unary_unary,
            (False, True): channel.unary_stream,
            (True, False): channel.stream_unary,
            (True, True): channel.stream_stream,
        }[client_streams, server_streams](f"/{cls.DESCRIPTOR.file.package}.{service}/{name}")
        raw = _probe(raw_call, f"{where} (bytes)", client_streams, server_streams, report)
        for payload in malformed(cls).values():
            raw([payload] if client_streams else payload)
        nul = _probe(call, f"{where} (NUL)", client_streams, server_streams, report)
        for path in string_paths(cls.DESCRIPTOR):
            request = with_nul(cls, path)
            nul([request] if client_streams else request)
        strategy = message(cls.DESCRIPTOR, cls)
        if client_streams:
            strategy = st.lists(strategy, max_size=4)
        probe = _probe(call, where, client_streams, server_streams, report)
        run = settings(
            max_examples=examples_per_method,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            derandomize=seed == 0,
            suppress_health_check=list(HealthCheck),
        )(given(strategy)(probe))
        run()
