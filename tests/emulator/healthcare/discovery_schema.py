"""A small validator of JSON values against the schemas of a Google discovery document.

It checks what matters for conformance: JSON types (with int64 as strings and RFC 3339 times),
enums, no field the schema does not declare, and a list of fields a test requires. Schemas
typed ``any`` (operation metadata and response) are checked by their ``@type``.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import googleapiclient

DOCUMENTS = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")
INT64 = re.compile(r"-?\d+")


@cache
def discovery(name: str) -> dict[str, Any]:
    """A discovery document shipped with google-api-python-client, e.g. ``healthcare.v1``."""
    data: dict[str, Any] = json.loads((DOCUMENTS / f"{name}.json").read_text())
    return data


class Validator:
    def __init__(self, document: str, required: dict[str, set[str]] | None = None) -> None:
        self.schemas: dict[str, Any] = discovery(document)["schemas"]
        self.required = required or {}

    def errors(self, value: Any, schema: str) -> list[str]:
        found: list[str] = []
        self._check(value, {"$ref": schema}, schema, found)
        return found

    def _check(self, value: Any, spec: dict[str, Any], path: str, out: list[str]) -> None:
        if "$ref" in spec:
            name = spec["$ref"]
            if name not in self.schemas:
                out.append(f"{path}: unknown schema {name}")
                return
            missing = self.required.get(name, set()) - set(value if isinstance(value, dict) else {})
            if missing:
                out.append(f"{path}: missing required {sorted(missing)} of {name}")
            self._check(value, self.schemas[name], path, out)
            return
        kind = spec.get("type")
        if kind == "object":
            if not isinstance(value, dict):
                out.append(f"{path}: expected an object, got {value!r}")
                return
            properties = spec.get("properties", {})
            extra = spec.get("additionalProperties")
            for key, item in value.items():
                if key in properties:
                    self._check(item, properties[key], f"{path}.{key}", out)
                elif extra is not None:
                    if key != "@type":
                        self._check(item, extra, f"{path}.{key}", out)
                else:
                    out.append(f"{path}: unknown field {key!r}")
        elif kind == "array":
            if not isinstance(value, list):
                out.append(f"{path}: expected an array, got {value!r}")
                return
            for i, item in enumerate(value):
                self._check(item, spec.get("items", {}), f"{path}[{i}]", out)
        elif kind == "string":
            if not isinstance(value, str):
                out.append(f"{path}: expected a string, got {value!r}")
            elif spec.get("format") in ("int64", "uint64") and not INT64.fullmatch(value):
                out.append(f"{path}: expected an int64 string, got {value!r}")
            elif spec.get("format") == "google-datetime" and not RFC3339.fullmatch(value):
                out.append(f"{path}: expected an RFC 3339 time, got {value!r}")
            elif "enum" in spec and value not in spec["enum"]:
                out.append(f"{path}: {value!r} not in {spec['enum']}")
        elif kind == "integer":
            if isinstance(value, bool) or not isinstance(value, int):
                out.append(f"{path}: expected an integer, got {value!r}")
        elif kind == "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                out.append(f"{path}: expected a number, got {value!r}")
        elif kind == "boolean":
            if not isinstance(value, bool):
                out.append(f"{path}: expected a boolean, got {value!r}")


def dicom_json_errors(value: Any, path: str = "$") -> list[str]:
    """Shape errors of a DICOM JSON dataset (PS3.18 F.2): 8-hex-digit keys, vr, Value lists."""
    out: list[str] = []
    if not isinstance(value, dict):
        return [f"{path}: expected an object"]
    for key, element in value.items():
        where = f"{path}.{key}"
        if not re.fullmatch(r"[0-9A-F]{8}", key):
            out.append(f"{where}: key is not 8 upper-case hex digits")
        if not isinstance(element, dict) or not re.fullmatch(r"[A-Z]{2}", element.get("vr", "")):
            out.append(f"{where}: element without a two-letter vr")
            continue
        if set(element) - {"vr", "Value", "BulkDataURI", "InlineBinary"}:
            out.append(f"{where}: unknown member {sorted(set(element) - {'vr', 'Value'})}")
        values = element.get("Value", [])
        if not isinstance(values, list):
            out.append(f"{where}: Value is not an array")
        elif element["vr"] == "SQ":
            for i, item in enumerate(values):
                out += dicom_json_errors(item, f"{where}[{i}]")
        elif element["vr"] == "PN":
            out += [f"{where}: PN value {v!r}" for v in values if not isinstance(v, dict)]
    return out
