"""The YAML config: typed values, paths relative to the file, and one-line errors with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from bulkmover.config import Config, load_config, parse_size
from bulkmover.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = """\
target:
  project: demo-project
  location: us-central1
  dataset: demo
  dicom_store: archive
import:
  source: gs://pacs-dump/site-a/**.dcm
state: state/site-a.db
"""


def write(tmp_path: Path, text: str, name: str = "job.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message


def test_minimal_config_and_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.import_.max_objects_per_shard == 5000
    assert config.import_.max_bytes_per_shard == 50 * 2**30
    assert config.run.max_operations_in_flight == 20
    assert config.target.api_version == "v1"
    assert config.target.store_path.name.endswith("/datasets/demo/dicomStores/archive")
    assert config.import_.wildcard.literal_prefix == "site-a/"
    assert config.file == tmp_path / "job.yaml"


def test_state_is_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    config = load_config(write(tmp_path / "sub", MINIMAL))
    assert config.state == tmp_path / "sub" / "state" / "site-a.db"
    absolute = MINIMAL.replace("state/site-a.db", str(tmp_path / "abs.db"))
    assert load_config(write(tmp_path, absolute)).state == tmp_path / "abs.db"


def test_key_file_is_relative_to_the_config_file(tmp_path: Path) -> None:
    text = MINIMAL + "credentials:\n  kind: service_account\n  key_file: keys/sa.json\n"
    assert load_config(write(tmp_path, text)).credentials.key_file == tmp_path / "keys" / "sa.json"


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("50GiB", 50 * 2**30),
        ("50 GiB", 50 * 2**30),
        ("1.5TB", 1_500_000_000_000),
        ("500MB", 500_000_000),
        ("10kib", 10 * 1024),
        ("4096", 4096),
        ("7 B", 7),
        (123, 123),
    ],
)
def test_sizes(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["50 GiBs", "GiB", "-1GB", "1e9", "", "fifty", True])
def test_bad_sizes(text: str | bool) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)


def test_bad_size_names_line_and_key(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "  source: gs://pacs-dump/site-a/**.dcm\n",
        "  source: gs://pacs-dump/site-a/**.dcm\n  max_bytes_per_shard: 50 GiBs\n",
    )
    message = error_of(tmp_path, text)
    assert ":8: import.max_bytes_per_shard:" in message
    assert "50GiB" in message  # says how to write it


def test_unknown_key_is_an_error_with_a_suggestion(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL.replace("  dataset: demo", "  datset: demo"))
    assert ":4: unknown key target.datset" in message
    assert "did you mean dataset?" in message
    assert message.endswith("(and 1 more problem)")  # target.dataset is missing, too


def test_unknown_top_level_section(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL + "imports:\n  x: 1\n")
    assert ":9: unknown key imports" in message
    assert "did you mean import?" in message


def test_missing_key_points_at_its_section(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        MINIMAL.replace(
            "  source: gs://pacs-dump/site-a/**.dcm\n", "  max_objects_per_shard: 10\n"
        ),
    )
    assert ":6: import.source is missing; add it under import:" in message
    assert "gs://BUCKET/DIR/**.dcm" in message


def test_missing_section(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL.replace("state: state/site-a.db\n", ""))
    assert "state is missing; add it at the top level" in message


def test_invalid_wildcard_names_the_rule(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL.replace("site-a/**.dcm", "site-*/**.dcm"))
    assert ":7: import.source:" in message
    assert "'**' cannot be combined with another wildcard" in message


def test_wrong_type_and_choice(tmp_path: Path) -> None:
    message = error_of(
        tmp_path,
        MINIMAL.replace("  dicom_store: archive", "  dicom_store: archive\n  api_version: v2"),
    )
    assert ":6: target.api_version: 'v2':" in message
    assert "'v1' or 'v1beta1'" in message
    message = error_of(tmp_path, MINIMAL + "run:\n  max_operations_in_flight: many\n")
    assert ":10: run.max_operations_in_flight: 'many':" in message


def test_several_problems_are_counted(tmp_path: Path) -> None:
    message = error_of(
        tmp_path, MINIMAL + "run:\n  max_operations_in_flight: 0\n  requests_per_minute: 0\n"
    )
    assert message.endswith("(and 1 more problem)")


def test_duplicate_keys_are_errors(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL + "state: other.db\n")
    assert ":9: state appears twice" in message


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL.replace("  dataset: demo", "  dataset: [demo"))
    assert "not valid YAML" in message
    assert ":5:" in message or ":6:" in message


def test_not_a_mapping(tmp_path: Path) -> None:
    assert "expected a mapping of sections" in error_of(tmp_path, "- a\n- b\n")
    assert "expected a mapping of sections" in error_of(tmp_path, "")


def test_unreadable_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config .*missing\.yaml.*check the path"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path)  # a directory


def test_bad_endpoint(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL + "storage:\n  endpoint: 127.0.0.1:4443\n")
    assert "storage.endpoint" in message and "http://127.0.0.1:4443" in message


def _keys(model: type[BaseModel]) -> dict[str, object]:
    keys: dict[str, object] = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        nested = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        keys[info.alias or name] = _keys(annotation) if nested else None  # type: ignore[arg-type]
    return keys


def _yaml_keys(data: dict[str, object]) -> dict[str, object]:
    return {k: _yaml_keys(v) if isinstance(v, dict) else None for k, v in data.items()}


def test_example_documents_every_key_and_loads() -> None:
    example = ROOT / "configs" / "example.yaml"
    assert _yaml_keys(yaml.safe_load(example.read_text())) == _keys(Config)
    config = load_config(example)
    assert config.import_.source == "gs://pacs-dump/site-a/**.dcm"


def test_demo_config_loads() -> None:
    config = load_config(ROOT / "configs" / "demo.yaml")
    assert config.storage.endpoint == "http://127.0.0.1:4443"
    assert config.credentials.kind == "anonymous"
