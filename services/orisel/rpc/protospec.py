"""One typed spec per job on both sides of the wire. A request message's field that has the
name of a spec model's field is that field: the servicer reads it (`from_proto`), the client
writes it (`to_proto`) and the CLI makes its submit flags from the same model, so a field
added to a spec and to its message reaches every front end with no hand-written list.

What the sender set is what it asked for: a repeated field when not empty, a field with
presence (`optional`, messages) when set, any other scalar when not zero; the rest take the
model's defaults. Fields where zero is a real choice are `optional` in the protos for this.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message
from pydantic import BaseModel, ValidationError

from orisel.kernel.errors import InvalidArgument

M = TypeVar("M", bound=Message)
B = TypeVar("B", bound=BaseModel)


def validated(model: type[B], fields: Mapping[str, Any], where: str) -> B:
    """`fields` read by `model`; the first problem named as `<where>.<field>`."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"])
        allowed = err["msg"].removeprefix("Value error, ").lower()
        raise InvalidArgument(f"{where}.{name}", allowed, err.get("input")) from exc


def carried(model: type[BaseModel], descriptor: Descriptor) -> tuple[str, ...]:
    """The model's fields that the message declares, in the model's order."""
    return tuple(n for n in model.model_fields if n in descriptor.fields_by_name)


def given(model: type[BaseModel], msg: Message) -> dict[str, Any]:
    """The carried fields the sender set, as plain values."""
    out: dict[str, Any] = {}
    for name in carried(model, msg.DESCRIPTOR):
        field = msg.DESCRIPTOR.fields_by_name[name]
        value = getattr(msg, name)
        if field.is_repeated:
            if len(value):
                out[name] = list(value)
        elif field.has_presence:
            if msg.HasField(name):
                out[name] = value
        elif value != field.default_value:
            out[name] = value
    return out


def from_proto(model: type[B], msg: Message, where: str) -> B:
    """The spec the message asks for, read by `model` (its defaults for what is unset); the
    first problem named `<where>.<field>`."""
    return validated(model, given(model, msg), where)


def to_proto(msg: M, values: Mapping[str, Any]) -> M:
    """`msg` with `values` (model field names, validated values) written into its fields. An
    empty list is refused: on the wire it reads as unset, so the service would take the
    default instead of nothing."""
    for name, value in values.items():
        if msg.DESCRIPTOR.fields_by_name[name].is_repeated:
            if not len(value):
                raise InvalidArgument(
                    name, "at least one value (an empty list reads as the default)", []
                )
            getattr(msg, name).extend(value)
        else:
            setattr(msg, name, value)
    return msg
