"""One typed settings object, read once from the environment and passed down."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_HOME = Path.home() / ".local" / "share" / "orisel"


# One Celery queue per service, so GPU-bound queues can be served by workers on GPU nodes.
QUEUES = ("training", "extraction", "scoring", "ablation", "pipeline")


class Settings(BaseSettings):
    """Where orisel finds data, keeps caches, runs and artifacts, and how services connect.

    Every field is read from the environment as ORISEL_<NAME> (e.g. ORISEL_BROKER_URL).
    """

    model_config = SettingsConfigDict(env_prefix="ORISEL_", extra="ignore")

    data: Path | None = Field(
        default=None, description="CIFAR-10 source: archive or folder (python or ImageFolder)"
    )
    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "orisel", description="decoded data-set cache"
    )
    runs_dir: Path = Field(default=Path("runs"), description="where training runs are written")

    store: Literal["local", "s3"] = Field("local", description="artifact store backend")
    store_root: Path = Field(DEFAULT_HOME / "store", description="local store folder")
    bucket: str = Field("orisel", description="bucket of every artifact")
    s3_endpoint: str = Field("127.0.0.1:9000", description="S3/MinIO host:port")
    s3_access_key: str = Field("", description="S3 access key")
    s3_secret_key: SecretStr = Field(SecretStr(""), description="S3 secret key")
    s3_secure: bool = Field(False, description="HTTPS to S3")
    s3_region: str | None = Field(None, description="S3 region")

    database_url: str = Field(
        f"sqlite:///{DEFAULT_HOME / 'jobs.sqlite'}",
        description="job database (SQLAlchemy URL): postgresql+psycopg://... for services",
    )
    db_auto_migrate: bool = Field(
        True, description="upgrade the job database's schema at start (off where a Job does)"
    )
    lease_s: float = Field(
        60.0, gt=0, le=3600, description="a running task's lease; renewed every third of it"
    )
    db_idle_in_transaction_s: float = Field(
        120.0,
        ge=1,
        le=3600,
        description="PostgreSQL ends a session idle this long inside a transaction (a worker "
        "stopped or cut off while it holds a job's row lock to write an artifact), so its job "
        "can be taken over; longer than the slowest single artifact write",
    )
    max_attempts: int = Field(
        5, ge=1, le=100, description="lost workers or store/broker errors before a job FAILS"
    )
    dispatch_timeout_s: float = Field(
        600.0,
        gt=0,
        description="re-send a job's task when no worker took it this long and its queue no "
        "longer holds it (lost with a worker or an emptied broker)",
    )
    controller_interval_s: float = Field(
        0.5, gt=0, description="seconds between the controller's dispatch/reconcile rounds"
    )
    broker_url: str = Field("redis://127.0.0.1:6379/0", description="Celery broker")
    broker_prefix: str = Field(
        "", description="Redis key prefix, to share one Redis between stacks"
    )
    work_dir: Path = Field(DEFAULT_HOME / "work", description="workers' local scratch space")
    segment_epochs: int = Field(5, ge=1, description="epochs per training task")
    population_size: int = Field(
        1,
        ge=1,
        le=256,
        description="networks per training job of a pipeline (one stacked model per GPU)",
    )
    task_time_limit_s: int = Field(6 * 3600, ge=1, description="hard limit of one task")

    grpc_host: str = Field("127.0.0.1", description="address the gRPC services bind")
    grpc_port: int = Field(50051, ge=0, le=65535, description="gRPC port (0: any free port)")
    health_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="plaintext port serving only gRPC health, for probes without TLS (0: none)",
    )
    open_reflection: bool = Field(
        False, description="answer gRPC reflection without credentials, as health is"
    )
    metrics_port: int = Field(
        0, ge=0, le=65535, description="port of /metrics for Prometheus (0: not served)"
    )
    metrics_host: str = Field(
        "127.0.0.1",
        description="address /metrics binds: loopback unless a scraper elsewhere needs it "
        "(the container image sets 0.0.0.0 for Kubernetes)",
    )
    grace_s: float = Field(10.0, ge=0, description="seconds to finish calls on SIGTERM")

    # Who may call the services, and over what.
    auth: Literal["token", "off"] = Field(
        "token",
        description="token: every call carries an orisel token or an OIDC JWT (or, with mutual "
        "TLS, a client certificate); off: anyone is admin (only on a loopback address)",
    )
    tls_cert_file: Path | None = Field(None, description="the server's certificate chain (PEM)")
    tls_key_file: Path | None = Field(None, description="the server's private key (PEM)")
    tls_client_ca_file: Path | None = Field(
        None, description="CA that signs client certificates: set it to require mutual TLS"
    )
    allow_plaintext: bool = Field(
        False, description="serve without TLS; refused unless the services bind loopback"
    )
    oidc_jwks_file: Path | None = Field(None, description="JWKS of the OIDC issuer (offline)")
    oidc_issuer: str = Field("", description="the `iss` every JWT must carry")
    oidc_audience: str = Field("orisel", description="the `aud` every JWT must carry")
    oidc_admin_group: str = Field("", description="members of this `groups` entry are admins")
    max_upload_bytes: int = Field(
        64 * 2**30, ge=1, description="largest artifact ArtifactService accepts"
    )

    # Where a client (`orisel submit`, `watch`, `fetch`, ...) connects, and what it presents.
    server: str | None = Field(
        None, description="host:port of the services (default: a local `orisel up`'s)"
    )
    token: SecretStr | None = Field(None, description="bearer token the client sends")
    ca: Path | None = Field(None, description="CA file the client trusts for the server's TLS")
    client_cert: Path | None = Field(None, description="client certificate (mutual TLS)")
    client_key: Path | None = Field(None, description="client key (mutual TLS)")


def settings_env(settings: Settings) -> dict[str, str]:
    """ORISEL_* variables that give a child process exactly these settings."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is not None:
            raw = value.get_secret_value() if isinstance(value, SecretStr) else value
            env[f"ORISEL_{name.upper()}"] = str(raw)
    return env


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
