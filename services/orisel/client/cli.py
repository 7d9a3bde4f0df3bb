"""The `orisel` command line: the parser (its commands live in `client/local.py`,
`client/train.py`, `client/remote.py` and `server/commands.py`), exit codes and `main`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence

from orisel.client.local_parser import add_local_commands
from orisel.client.remote import add_remote_commands
from orisel.client.train import cmd_train
from orisel.kernel import progress
from orisel.kernel.errors import (
    AlreadyExists,
    DataError,
    FailedPrecondition,
    NotFound,
    OriselError,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from orisel.runtime.settings import get_settings
from orisel.server.commands import add_process_commands

log = logging.getLogger("orisel")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bar or logs")
    common.add_argument(
        "-v", "--verbose", action="store_true", help="log what the libraries do (INFO)"
    )

    parser = argparse.ArgumentParser(
        prog="orisel",
        description="Orientation and class selectivity of single units, and ablation tests.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_local_commands(sub, common)
    add_process_commands(sub, common)
    add_remote_commands(sub, common)
    return parser


EXIT_USAGE, EXIT_INPUT, EXIT_REFUSED, EXIT_SERVICE = 2, 3, 4, 5
EXIT_CODES = """exit codes:
  0  done (watch, submit --wait, up --paper: the job succeeded)
  1  the job ended but did not succeed
  2  usage: a flag or value is not allowed
  3  input: a file, checkpoint, layer or data set is missing or unreadable
  4  refused: the request is valid but the state forbids it (an existing --out, a
     checkpoint of another model, scores of another checkpoint, a reused key)
  5  service: a server answered with an error or could not be reached
  130 interrupted (Ctrl-C, SIGTERM); temporary outputs are removed"""


def exit_code(exc: OriselError) -> int:
    if isinstance(exc, Unavailable):
        return EXIT_SERVICE
    if isinstance(exc, (NotFound, DataError)):
        return EXIT_INPUT
    if isinstance(exc, (FailedPrecondition, AlreadyExists, PermissionDenied, Unauthenticated)):
        return EXIT_REFUSED
    return EXIT_USAGE


def _fail(args: argparse.Namespace, rc: int, kind: str, message: str) -> int:
    sys.stderr.write(f"orisel: error: {message}\n")
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps({"error": message, "kind": kind, "exit_code": rc}) + "\n")
    return rc


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.command = ["orisel", *argv]
    for flag, variable in (("ca", "ORISEL_CA"), ("token", "ORISEL_TOKEN")):
        if getattr(args, flag, None):
            os.environ[variable] = getattr(args, flag)
            get_settings.cache_clear()
    # Quiet by default: progress bars say what is going on; -v shows the libraries' logs.
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # SIGTERM unwinds like Ctrl-C, so temporary outputs are removed on the way out (the
    # process launchers install their own handlers).
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        if hasattr(args, "server"):
            from orisel.client.channel import server_address

            args.server = server_address(args.server, args.home, get_settings())
        with progress.shown(not getattr(args, "quiet", False)):
            rc: int = args.func(args)
    except OriselError as exc:
        return _fail(args, exit_code(exc), type(exc).__name__, str(exc))
    except Exception as exc:
        # A service's answer (grpc.RpcError) without importing grpc for every command.
        if not (type(exc).__module__.startswith("grpc") and hasattr(exc, "code")):
            raise
        code = exc.code().name
        return _fail(args, EXIT_SERVICE, code, f"{code}: {exc.details()}")  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        hint = "; `orisel train --resume` continues from the last checkpoint"
        sys.stderr.write(f"orisel: interrupted{hint if args.func is cmd_train else ''}\n")
        return 130
    return rc
