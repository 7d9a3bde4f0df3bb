"""Authentication, encryption and isolation on a real server: TLS with a real CA, bearer
tokens from the job database, OIDC JWTs against a JWKS file, owners that cannot see each
other's jobs or artifacts, mutual TLS for services."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from orisel.api.artifacts.v1 import artifacts_pb2, artifacts_pb2_grpc
from orisel.api.common.v1 import common_pb2
from orisel.api.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from orisel.api.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from orisel.kernel.errors import FailedPrecondition
from orisel.runtime.settings import Settings
from orisel.security.auth import Tokens
from orisel.server.launch import security, start_front_end
from tests.certs import Pki, make_pki
from tests.procs import free_port
from tests.stack import Stack, stack

pytestmark = pytest.mark.service  # servicers in this process, on a real database
ISSUER, AUDIENCE = "https://issuer.test", "orisel"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def signing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """The issuer's RSA key and a JWKS file holding its public half."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    path = tmp_path_factory.mktemp("oidc") / "jwks.json"
    path.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}))
    return key, path


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, pki: Pki, signing: tuple[Any, Path]
) -> Iterator[Stack]:
    with stack(
        tmp_path_factory.mktemp("sec"),
        auth="token",
        allow_plaintext=False,
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
        oidc_jwks_file=signing[1],
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_admin_group="orisel-admins",
    ) as s:
        s.serve(("scoring",))
        yield s


@pytest.fixture(scope="module")
def tokens(live: Stack) -> dict[str, str]:
    t = Tokens(live.db)
    return {"alice": t.create("alice"), "bob": t.create("bob"), "root": t.create("root", True)}


def _channel(live: Stack, pki: Pki, ca: Path | None = None) -> grpc.Channel:
    creds = grpc.ssl_channel_credentials((ca or pki.ca).read_bytes())
    return grpc.secure_channel(live.address, creds)


def _md(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture(scope="module")
def channel(live: Stack, pki: Pki) -> Iterator[grpc.Channel]:
    with _channel(live, pki) as ch:
        yield ch


def _code(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        call()
    code: grpc.StatusCode = err.value.code()
    return code


def _upload(channel: grpc.Channel, token: str, key: str, data: bytes) -> Any:
    stub = artifacts_pb2_grpc.ArtifactServiceStub(channel)
    parts = [artifacts_pb2.UploadRequest(key=key), artifacts_pb2.UploadRequest(chunk=data)]
    return stub.Upload(iter(parts), metadata=_md(token)).artifact


def _submit(channel: grpc.Channel, token: str, key: str, ckpt: str) -> common_pb2.Job:
    spec = scoring_pb2.ScoreSpec(checkpoint=common_pb2.ArtifactRef(key=ckpt))
    request = scoring_pb2.SubmitRequest(idempotency_key=key, spec=spec)
    stub = scoring_pb2_grpc.ScoringServiceStub(channel)
    job: common_pb2.Job = stub.Submit(request, metadata=_md(token)).job
    return job


def test_plaintext_and_the_wrong_ca_never_connect(live: Stack, pki: Pki) -> None:
    request = jobs_pb2.ListJobsRequest()
    with grpc.insecure_channel(live.address) as plain:
        stub = jobs_pb2_grpc.JobServiceStub(plain)
        assert _code(lambda: stub.ListJobs(request, timeout=5)) == grpc.StatusCode.UNAVAILABLE
    with _channel(live, pki, pki.other_ca) as wrong:
        stub = jobs_pb2_grpc.JobServiceStub(wrong)
        assert _code(lambda: stub.ListJobs(request, timeout=5)) == grpc.StatusCode.UNAVAILABLE


def test_calls_without_valid_credentials_are_unauthenticated(
    live: Stack, channel: grpc.Channel, tokens: dict[str, str]
) -> None:
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    request = jobs_pb2.ListJobsRequest()
    assert _code(lambda: stub.ListJobs(request)) == grpc.StatusCode.UNAUTHENTICATED
    forged = tokens["alice"][:-4] + "AAAA"
    for bad in (forged, "orisel_0123456789abcdef_x", "not-a-token", "a.b.c"):
        call = lambda bad=bad: stub.ListJobs(request, metadata=_md(bad))  # noqa: E731
        assert _code(call) == grpc.StatusCode.UNAUTHENTICATED, bad
    t = Tokens(live.db)
    short = t.create("carol", ttl_s=0.5)
    assert stub.ListJobs(request, metadata=_md(short)).jobs is not None
    time.sleep(0.6)
    assert _code(lambda: stub.ListJobs(request, metadata=_md(short))) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    revoked = t.create("dave")
    t.revoke(revoked.split("_")[1])
    assert _code(lambda: stub.ListJobs(request, metadata=_md(revoked))) == (
        grpc.StatusCode.UNAUTHENTICATED
    )
    # The secret itself is nowhere in the database: only its hash.
    with live.db.engine.connect() as c:
        dump = str(c.exec_driver_sql("SELECT * FROM tokens").all())
    assert tokens["alice"].split("_", 2)[2] not in dump  # the secret may hold "_" itself
    # Health stays open to probes.
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest()).status == 1


def _jwt(key: Any, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "erin", "iat": now, "exp": now + 300}
    return jwt.encode({**body, **claims}, key, algorithm="RS256", headers={"kid": "k1"})


def test_jwts_are_verified_offline(
    channel: grpc.Channel, signing: tuple[Any, Path], tokens: dict[str, str]
) -> None:
    key = signing[0]
    stub = jobs_pb2_grpc.JobServiceStub(channel)
    request = jobs_pb2.ListJobsRequest()
    assert stub.ListJobs(request, metadata=_md(_jwt(key))).jobs is not None
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for bad in (
        _jwt(key, exp=int(time.time()) - 3600),  # expired
        _jwt(other),  # forged: another key
        _jwt(key, aud="someone-else"),  # wrong audience
        _jwt(key, iss="https://evil.test"),  # wrong issuer
        jwt.encode({"sub": "x", "iss": ISSUER, "aud": AUDIENCE, "exp": 2**40}, "", "none"),
    ):
        call = lambda bad=bad: stub.ListJobs(request, metadata=_md(bad))  # noqa: E731
        assert _code(call) == grpc.StatusCode.UNAUTHENTICATED
    # A JWT user is a user like any other: their own jobs only, unless in the admin group.
    erin = _jwt(key)
    _upload(channel, erin, "users/oidc:erin/ckpt.pt", b"w")
    mine = _submit(channel, erin, "jwt-1", "users/oidc:erin/ckpt.pt")
    assert mine.owner == "oidc:erin"
    others = _jwt(key, sub="gina")
    assert mine.id not in {j.id for j in stub.ListJobs(request, metadata=_md(others)).jobs}
    admin = _jwt(key, sub="frank", groups=["orisel-admins"])
    assert mine.id in {j.id for j in stub.ListJobs(request, metadata=_md(admin)).jobs}
    # Groups are exact names in a list: a string claim holding the admin group's name (as a
    # substring) is refused, and a group whose name merely contains it is not admin.
    for groups in ("orisel-admins", "not-orisel-admins-readonly", {"orisel-admins": True}):
        bad = _jwt(key, sub="hank", groups=groups)
        call = lambda bad=bad: stub.ListJobs(request, metadata=_md(bad))  # noqa: E731
        assert _code(call) == grpc.StatusCode.UNAUTHENTICATED, groups
    near = _jwt(key, sub="hank", groups=["orisel-admins-readonly", "orisel"])
    assert mine.id not in {j.id for j in stub.ListJobs(request, metadata=_md(near)).jobs}


def test_users_see_and_touch_only_their_own_jobs_and_artifacts(
    live: Stack, channel: grpc.Channel, tokens: dict[str, str]
) -> None:
    alice, bob, root = tokens["alice"], tokens["bob"], tokens["root"]
    ref = _upload(channel, alice, "users/alice/ckpt.pt", b"weights")
    assert ref.sha256
    job = _submit(channel, alice, "same-key", "users/alice/ckpt.pt")
    assert job.owner == "alice"
    jobs = jobs_pb2_grpc.JobServiceStub(channel)
    scoring = scoring_pb2_grpc.ScoringServiceStub(channel)
    for call in (
        lambda: jobs.GetJob(jobs_pb2.GetJobRequest(id=job.id), metadata=_md(bob)),
        lambda: scoring.Get(scoring_pb2.GetRequest(id=job.id), metadata=_md(bob)),
        lambda: list(scoring.Watch(scoring_pb2.WatchRequest(id=job.id), metadata=_md(bob))),
        lambda: jobs.CancelJob(jobs_pb2.CancelJobRequest(id=job.id), metadata=_md(bob)),
    ):
        assert _code(call) == grpc.StatusCode.NOT_FOUND  # not even a hint that it exists
    listed = jobs.ListJobs(jobs_pb2.ListJobsRequest(), metadata=_md(bob)).jobs
    assert job.id not in {j.id for j in listed}
    assert job.id in {
        j.id for j in jobs.ListJobs(jobs_pb2.ListJobsRequest(), metadata=_md(alice)).jobs
    }
    assert job.id in {
        j.id for j in jobs.ListJobs(jobs_pb2.ListJobsRequest(), metadata=_md(root)).jobs
    }
    # Idempotency keys are per owner: bob's "same-key" is his own new job.
    theirs = _upload(channel, bob, "users/bob/ckpt.pt", b"other weights")
    assert theirs.key == "users/bob/ckpt.pt"
    assert _submit(channel, bob, "same-key", "users/bob/ckpt.pt").id != job.id
    # Bob can neither read alice's upload nor point a job at it, nor write under her name.
    artifacts = artifacts_pb2_grpc.ArtifactServiceStub(channel)
    stat = artifacts_pb2.StatRequest(key="users/alice/ckpt.pt")
    assert _code(lambda: artifacts.Stat(stat, metadata=_md(bob))) == grpc.StatusCode.NOT_FOUND
    down = artifacts_pb2.DownloadRequest(key="users/alice/ckpt.pt")
    assert _code(lambda: list(artifacts.Download(down, metadata=_md(bob)))) == (
        grpc.StatusCode.NOT_FOUND
    )
    assert _code(lambda: _submit(channel, bob, "steal", "users/alice/ckpt.pt")) == (
        grpc.StatusCode.NOT_FOUND
    )
    assert _code(lambda: _upload(channel, bob, "users/alice/evil", b"x")) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert _code(lambda: _upload(channel, bob, "datasets/evil", b"x")) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    assert _code(lambda: _upload(channel, bob, f"runs/{job.id}/best.pt", b"x")) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    # Written once: the same bytes again are fine, other bytes under the key are refused.
    assert _upload(channel, alice, "users/alice/ckpt.pt", b"weights").sha256 == ref.sha256
    assert _code(lambda: _upload(channel, alice, "users/alice/ckpt.pt", b"changed")) == (
        grpc.StatusCode.ALREADY_EXISTS
    )
    # A job's outputs belong to its owner; the admin reads everything.
    from orisel.store.backend import LocalStore

    LocalStore(live.settings.store_root, live.settings.bucket).put_file(
        f"runs/{job.id}/best.pt", _tmp_file(live, b"trained")
    )
    out = artifacts_pb2.DownloadRequest(key=f"runs/{job.id}/best.pt")
    got = list(artifacts.Download(out, metadata=_md(alice)))
    assert got[0].artifact.key == f"runs/{job.id}/best.pt"
    assert b"".join(m.chunk for m in got[1:]) == b"trained"
    assert _code(lambda: list(artifacts.Download(out, metadata=_md(bob)))) == (
        grpc.StatusCode.NOT_FOUND
    )
    assert len(list(artifacts.Download(out, metadata=_md(root)))) == 2
    listing = artifacts.List(artifacts_pb2.ListRequest(prefix="users/"), metadata=_md(bob))
    assert {a.key for a in listing.artifacts} == {"users/bob/ckpt.pt"}
    # Alice cancels her own job; the event names her.
    jobs.CancelJob(jobs_pb2.CancelJobRequest(id=job.id), metadata=_md(alice))
    assert live.db.events(job.id)[-1].principal == "alice"


def _tmp_file(live: Stack, data: bytes) -> Path:
    path = live.settings.work_dir / f"blob-{time.monotonic_ns()}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_mutual_tls_admits_certificates_our_ca_signed(
    live: Stack, pki: Pki, tmp_path: Path
) -> None:
    health_port = free_port()
    settings = live.settings.model_copy(
        update={
            "tls_client_ca_file": pki.ca,
            "grpc_port": 0,
            "work_dir": tmp_path,
            "health_port": health_port,
        }
    )
    server = start_front_end(settings, ["scoring"])
    address = f"127.0.0.1:{server.port}"
    try:
        # Probes (kubelet speaks no TLS) reach health, and only health, in plaintext.
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        with grpc.insecure_channel(f"127.0.0.1:{health_port}") as probe:
            check = health_pb2_grpc.HealthStub(probe).Check(health_pb2.HealthCheckRequest())
            assert check.status == 1
            stub = jobs_pb2_grpc.JobServiceStub(probe)
            call = lambda: stub.ListJobs(jobs_pb2.ListJobsRequest(), timeout=5)  # noqa: E731
            assert _code(call) == grpc.StatusCode.UNIMPLEMENTED
        with_cert = grpc.ssl_channel_credentials(
            pki.ca.read_bytes(), pki.client_key.read_bytes(), pki.client_cert.read_bytes()
        )
        with grpc.secure_channel(address, with_cert) as ch:
            stub = jobs_pb2_grpc.JobServiceStub(ch)
            assert stub.ListJobs(jobs_pb2.ListJobsRequest(), timeout=10).jobs is not None
        with grpc.secure_channel(address, grpc.ssl_channel_credentials(pki.ca.read_bytes())) as ch:
            stub = jobs_pb2_grpc.JobServiceStub(ch)
            call = lambda: stub.ListJobs(jobs_pb2.ListJobsRequest(), timeout=5)  # noqa: E731
            assert _code(call) == grpc.StatusCode.UNAVAILABLE  # the handshake fails
    finally:
        server.stop(0)


def test_plaintext_or_no_auth_only_on_loopback(live: Stack) -> None:
    base = live.settings.model_copy(update={"tls_cert_file": None, "tls_key_file": None})
    with pytest.raises(FailedPrecondition, match="no TLS"):
        security(base, live.db)
    public = base.model_copy(update={"grpc_host": "0.0.0.0", "allow_plaintext": True})
    with pytest.raises(FailedPrecondition, match="no TLS"):
        security(public, live.db)
    open_door = live.settings.model_copy(update={"grpc_host": "0.0.0.0", "auth": "off"})
    with pytest.raises(FailedPrecondition, match="only on a loopback address"):
        security(open_door, live.db)
    assert isinstance(Settings().auth, str)
    assert Settings().auth == "token"  # the default: credentials required


def test_embedded_mode_serves_its_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orisel.runtime import local as runtime
    from orisel.server.embedded import Embedded, embedded_settings

    monkeypatch.setattr(runtime, "RUNTIME_DIR", tmp_path / "runtime")
    monkeypatch.delenv("ORISEL_TOKEN", raising=False)
    from orisel.runtime.settings import get_settings

    settings = embedded_settings(Settings(cache_dir=tmp_path / "cache"), tmp_path / "home")
    saved = dict(os.environ)  # embedded mode exports its settings to its worker's environment
    try:
        _embedded_checks(Embedded(settings, log=tmp_path / "worker.log", concurrency=1))
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


def _embedded_checks(embedded: Any) -> None:
    from orisel.client.jobs import JobClient
    from orisel.runtime import local as runtime

    with embedded as up:
        token_file = up.settings.store_root.parent / "token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        assert runtime.runtime_file(up.address).stat().st_mode & 0o777 == 0o600
        client = JobClient(up.address)  # finds the owner's token by itself
        try:
            assert client.list() == []
        finally:
            client.close()
        with grpc.insecure_channel(up.address) as ch:
            stub = jobs_pb2_grpc.JobServiceStub(ch)
            call = lambda: stub.ListJobs(jobs_pb2.ListJobsRequest())  # noqa: E731
            assert _code(call) == grpc.StatusCode.UNAUTHENTICATED
            mine = _md(token_file.read_text().strip())
            assert stub.ListJobs(jobs_pb2.ListJobsRequest(), metadata=mine).jobs is not None
    assert not runtime.runtime_file(up.address).exists()


def test_every_oidc_subject_gets_a_name_of_its_own() -> None:
    from orisel.security.auth import check_user, oidc_user

    assert oidc_user("erin") == "oidc:erin"
    odd = [oidc_user(s) for s in ("auth0|5f3c", "auth0_5f3c", "a b", "x" * 500, "ü")]
    assert len(set(odd)) == len(odd)
    for name in odd:
        assert check_user(name) == name  # usable as an owner and a users/<name>/ folder
