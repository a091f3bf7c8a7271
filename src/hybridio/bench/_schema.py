"""The JSON schema of ``results.json``, so other tools can rely on its shape.

Written next to every ``results.json`` as ``results.schema.json``; ``validate_results`` checks a
document against it (with jsonschema, part of the ``bench`` extra).
"""

from __future__ import annotations

from typing import Any

from ._model import VERDICTS

__all__ = ["SCHEMA", "SCHEMA_VERSION", "validate_results"]

SCHEMA_VERSION = 1

_number_or_null = {"type": ["number", "null"]}
_string_or_null = {"type": ["string", "null"]}

_ROW: dict[str, Any] = {
    "type": "object",
    "required": ["scenario", "name", "value", "unit", "repeats", "spread", "verdict"],
    "properties": {
        "scenario": {"type": "string", "minLength": 1},
        "name": {"type": "string", "minLength": 1},
        "value": _number_or_null,
        "unit": {"type": "string"},
        "repeats": {"type": "integer", "minimum": 1},
        "spread": {"type": ["number", "null"], "minimum": 0},
        "baseline": _string_or_null,
        "baseline_value": _number_or_null,
        "ratio": _number_or_null,
        "target": _string_or_null,
        "verdict": {"enum": [*VERDICTS, None]},
        "claim": _string_or_null,
        "note": {"type": "string"},
    },
}

_SCENARIO: dict[str, Any] = {
    "type": "object",
    "required": ["name", "title", "description", "status", "reason", "seconds", "rows", "plots"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "status": {"enum": ["ok", "skipped", "error"]},
        "reason": {"type": "string"},
        "seconds": {"type": "number", "minimum": 0},
        "rows": {"type": "array", "items": _ROW},
        "plots": {"type": "array", "items": {"type": "string", "pattern": r"^[^/\\]+\.png$"}},
        "extra": {"type": "object"},
    },
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://github.com/hybridio/hybridio/bench/results.schema.json",
    "title": "hybridio bench results",
    "type": "object",
    "required": [
        "schema_version",
        "hybridio_version",
        "created",
        "mode",
        "environment",
        "scenarios",
    ],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "hybridio_version": {"type": "string"},
        "created": {"type": "string", "format": "date-time"},
        "mode": {"enum": ["tiny", "quick", "full"]},
        "environment": {
            "type": "object",
            "required": [
                "cpu_model",
                "cpus",
                "python",
                "implementation",
                "free_threaded_build",
                "gil_enabled",
                "start_method",
                "platform",
                "packages",
            ],
            "properties": {
                "cpu_model": {"type": "string"},
                "cpus": {"type": "integer", "minimum": 1},
                "cpus_usable": {"type": "integer", "minimum": 1},
                "physical_cores": {"type": ["integer", "null"]},
                "memory_bytes": {"type": ["integer", "null"]},
                "load_average": {"type": ["array", "null"], "items": {"type": "number"}},
                "python": {"type": "string"},
                "implementation": {"type": "string"},
                "build": {"type": "string"},
                "free_threaded_build": {"type": "boolean"},
                "gil_enabled": {"type": "boolean"},
                "subinterpreters": {"type": "boolean"},
                "start_method": {"type": "string"},
                "platform": {"type": "string"},
                "packages": {"type": "object", "additionalProperties": _string_or_null},
            },
        },
        "scenarios": {"type": "array", "items": _SCENARIO},
    },
}


def validate_results(data: Any) -> None:
    """Check a ``results.json`` document against ``SCHEMA``.

    Raises:
        jsonschema.ValidationError: the document does not match (the message says where).
    """
    import jsonschema

    jsonschema.validate(data, SCHEMA, format_checker=jsonschema.FormatChecker())
