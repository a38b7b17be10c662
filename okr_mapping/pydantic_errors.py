"""Turn pydantic's validation errors into sentences a sales-ops person can act on.

Pydantic locations include union tags ("change_target") that are not in the file, so we walk
the location against the actual data to recover the key path the reader wrote. For unknown
keys we look up which keys *are* allowed at that spot (from the schema) to suggest one.
"""

from __future__ import annotations

import re
import types
import typing
from inspect import isclass
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, Tag
from pydantic_core import ErrorDetails

from okr_mapping.config import OkrConfig
from okr_mapping.errors import KeyPath, did_you_mean

_NUMBER_ERRORS = {"float_parsing", "float_type", "int_parsing", "int_type", "int_from_float", "finite_number"}
_MAPPING_ERRORS = {"dict_type", "model_type", "model_attributes_type"}


def describe(value: Any) -> str:
    """A short, human description of a value found in the file."""
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a group of settings"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"'{value}'"
    return str(value)


def data_path(loc: tuple[int | str, ...], data: Any, error_type: str) -> KeyPath:
    """The key path as written in the file, dropping pydantic's union tags."""
    path: list[int | str] = []
    current = data
    for index, part in enumerate(loc):
        in_mapping = isinstance(current, dict) and isinstance(part, str) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_mapping or in_list:
            path.append(part)
            current = current[part]
        elif index == len(loc) - 1 and error_type == "missing" and isinstance(part, str):
            path.append(part)
    return tuple(path)


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and Optional[...] wrappers."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if get_origin(annotation) in (typing.Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


def _step(annotation: Any, part: int | str) -> Any:
    annotation = _unwrap(annotation)
    origin = get_origin(annotation)
    if isclass(annotation) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(str(part))
        return field.annotation if field is not None else None
    if origin is list and isinstance(part, int):
        return get_args(annotation)[0]
    if origin is dict:
        return get_args(annotation)[1]
    if origin in (typing.Union, types.UnionType):
        for member in get_args(annotation):
            if get_origin(member) is Annotated and any(
                isinstance(meta, Tag) and meta.tag == part for meta in get_args(member)[1:]
            ):
                return get_args(member)[0]
    return None


def allowed_keys(loc: tuple[int | str, ...], root: type[BaseModel] = OkrConfig) -> list[str]:
    """The keys the schema allows in the mapping at `loc` (empty when it cannot tell)."""
    annotation: Any = root
    for part in loc:
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    annotation = _unwrap(annotation)
    if isclass(annotation) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _literal_choices(expected: str) -> list[str]:
    return re.findall(r"'([^']*)'", expected)


def issue_parts(error: ErrorDetails, data: Any) -> tuple[KeyPath, str, str | None, bool]:
    """(key path, message, did-you-mean, point-at-key) for one pydantic error."""
    kind = error["type"]
    loc = tuple(error["loc"])
    value = error.get("input")
    ctx = error.get("ctx") or {}
    path = data_path(loc, data, kind)
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = allowed_keys(loc[:-1])
        suggestion = did_you_mean(key, allowed)
        message = f"unknown setting '{key}'"
        if suggestion is None and allowed:
            message += f" (allowed here: {', '.join(allowed)})"
        return path, message, suggestion, True
    if kind == "missing":
        return path, f"'{loc[-1]}' is required here", None, False
    if kind == "literal_error":
        choices = _literal_choices(str(ctx.get("expected", "")))
        message = (
            f"{describe(value)} is not allowed here; use {ctx.get('expected', 'one of the listed values')}"
        )
        return path, message, did_you_mean(value, choices), False
    if kind in _NUMBER_ERRORS:
        return path, f"expected a number, got {describe(value)}", None, False
    if kind in ("bool_type", "bool_parsing"):
        return path, f"expected true or false, got {describe(value)}", None, False
    if kind.startswith("date_") or kind.startswith("datetime_"):
        return path, f"expected a date like 2026-11-20 (year-month-day), got {describe(value)}", None, False
    if kind == "string_type":
        return path, f"expected text, got {describe(value)}", None, False
    if kind in _MAPPING_ERRORS:
        return path, f"expected a group of settings (key: value), got {describe(value)}", None, False
    if kind == "list_type":
        return path, f"expected a list (lines starting with '- '), got {describe(value)}", None, False
    if kind == "too_short":
        return path, "needs at least one entry", None, False
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    message = message.replace("Input should be", "must be")
    if kind not in ("value_error", "target_shape", "metric_shape"):
        message += f" (got {describe(value)})"
    return path, message, None, False
