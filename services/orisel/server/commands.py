"""The `orisel` commands that start processes or administer them: serve, worker,
controller, db, token, up (embedded mode)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from orisel.client.args import (
    comma_list,
    emit,
    paper_flags,
)
from orisel.client.follow import follow, job_dict, job_line
from orisel.client.remote import submit_job
from orisel.kernel.errors import (
    FailedPrecondition,
    InvalidArgument,
)
from orisel.runtime.settings import QUEUES, get_settings

EXIT_INTERRUPTED = 130  # as every other command stopped by Ctrl-C or SIGTERM


def cmd_serve(args: argparse.Namespace) -> int:
    from orisel.server.launch import serve

    settings = get_settings()
    if args.port is not None:
        settings = settings.model_copy(update={"grpc_port": args.port})
    serve(settings, args.service)
    return 0


def cmd_controller(args: argparse.Namespace) -> int:
    from orisel.server.launch import run_controller

    run_controller(get_settings())
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from orisel.server.launch import run_worker

    run_worker(get_settings(), args.queues, args.concurrency, args.pool)
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from orisel.control import migrate
    from orisel.control.engine import make_engine

    url = get_settings().database_url
    if args.db_action == "upgrade":
        migrate.upgrade(url, args.revision)
    else:
        migrate.downgrade(url, args.revision)
    engine = make_engine(url)
    try:
        rev = migrate.current(engine)
    finally:
        engine.dispose()
    emit(args, {"revision": rev, "head": migrate.head()}, f"job database at revision {rev}")
    return 0


def _token_database(home: Path | None) -> str:
    """The job database `orisel token` acts on: that of `orisel up --home HOME`, else
    ORISEL_DATABASE_URL's, else that of the one local `orisel up` running; never a new one."""
    from orisel.runtime.local import find_local
    from orisel.server.embedded import embedded_database_url

    if home is None and "ORISEL_DATABASE_URL" not in os.environ:
        local = find_local(None)
        if local is None:
            raise FailedPrecondition(
                "no job database to act on: pass --home with the folder of an `orisel up`, or "
                "set ORISEL_DATABASE_URL to the services' database"
            )
        home = local.home
    if home is None:
        return get_settings().database_url
    if not (home / "jobs.sqlite").is_file():
        raise FailedPrecondition(
            f"{home} holds no job database (jobs.sqlite): pass the --home `orisel up` ran with"
        )
    return embedded_database_url(home)


def cmd_token(args: argparse.Namespace) -> int:
    """Bearer tokens, straight in the job database (an operator's command, like db upgrade)."""
    import datetime

    from sqlalchemy import inspect

    from orisel.control.db import open_db
    from orisel.security.auth import Tokens

    url = _token_database(args.home)
    db = open_db(url, get_settings().max_attempts)
    if not inspect(db.engine).has_table("tokens"):
        raise FailedPrecondition(
            f"the job database {db.engine.url.render_as_string(hide_password=True)} has no "
            "tokens table: `orisel db upgrade` it first, or point at the services' database "
            "(--home, ORISEL_DATABASE_URL)"
        )
    tokens = Tokens(db)
    if args.token_action == "create":
        ttl = args.expires_days * 86400 if args.expires_days else None
        token = tokens.create(args.user, admin=args.admin, ttl_s=ttl)
        emit(args, {"token": token}, token)
    elif args.token_action == "list":
        rows = tokens.list()

        def when(t: float | None) -> str:
            return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat() if t else "-"

        lines = [
            f"{t.id}  {t.user:20s} {'admin' if t.admin else 'user':5s} "
            f"created {when(t.created_at)}  expires {when(t.expires_at)}  "
            f"revoked {when(t.revoked_at)}"
            for t in rows
        ]
        emit(args, {"tokens": [t.__dict__ for t in rows]}, "\n".join(lines) or "no tokens")
    else:
        tokens.revoke(args.id)
        emit(args, {"revoked": args.id}, f"revoked {args.id}")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    """Serve every service and a worker from one folder; with --paper, run the pipeline."""
    import threading

    from orisel.api.common.v1 import common_pb2
    from orisel.kernel.atomic import atomic_dir, check_output
    from orisel.server.embedded import Embedded, check_home, embedded_settings
    from orisel.store.backend import make_store

    base = get_settings()
    if args.data:
        base = base.model_copy(update={"data": Path(args.data).resolve()})
    if args.paper and base.data is None:
        raise InvalidArgument("--data", "a CIFAR-10 archive or folder (or set ORISEL_DATA)", None)
    home = Path(args.home)
    out = Path(args.report_dir or home / "report")
    check_home(home)
    if args.paper:
        check_output(out, force=True, field="--report-dir")  # before hours of work, not after
    settings = embedded_settings(base, home, args.port)
    with Embedded(settings, log=home / "worker.log") as stack:
        sys.stderr.write(
            f"orisel: all services on {stack.address} (store {settings.store_root}, "
            f"worker log {home / 'worker.log'})\n"
        )
        if not args.paper:
            stop = threading.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
            stop.wait()
            return EXIT_INTERRUPTED
        args.server, args.submit_kind, args.data_key = stack.address, "paper", None
        job = submit_job(args)
        sys.stderr.write(f"orisel: pipeline job {job.id} submitted through {stack.address}\n")
        job = follow(stack.address, job.id, args.quiet or args.json)
        if job.state != common_pb2.JOB_STATE_SUCCEEDED:
            emit(args, job_dict(job), job_line(job))
            return 1
        store = make_store(settings)
        prefix = f"analyses/{job.id}/report/"
        # An earlier run's report is replaced; anything else in the folder is left as it is.
        with atomic_dir(out) as tmp:
            for ref in job.outputs:
                store.get_file(store.stat(ref.key), tmp / ref.key.removeprefix(prefix))
    emit(args, {**job_dict(job), "report": str(out / "report.md")}, f"report: {out / 'report.md'}")
    return 0


def add_process_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """The process commands, on the `orisel` parser."""
    serve = sub.add_parser("serve", help="run a gRPC service (settings: ORISEL_* variables)")
    serve.add_argument("service", choices=list(QUEUES), help="which service")
    serve.add_argument(
        "--port", type=int, help="port (default: $ORISEL_GRPC_PORT or 50051; 0: any)"
    )
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run a Celery worker for some service queues")
    worker.add_argument(
        "--queues", type=comma_list, default=list(QUEUES), help="e.g. training,ablation"
    )
    worker.add_argument("--concurrency", type=int, default=1, help="tasks at once (default 1)")
    worker.add_argument(
        "--pool",
        default="prefork",
        choices=["prefork", "solo", "threads"],
        help="Celery pool (solo: tasks run in the worker process itself)",
    )
    worker.set_defaults(func=cmd_worker)

    controller = sub.add_parser(
        "controller", help="send queued jobs' tasks and re-send what lost its worker or message"
    )
    controller.set_defaults(func=cmd_controller)

    db = sub.add_parser("db", help="the job database's schema (ORISEL_DATABASE_URL)")
    db_sub = db.add_subparsers(dest="db_action", required=True, metavar="ACTION")
    db_up = db_sub.add_parser("upgrade", parents=[common], help="migrate to a revision")
    db_up.add_argument("revision", nargs="?", default="head", help="default: head")
    db_down = db_sub.add_parser("downgrade", parents=[common], help="migrate back")
    db_down.add_argument("revision", help="a revision, or base for an empty database")
    db.set_defaults(func=cmd_db)

    up = sub.add_parser(
        "up",
        parents=[common],
        help="embedded mode: every service and a worker, no servers needed",
        description="Serve all five gRPC services, the controller and one worker from one "
        "folder (local store, SQLite job database, Celery filesystem broker). With --paper, "
        "submit the paper pipeline "
        "through the gRPC client, follow it, fetch its report and stop.",
    )
    up.add_argument("--home", default="runs/embedded", help="state folder (default: %(default)s)")
    up.add_argument("--port", type=int, default=50051, help="gRPC port (0: any free port)")
    up.add_argument("--data", help="CIFAR-10 archive or folder (default: $ORISEL_DATA)")
    up.add_argument("--paper", action="store_true", help="run the paper pipeline, then stop")
    up.add_argument("--key", help="idempotency key of the pipeline job")
    up.add_argument("--report-dir", help="where the report goes (default: HOME/report)")
    paper_flags(up)
    up.set_defaults(func=cmd_up)
    token = sub.add_parser("token", help="bearer tokens in the job database (operators)")
    token_sub = token.add_subparsers(dest="token_action", required=True, metavar="ACTION")
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument(
        "--home",
        type=Path,
        help="the folder of an `orisel up` whose database to use (default: "
        "ORISEL_DATABASE_URL, else the one local `orisel up` running)",
    )
    token_common = argparse.ArgumentParser(add_help=False, parents=[common, database])
    create = token_sub.add_parser("create", parents=[token_common], help="issue a token for a user")
    create.add_argument("user", help="the principal the token authenticates")
    create.add_argument("--admin", action="store_true", help="sees and acts on every job")
    create.add_argument("--expires-days", type=float, help="lifetime (default: until revoked)")
    token_sub.add_parser("list", parents=[token_common], help="every token (never the secret)")
    revoke = token_sub.add_parser("revoke", parents=[token_common], help="revoke a token at once")
    revoke.add_argument("id", help="the token's id (orisel_<id>_...)")
    token.set_defaults(func=cmd_token)
