"""What the `orisel` command modules share: flags generated from config models, lists,
JSON output."""

from __future__ import annotations

import argparse
import json
import sys
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from orisel.kernel.errors import InvalidArgument
from orisel.kernel.records import Result
from orisel.runtime.settings import get_settings


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if isinstance(p, str)]
        where = flag_name(loc[-1]) if loc else "configuration"
        got = (
            f" (got {err['input']!r})"
            if "input" in err and not isinstance(err["input"], dict)
            else ""
        )
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}{got}")
    return "; ".join(parts)


def data_path(args: argparse.Namespace) -> Path:
    """The data set --data names, else the settings' (ORISEL_DATA)."""
    path = args.data or get_settings().data
    if path is None:
        raise InvalidArgument("--data", "a CIFAR-10 archive or folder (or set ORISEL_DATA)", None)
    return Path(path)


def comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_model_fields(
    parser: argparse.ArgumentParser, model: type[BaseModel], skip: set[str]
) -> None:
    """One flag per config field, default None so that only flags the user gave override."""
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        ann = info.annotation
        kwargs: dict[str, Any] = {"dest": name, "default": None}
        parts = (ann, *typing.get_args(ann))
        if ann is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif any(typing.get_origin(p) is tuple for p in parts):
            kwargs["type"] = comma_list
            kwargs["metavar"] = "A,B,..."
        elif ann in (int, float, str):
            kwargs["type"] = ann
        elif ann == int | None:
            kwargs["type"] = int
        else:  # Literal choices
            kwargs["choices"] = list(getattr(ann, "__args__", ()))
        default = info.default
        help_text = info.description or ""
        parser.add_argument(
            flag_name(name), help=f"{help_text} (default: {default})".strip(), **kwargs
        )


def spec_from_args(
    model: type[BaseModel], args: argparse.Namespace, names: typing.Iterable[str] | None = None
) -> Any:
    """The flags the user gave of `model`'s fields (or only `names`), validated by it; an
    error names the flag."""
    from orisel.kernel.errors import OriselError

    wanted = set(model.model_fields if names is None else names)
    given = {k: v for k, v in vars(args).items() if k in wanted and v is not None}
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        raise OriselError(validation_message(exc)) from exc


def emit(args: argparse.Namespace, payload: dict[str, Any] | Result, human: str) -> None:
    if args.json:
        text = payload.to_json() if isinstance(payload, Result) else None
        sys.stdout.write(text or json.dumps(payload, indent=2, default=str) + "\n")
    else:
        sys.stdout.write(human + "\n")


def paper_flags(parser: argparse.ArgumentParser) -> None:
    """The paper pipeline's flags, one per PaperSpec field (`submit paper`, `up --paper`)."""
    from orisel.pipeline.spec import PaperSpec

    add_model_fields(parser, PaperSpec, skip=set())
