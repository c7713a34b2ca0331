"""The YAML config: one typed model, and errors that name the file, line and key, and a fix.

Loading composes the YAML into nodes first, so every pydantic error location (``import``,
``max_bytes_per_shard``) is mapped back to the line it came from. Unknown keys are errors (a typo
must not silently fall back to a default), and so are duplicate keys (YAML keeps the last one).

>>> parse_size("50GiB"), parse_size("1.5 TB"), parse_size(4096)
(53687091200, 1500000000000, 4096)
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from bulkmover.errors import ConfigError, PlanError, one_line
from bulkmover.gcs.wildcard import Wildcard, parse_wildcard
from bulkmover.healthcare.resources import StorePath

SIZE_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")
SIZE_HINT = "write a number of bytes or a size such as 50GiB, 500MB or 1.5TiB"


def parse_size(value: object) -> int:
    """Bytes from an int or a string with a unit (``KB``/``MB``/``GB``/``TB`` are powers of 1000,
    ``KiB``/``MiB``/``GiB``/``TiB`` powers of 1024)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size; {SIZE_HINT}")
    if isinstance(value, int):
        return value
    match = _SIZE.fullmatch(value) if isinstance(value, str) else None
    unit = SIZE_UNITS.get(match.group(2).upper()) if match else None
    if match is None or unit is None:
        raise ValueError(f"{value!r} is not a size; {SIZE_HINT}")
    return int(Decimal(match.group(1)) * unit)  # exact, and no float overflow on 999...9TiB


MAX_BYTES_PER_SHARD = 2**50
ByteSize = Annotated[
    int,
    BeforeValidator(parse_size),
    Field(ge=1, le=MAX_BYTES_PER_SHARD),
]
ResourceId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,255}$")]


def _trimmed(value: object) -> object:
    """Refuse a string with leading or trailing whitespace: quoted in YAML it is kept, invisible
    in the file and in messages, and it is never what the user meant."""
    if isinstance(value, str) and value != value.strip():
        raise ValueError(f"{value!r} starts or ends with whitespace; remove it")
    return value


def _path(value: object) -> object:
    """A path string as written: not empty, no NUL byte, no whitespace around it."""
    if isinstance(value, str):
        _trimmed(value)
        if not value:
            raise ValueError("is empty; write a file path")
        if "\0" in value:
            raise ValueError(f"{value!r} holds a NUL character; write a plain file path")
    return value


FilePath = Annotated[Path, BeforeValidator(_path)]
# Numbers are strict: YAML's `true` is not 1 and '12' is not 12 (a float still takes 30).
Count = Annotated[int, Field(strict=True)]
Seconds = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Flag = Annotated[bool, Field(strict=True)]
DAY = 86400.0


def _endpoint(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(
        r"https?://[^\s/\x00-\x1f\x7f]+(/[^\s\x00-\x1f\x7f]*)?", value
    ):
        raise ValueError(f"{value!r} is not an http(s) URL; write it like http://127.0.0.1:4443")
    return value.rstrip("/")


Endpoint = Annotated[str | None, BeforeValidator(_endpoint)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TargetConfig(_Section):
    """Where the files go: a DICOM store of the Cloud Healthcare API."""

    project: ResourceId
    location: ResourceId
    dataset: ResourceId
    dicom_store: ResourceId
    api_version: Literal["v1", "v1beta1"] = "v1"
    endpoint: Endpoint = None

    @property
    def store_path(self) -> StorePath:
        return StorePath(self.project, self.location, self.dataset, self.dicom_store)


class StorageConfig(_Section):
    """How bulkmover talks to Cloud Storage (listing the source)."""

    endpoint: Endpoint = None
    list_concurrency: Count = Field(128, ge=1, le=512)
    max_attempts: Count = Field(8, ge=1, le=100)
    match_glob: Flag = True


class ImportConfig(_Section):
    """What to import and how to cut it into operations."""

    source: Annotated[str, BeforeValidator(_trimmed)]
    max_objects_per_shard: Count = Field(5000, ge=1, le=10**9)
    max_bytes_per_shard: ByteSize = 50 * 2**30
    storage_class: Literal["STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE"] | None = None
    unaddressable: Literal["fail", "skip"] = "fail"

    @field_validator("source")
    @classmethod
    def _valid_wildcard(cls, value: str) -> str:
        try:
            parse_wildcard(value)
        except PlanError as err:
            raise ValueError(str(err)) from None
        return value

    @property
    def wildcard(self) -> Wildcard:
        return parse_wildcard(self.source)


class RunConfig(_Section):
    """How hard to push the Healthcare API while importing."""

    max_operations_in_flight: Count = Field(20, ge=1, le=10_000)
    requests_per_minute: Count = Field(600, ge=1, le=10**7)
    probe_throughput: Flag = True
    """Find the concurrency where more operations stop paying (from the store's throughput)."""
    probe_window_seconds: Seconds = Field(60.0, gt=0, le=DAY)
    max_attempts: Count = Field(8, ge=1, le=1000)
    """Starts of one shard before a transient whole-operation error fails it for good."""
    concurrent_starts: Count = Field(1, ge=1, le=64)
    """Start requests unanswered at once. With 1, a start whose answer is lost (a reset, a kill)
    is always matched to the operation it created; more starts faster but may import such a
    shard twice (harmless: stored instances are skipped)."""
    resolve_failures: Flag = True
    """Find exactly which files failed when an error log names fewer than the failure counter
    (the log is capped): probe, import again in small child shards, or STOW-RS. Off: such files
    end ``unknown``."""
    log_reads_per_minute: Count = Field(60, ge=1, le=10**6)
    """Cloud Logging ``entries:list`` calls per minute (the API's read quota is about 60)."""
    log_deadline_seconds: Seconds = Field(600.0, gt=0, le=30 * DAY)
    """How long after an operation ends to keep reading its error log for late entries."""
    log_settle_seconds: Seconds = Field(30.0, gt=0, le=DAY)
    """A short error log that has not grown for this long is taken as capped."""
    give_up_after_seconds: Seconds = Field(900.0, gt=0, le=30 * DAY)
    """Stop the run (exit 1, operations already started keep their names for the next ``run``)
    when no API call has succeeded for this long."""


_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+")
# A project ID (6-30 of a-z, 0-9, -), optionally domain-scoped (example.com:my-project).
_PROJECT_ID = re.compile(r"([a-z0-9][a-z0-9.\-]*[a-z0-9]:)?[a-z][a-z0-9\-]{4,28}[a-z0-9]")


def _service_account_email(value: object) -> object:
    if isinstance(value, str) and not _EMAIL.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a service-account e-mail; write it like"
            " mover@PROJECT.iam.gserviceaccount.com"
        )
    return value


def _project_id(value: object) -> object:
    if isinstance(value, str) and not _PROJECT_ID.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a project ID (6-30 lowercase letters, digits and hyphens,"
            " starting with a letter); write the project ID, not its name or number"
        )
    return value


class CredentialsConfig(_Section):
    """Google credentials for every API a job calls (one credential): application default
    (ADC), a service-account key, or none; optionally impersonating a service account and
    billed to a quota project."""

    kind: Literal["adc", "service_account", "anonymous"] = "adc"
    key_file: FilePath | None = None
    impersonate: Annotated[str | None, BeforeValidator(_service_account_email)] = None
    """A service account to act as (its tokens come from the IAM Credentials API)."""
    quota_project: Annotated[str | None, BeforeValidator(_project_id)] = None
    """The project billed for API quota, sent as ``x-goog-user-project``."""

    @model_validator(mode="after")
    def _key_only_for_service_accounts(self) -> CredentialsConfig:
        if self.key_file is not None and self.kind != "service_account":
            # Silently ignored, it would look like the credentials in use.
            raise ValueError(
                f"key_file is read only with kind: service_account (kind is {self.kind});"
                " remove key_file or set kind: service_account"
            )
        if self.kind == "anonymous" and (self.impersonate or self.quota_project):
            given = "impersonate" if self.impersonate else "quota_project"
            raise ValueError(
                f"{given} needs Google credentials (kind is anonymous); set kind: adc or"
                f" service_account, or remove {given}"
            )
        return self


class Config(_Section):
    """A whole migration job, as written in one YAML file."""

    target: TargetConfig
    storage: StorageConfig = StorageConfig()
    import_: ImportConfig = Field(alias="import")
    run: RunConfig = RunConfig()
    credentials: CredentialsConfig = CredentialsConfig()
    state: FilePath
    """The SQLite state file; relative paths are relative to the config file."""

    _file: Path | None = PrivateAttr(default=None)

    @property
    def file(self) -> Path | None:
        """The YAML file this config was loaded from (None if built in code)."""
        return self._file


MAX_CONFIG_BYTES = 2**20
"""A config is a few KiB; a larger file is a mistake, and YAML parsing it would take minutes."""
MAX_CONFIG_VALUES = 10_000
MAX_CONFIG_DEPTH = 32

EXAMPLES = {
    "target": "target: {project: P, location: us-central1, dataset: D, dicom_store: S}",
    "import": "import: {source: gs://BUCKET/DIR/**.dcm}",
    "import.source": "source: gs://BUCKET/DIR/**.dcm",
    "state": "state: state/site-a.db",
}


def load_config(path: str | Path) -> Config:
    """Read, validate and resolve a config file; ConfigError (one line) for anything wrong."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)  # never more: /dev/zero or a 100 MB dump
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise ConfigError(f"cannot read config {path}: {reason}; check the path") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(_too_large(path))
    config = parse_config(text, path)
    base = path.resolve().parent
    state = config.state if config.state.is_absolute() else base / config.state
    credentials = config.credentials
    if credentials.key_file is not None and not credentials.key_file.is_absolute():
        credentials = credentials.model_copy(update={"key_file": base / credentials.key_file})
    resolved = config.model_copy(update={"state": state, "credentials": credentials})
    resolved._file = path
    return resolved


def parse_config(text: str, path: Path) -> Config:
    """Validate YAML ``text`` (from ``path``, named in errors) into a Config."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(_too_large(path))
    loader: _Loader | None = None
    try:
        loader = _Loader(text, path)  # reads the text at once: a control character fails here
        root = loader.get_single_node()
        if root is not None:
            _check_shape(root, path)
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f"{mark.line + 1}:" if mark is not None else ""
        problem = getattr(err, "problem", None) or one_line(str(err))
        raise ConfigError(
            f"{path}:{line} not valid YAML ({problem}); check indentation and quoting"
        ) from None
    except _CONSTRUCT_ERRORS as err:  # raised while filling a mapping or a list
        raise ConfigError(
            f"{path}: a value cannot be read ({type(err).__name__}: {one_line(str(err), 80)});"
            " check explicit tags (!!...) and quoting"
        ) from None
    except RecursionError:
        raise ConfigError(
            f"{path}: brackets or blocks nested too deeply to be a config; see configs/example.yaml"
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of sections (target:, import:, state:, ...); see"
            " configs/example.yaml"
        )
    _reject_duplicates(root, path, ())
    try:
        return Config.model_validate(data)
    except ValidationError as err:
        # An unknown key usually explains a missing one (a typo): report it first.
        order = {"extra_forbidden": 0, "missing": 2}
        problems = sorted(err.errors(include_url=False), key=lambda e: order.get(e["type"], 1))
        first = _describe(problems[0], root, path)
        more = len(problems) - 1
        raise ConfigError(
            first + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")
        ) from None


_CONSTRUCT_ERRORS = (ValueError, TypeError, AttributeError, KeyError, OverflowError, IndexError)


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses integer literals too long to be a setting (Python refuses to
    convert more than 4300 digits, with a ValueError that is no YAMLError)."""

    def __init__(self, text: str, path: Path) -> None:
        super().__init__(text)
        self.path = path

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        digits = sum(ch.isalnum() for ch in str(node.value))
        if digits > 40:
            raise ConfigError(
                f"{self.path}:{node.start_mark.line + 1}: an integer of {digits} digits; no"
                " setting takes a number that large"
            )
        value = super().construct_yaml_int(node)
        assert isinstance(value, int)
        return value

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """A value its tag cannot make (``!!timestamp x``, ``!!int abc``, 2024-13-45) raises
        whatever Python raises, not a YAMLError: make it one line naming the place."""
        try:
            return super().construct_object(node, deep)
        except _CONSTRUCT_ERRORS:
            shown = node.value if isinstance(node, yaml.ScalarNode) else node.tag
            raise ConfigError(
                f"{self.path}:{node.start_mark.line + 1}: {one_line(repr(shown), 80)} is not"
                f" a valid {node.tag.rsplit(':', 1)[-1]}; quote it if it is text"
            ) from None


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def _too_large(path: Path) -> str:
    return (
        f"{path}: larger than {MAX_CONFIG_BYTES / 2**20:g} MiB, too large to be a config; check"
        " that it is the right file (see configs/example.yaml)"
    )


def _check_shape(root: yaml.Node, path: Path) -> None:
    """Refuse a document whose aliases expand to more than MAX_CONFIG_VALUES values (a "billion
    laughs" bomb: a few lines, exponential work for every later walk) or that nests deeper than
    MAX_CONFIG_DEPTH. Walks the expanded tree but stops at the limit, so the cost is bounded."""
    seen = 0
    stack: list[tuple[yaml.Node, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > MAX_CONFIG_VALUES:
            raise ConfigError(
                f"{path}: its anchors and aliases (&name, *name) expand to more than"
                f" {MAX_CONFIG_VALUES} values, or refer to themselves; write the values out"
            )
        if depth > MAX_CONFIG_DEPTH:
            raise ConfigError(
                f"{path}:{node.start_mark.line + 1}: values nested more than {MAX_CONFIG_DEPTH}"
                " deep; a config has sections of keys (see configs/example.yaml)"
            )
        if isinstance(node, yaml.MappingNode):
            stack.extend((child, depth + 1) for pair in node.value for child in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)


def _reject_duplicates(node: yaml.Node, path: Path, where: tuple[str, ...]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                dotted = ".".join(_shown(part) for part in (*where, name))
                raise ConfigError(
                    f"{path}:{key.start_mark.line + 1}: {dotted} appears twice; keep only one"
                )
            seen.add(name)
            _reject_duplicates(value, path, (*where, name))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _reject_duplicates(item, path, (*where, str(i)))


def _describe(error: ErrorDetails, root: yaml.Node, path: Path) -> str:
    loc = tuple(str(part) for part in error["loc"])
    key = ".".join(_shown(part) for part in loc) or "(top level)"
    kind = error["type"]
    if kind == "missing":
        node = _node_at(root, loc[:-1], key_node=True)
        example = EXAMPLES.get(key)
        hint = f" (e.g. {example})" if example else ""
        where = f"under {'.'.join(loc[:-1])}:" if len(loc) > 1 else "at the top level"
        message = f"{key} is missing; add it {where}{hint}"
    elif kind == "extra_forbidden":
        node = _node_at(root, loc, key_node=True)
        message = f"unknown key {key}; {_known_keys(loc[:-1], loc[-1])}"
    else:
        node = _node_at(root, loc, key_node=False)
        reason = error["msg"].removeprefix("Value error, ")
        value = error.get("input")
        shown = (
            f" {value!r}:" if isinstance(value, str | int | float) and kind != "value_error" else ""
        )
        message = f"{key}:{shown} {reason[0].lower()}{reason[1:]}"
    line = f"{node.start_mark.line + 1}:" if node is not None else ""
    return f"{path}:{line} {message}"


def _shown(key: str) -> str:
    """A key as written when it is plain, else quoted (a newline or a space must show)."""
    return key if re.fullmatch(r"[A-Za-z0-9_\-]+", key) else repr(key)


def _node_at(root: yaml.Node, loc: Sequence[str], *, key_node: bool) -> yaml.Node | None:
    """The YAML node at ``loc`` (its key node if ``key_node``), or the deepest one that exists."""
    node: yaml.Node = root
    for i, part in enumerate(loc):
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if str(key.value) == part:
                    last = i == len(loc) - 1
                    child = key if (key_node and last) else value
                    break
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            child = node.value[int(part)]
        if child is None:
            return node
        node = child
    return node


def _known_keys(section: Sequence[str], unknown: str) -> str:
    model: type[BaseModel] | None = Config
    for part in section:
        field = _field(model, part) if model else None
        annotation = field.annotation if field else None
        model = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
    if model is None:
        return "remove it"
    keys = [info.alias or name for name, info in model.model_fields.items()]
    close = difflib.get_close_matches(unknown, keys, n=1)
    guess = f"did you mean {close[0]}? " if close else ""
    where = ".".join(section) + ":" if section else "the top level"
    return f"{guess}valid keys in {where} are {', '.join(keys)}"


def _field(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None
