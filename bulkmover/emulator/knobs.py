"""Realism knobs: one pydantic model per emulator, exposed as flags and as a profile file.

A knob ``page_latency`` is the flag ``--page-latency`` and the profile key ``page_latency`` (or
``page-latency``). A profile is YAML; the launcher's profile may hold a ``gcs:`` and a
``healthcare:`` section, a single server's profile may be flat. Flags given on the command line
win over the profile.
"""

from __future__ import annotations

import argparse
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from bulkmover.errors import EmulatorError

M = TypeVar("M", bound=BaseModel)
MAX_PROFILE_BYTES = 2**20


def flag_name(field: str, prefix: str = "") -> str:
    return "--" + prefix + field.replace("_", "-")


def knob_flags(knobs: BaseModel) -> list[str]:
    """The command-line flags that reproduce every non-default value of ``knobs``."""
    argv: list[str] = []
    for name, info in type(knobs).model_fields.items():
        value = getattr(knobs, name)
        if value == info.default:
            continue
        if isinstance(value, bool):
            argv.append(flag_name(name) if value else "--no-" + name.replace("_", "-"))
        elif value is not None:
            argv += [flag_name(name), str(value)]
    return argv


def _scalar_type(annotation: Any) -> Any:
    """The argparse ``type`` for a field annotation (unwrapping ``X | None``)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _scalar_type(args[0])
    if origin is typing.Literal:
        return str
    return annotation if annotation in (int, float, str) else str


def add_knob_flags(
    parser: argparse.ArgumentParser, model: type[BaseModel], title: str, prefix: str = ""
) -> None:
    """Add one flag per field of ``model``; defaults stay None so the profile can fill them.

    With ``prefix`` (e.g. ``"gcs-"``) the flags are ``--gcs-<name>`` and land in ``gcs_<name>``.
    """
    group = parser.add_argument_group(title)
    for name, info in model.model_fields.items():
        annotation = info.annotation
        dest = prefix.replace("-", "_") + name
        kwargs: dict[str, Any] = {"dest": dest, "default": None, "help": info.description or ""}
        if annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = _scalar_type(annotation)
            kwargs["metavar"] = name.upper()  # the knob name, as in a profile
        if info.default is not None and kwargs["help"]:
            kwargs["help"] += f" (default: {info.default})"
        group.add_argument(flag_name(name, prefix), **kwargs)


def load_profile(path: Path | None, section: str | None = None) -> dict[str, Any]:
    """Read a YAML profile; with ``section``, take that sub-mapping when present."""
    if path is None:
        return {}
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_PROFILE_BYTES + 1)
        if len(raw) > MAX_PROFILE_BYTES:
            raise EmulatorError(f"profile {path} is larger than 1 MiB; is it the right file?")
        data = yaml.safe_load(raw.decode("utf-8")) or {}
    except OSError as exc:
        raise EmulatorError(f"cannot read profile {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise EmulatorError(f"profile {path} is not UTF-8 text; is it the right file?") from None
    except yaml.YAMLError as exc:
        raise EmulatorError(f"profile {path} is not valid YAML: {exc}".splitlines()[0]) from None
    except (ValueError, RecursionError) as exc:  # 5000-digit integers, [[[[...]]]]
        problem = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:100]
        raise EmulatorError(f"profile {path} cannot be read: {problem}") from None
    if not isinstance(data, dict):
        raise EmulatorError(f"profile {path} must be a mapping of knob names to values")
    if section is not None and isinstance(data.get(section), dict):
        data = data[section]
    elif section is not None and ("gcs" in data or "healthcare" in data):
        data = {}
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def build_knobs(
    model: type[M],
    args: argparse.Namespace,
    profile: dict[str, Any],
    source: str,
    prefix: str = "",
) -> M:
    """Profile values, overridden by flags given on the command line, validated by ``model``."""
    unknown = sorted(set(profile) - set(model.model_fields))
    if unknown:
        known = ", ".join(model.model_fields)
        raise EmulatorError(
            f"unknown realism knob {unknown[0]!r} in {source}; known knobs: {known}"
        )
    values = dict(profile)
    for name in model.model_fields:
        value = getattr(args, prefix.replace("-", "_") + name, None)
        if value is not None:
            values[name] = value
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "?"
        raise EmulatorError(
            f"bad realism knob {flag_name(where, prefix)} ({source}): {err['msg']}; "
            f"see --help for the allowed values"
        ) from None
