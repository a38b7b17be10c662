"""A JSON Schema of the config file, for completion and checks in editors.

Built from the pydantic models, plus a hand-written definition of `where` filters (their
grammar lives in rules.py, and pydantic only sees a mapping). `config/okr-config.schema.json`
is this schema, committed; regenerate it with `python -m okr_mapping.schema`. The schema helps
while typing; `okr-sync validate` remains the full check (fields per entity, metric names, ...).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from okr_mapping.config import OkrConfig
from okr_mapping.entities import ENTITIES
from okr_mapping.rules import LIST_OPERATORS, MEASURE_HELP, OPERATORS

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "config" / "okr-config.schema.json"
SCHEMA_ID = "https://okr-sync.local/okr-config.schema.json"
_MARKER = "x-okr"

_SCALAR: dict[str, Any] = {"type": ["string", "number", "boolean", "null"]}


def _where_defs() -> dict[str, Any]:
    fields = sorted({name for entity in ENTITIES.values() for name in entity.fields})
    comparison = {
        "type": "object",
        "description": "field: {operator: value}; several operators all must hold.",
        "properties": {
            op: ({"type": "array", "items": _SCALAR, "minItems": 1} if op in LIST_OPERATORS else _SCALAR)
            for op in OPERATORS
        },
        "additionalProperties": False,
        "minProperties": 1,
    }
    where = {
        "type": "object",
        "description": (
            "Filters that all must hold: field: value | field: [a, b] | field: {eq|ne|gt|gte|lt|lte|in|not_in: v};"
            " combine with all: [...], any: [...], not: {...}. Fields: " + ", ".join(fields)
        ),
        "properties": {
            "all": {
                "description": "every filter in the list holds",
                "type": "array",
                "items": {"$ref": "#/$defs/Where"},
                "minItems": 1,
            },
            "any": {
                "description": "at least one filter in the list holds",
                "type": "array",
                "items": {"$ref": "#/$defs/Where"},
                "minItems": 1,
            },
            "not": {"description": "the filter does not hold", "$ref": "#/$defs/Where"},
        },
        "additionalProperties": {
            "anyOf": [_SCALAR, {"type": "array", "items": _SCALAR}, {"$ref": "#/$defs/Comparison"}]
        },
    }
    return {"Where": where, "Comparison": comparison}


def _replace_markers(node: Any) -> Any:
    if isinstance(node, dict):
        if node.get(_MARKER) == "where":
            return {"$ref": "#/$defs/Where"}
        return {key: _replace_markers(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_replace_markers(item) for item in node]
    return node


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of an okr-sync config file."""
    schema = _replace_markers(OkrConfig.model_json_schema(mode="validation"))
    schema["$defs"].update(_where_defs())
    measure = schema["$defs"]["MeasureSource"]["properties"]["measure"]
    measure["description"] = MEASURE_HELP
    for name in ("MeasureSource", "SimpleMetric", "Segment"):
        entity = schema["$defs"][name]["properties"]["entity"]
        entity["enum"] = list(ENTITIES)
    schema["$defs"]["SimpleMetric"]["properties"]["measure"] = dict(measure)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def render() -> str:
    """The schema as the committed file holds it."""
    return json.dumps(config_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the schema to config/okr-config.schema.json (or the path given)."""
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else SCHEMA_PATH
    target.write_text(render(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
