"""Hostile or sloppy config documents are refused quickly, with one line naming the problem.

A boolean is not a number, a source with invisible whitespace is not the source the user meant,
an alias bomb or a huge file must not cost minutes of CPU, and a number too large for the state
file is a config error, not an OverflowError later.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bulkmover.config import MAX_CONFIG_BYTES, load_config
from bulkmover.errors import ConfigError

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


def error_of(tmp_path: Path, text: str) -> str:
    path = tmp_path / "job.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message


def with_key(section: str, key: str, value: str) -> str:
    """MINIMAL with ``section.key: value`` added."""
    if section == "import":
        return MINIMAL.replace(
            "  source: gs://pacs-dump/site-a/**.dcm\n",
            f"  source: gs://pacs-dump/site-a/**.dcm\n  {key}: {value}\n",
        )
    return MINIMAL + f"{section}:\n  {key}: {value}\n"


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("run", "max_operations_in_flight", "true"),
        ("run", "requests_per_minute", "false"),
        ("import", "max_objects_per_shard", "true"),
        ("storage", "list_concurrency", "'12'"),
        ("run", "probe_window_seconds", "true"),
        ("run", "give_up_after_seconds", "'60'"),
        ("storage", "match_glob", "1"),
    ],
)
def test_a_boolean_or_a_string_is_not_a_number(
    tmp_path: Path, section: str, key: str, value: str
) -> None:
    message = error_of(tmp_path, with_key(section, key, value))
    assert f"{section}.{key}" in message


def test_floats_still_accept_whole_numbers(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(MINIMAL + "run:\n  probe_window_seconds: 30\n  give_up_after_seconds: 5\n")
    config = load_config(path)
    assert config.run.probe_window_seconds == 30.0
    assert config.run.give_up_after_seconds == 5.0


@pytest.mark.parametrize(
    "source",
    ["'gs://pacs-dump/site-a/**.dcm '", "' gs://pacs-dump/site-a/**.dcm'", '"gs://b/x\\t"'],
)
def test_whitespace_around_the_source_is_refused_and_shown(tmp_path: Path, source: str) -> None:
    message = error_of(tmp_path, MINIMAL.replace("gs://pacs-dump/site-a/**.dcm", source))
    assert ":7: import.source:" in message
    assert "whitespace" in message
    # the value is shown quoted, so the stray space or tab is visible
    assert "'gs://" in message or "' gs://" in message


@pytest.mark.parametrize("state", ["''", "'a.db '", '"a\\0.db"'])
def test_a_state_path_that_cannot_be_meant_is_refused(tmp_path: Path, state: str) -> None:
    message = error_of(tmp_path, MINIMAL.replace("state/site-a.db", state))
    assert ":8: state:" in message


def _bomb(levels: int, width: int) -> str:
    lines = ["lol0: &a0 [" + ", ".join(["x"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"lol{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_fast(tmp_path: Path) -> None:
    start = time.monotonic()
    message = error_of(tmp_path, MINIMAL + "run: {}\n" + _bomb(9, 9).replace("lol", "x_lol"))
    assert time.monotonic() - start < 2
    assert "alias" in message


def test_alias_bomb_inside_a_section_is_refused_fast(tmp_path: Path) -> None:
    bomb = "".join("  " + line + "\n" for line in _bomb(9, 9).splitlines())
    start = time.monotonic()
    message = error_of(tmp_path, MINIMAL + "run:\n" + bomb)
    assert time.monotonic() - start < 2
    assert "alias" in message


def test_a_few_plain_aliases_still_load(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(MINIMAL + "storage: {max_attempts: &n 5}\nrun: {max_attempts: *n}\n")
    assert load_config(path).run.max_attempts == 5


def test_self_referencing_alias_is_refused(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL + "run: &r {x: *r}\n")
    assert "alias" in message


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL + "run: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nest" in message


def test_huge_integer_literal_is_refused(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL + "run:\n  max_attempts: " + "9" * 5000 + "\n")
    assert "run.max_attempts" in message or ":10:" in message


def test_a_huge_file_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    with path.open("w") as f:
        f.write(MINIMAL)
        f.write("# padding\n" * (MAX_CONFIG_BYTES // 10 + 1))
    start = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert time.monotonic() - start < 1
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert "larger than" in message


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("import", "max_objects_per_shard", "100000000000000000000000"),
        ("import", "max_bytes_per_shard", "100000000000000000000000"),
        ("import", "max_bytes_per_shard", "9" * 400 + "TiB"),
        ("run", "max_operations_in_flight", "100000000000000000000000"),
        ("run", "requests_per_minute", "100000000000000000000000"),
        ("run", "max_attempts", "100000000000000000000000"),
        ("run", "log_reads_per_minute", "100000000000000000000000"),
        ("run", "probe_window_seconds", "1e300"),
        ("run", "give_up_after_seconds", ".inf"),
        ("run", "log_deadline_seconds", ".nan"),
    ],
)
def test_numbers_past_sane_bounds_are_config_errors(
    tmp_path: Path, section: str, key: str, value: str
) -> None:
    text = with_key(section, key, value)
    message = error_of(tmp_path, text)
    assert f"{section}.{key}" in message


def test_an_odd_key_is_shown_quoted_on_one_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL + 'run:\n  "max\\nattempts": 3\n')
    assert "'max\\nattempts'" in message


def test_an_impossible_date_is_refused(tmp_path: Path) -> None:
    message = error_of(tmp_path, MINIMAL.replace("state/site-a.db", "2024-13-45"))
    assert ":8:" in message and "'2024-13-45'" in message


@pytest.mark.parametrize(
    "value", ["!!timestamp yesterday", "!!int abc", "!!float x", "!!bool maybe", "2024-02-30"]
)
def test_a_value_its_tag_cannot_make_is_refused(tmp_path: Path, value: str) -> None:
    message = error_of(tmp_path, MINIMAL + f"run:\n  max_attempts: {value}\n")
    assert ":10:" in message and "is not a valid" in message


def test_a_key_file_that_would_be_ignored_is_refused(tmp_path: Path) -> None:
    """``key_file`` is read only for ``kind: service_account``; with adc or anonymous it would
    silently not be the credentials in use."""
    for kind in ("adc", "anonymous"):
        text = MINIMAL + f"credentials:\n  kind: {kind}\n  key_file: keys/sa.json\n"
        assert "key_file is read only with kind: service_account" in error_of(tmp_path, text)
