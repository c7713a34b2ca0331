"""Every file's outcome under every spelling of the import error log the real API might use.

Google documents the error entries' payload type (ImportDicomLogEntry), their ``source`` and
``error`` and the resource type ``healthcare_dicom_store``, but neither the resource labels'
spelling nor the logName. The emulator offers each plausible reading (``--log-labels snake |
camel | none``, ``--log-name import_dicom | import_dicom_data | operations``); under each the run
must name exactly the bad files as failed with the API's reason, and read that from the log: with
a complete log (the default cap) no shard is narrowed, no child shard is made and nothing goes
through STOW-RS. Entries arriving late (``--log-ingestion-delay``) keep working.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from test_outcomes_run import assert_exact, outcomes, run_json, seeded

from bulkmover.healthcare.logging import EXPORT_LOG_TYPE, IMPORT_LOG_TYPE, LogEntry
from bulkmover.healthcare.resources import StorePath
from bulkmover.outcomes.collect import TimeWindow, errors_filter

READINGS = [
    ("snake", "import_dicom"),
    ("camel", "import_dicom"),
    ("none", "import_dicom"),
    ("snake", "import_dicom_data"),
    ("snake", "operations"),
    ("camel", "operations"),
]


def assert_read_from_the_log(config: Path, truth: dict[str, str]) -> None:
    """Every failed file's reason came from the log: nothing narrowed, no child, no STOW."""
    found = outcomes(config)
    failed = [n for n, v in truth.items() if v == "failed"]
    assert failed
    for name in failed:
        message = found[name][2] or ""
        assert "STOW" not in message and "narrow" not in message, (name, message)
    with sqlite3.connect(config.parent / "state" / "run.db") as conn:
        narrowed = conn.execute("SELECT count(*) FROM events WHERE kind = 'narrowing'")
        assert narrowed.fetchone()[0] == 0
        children = conn.execute("SELECT count(*) FROM shards WHERE parent_id IS NOT NULL")
        assert children.fetchone()[0] == 0


@pytest.mark.slow
@pytest.mark.parametrize(("labels", "log_name"), READINGS)
def test_every_log_reading_is_exact_and_read_from_the_log(
    tmp_path: Path, labels: str, log_name: str
) -> None:
    flags = ("--log-labels", labels, "--log-name", log_name, "--seed", "5")
    with seeded(tmp_path, *flags) as (_cloud, config, truth):
        summary = run_json(config)
        bad = sum(1 for v in truth.values() if v == "failed")
        assert summary["files"] == {
            "imported": len(truth) - bad,
            "failed": bad,
            "unknown": 0,
            "pending": 0,
        }
        assert_exact(config, truth)
        assert_read_from_the_log(config, truth)


@pytest.mark.slow
@pytest.mark.parametrize("labels", ["camel", "none"])
def test_late_entries_under_other_label_spellings_are_still_read(
    tmp_path: Path, labels: str
) -> None:
    flags = (
        "--log-labels", labels, "--log-name", "import_dicom_data",
        "--log-ingestion-delay", "1.5", "--log-ingestion-jitter", "1", "--seed", "6",
    )  # fmt: skip
    with seeded(tmp_path, *flags, settle=4.0) as (_cloud, config, truth):
        run_json(config)
        assert_exact(config, truth)
        assert_read_from_the_log(config, truth)


def _entry(labels: dict[str, str] | None, payload: str = IMPORT_LOG_TYPE) -> LogEntry:
    resource: dict[str, object] = {"type": "healthcare_dicom_store"}
    if labels is not None:
        resource["labels"] = labels
    return LogEntry.model_validate(
        {
            "resource": resource,
            "operation": {"id": "7"},
            "jsonPayload": {
                "@type": payload,
                "source": "gs://pacs/a.dcm",
                "error": {"code": 3, "message": "bad"},
            },
        }
    )


STORE = StorePath("p", "l", "d", "s")


@pytest.mark.parametrize(
    ("labels", "payload", "ours"),
    [
        ({"project_id": "p", "location": "l", "dataset_id": "d", "dicom_store_id": "s"},
         IMPORT_LOG_TYPE, True),
        ({"projectId": "p", "location": "l", "datasetId": "d", "dicomStoreId": "s"},
         IMPORT_LOG_TYPE, True),
        (None, IMPORT_LOG_TYPE, True),
        ({"someOtherSpelling": "x"}, IMPORT_LOG_TYPE, True),
        ({"dataset_id": "d", "dicom_store_id": "other"}, IMPORT_LOG_TYPE, False),
        ({"datasetId": "other", "dicomStoreId": "s"}, IMPORT_LOG_TYPE, False),
        (None, EXPORT_LOG_TYPE, False),
    ],
)  # fmt: skip
def test_entries_are_checked_client_side(
    labels: dict[str, str] | None, payload: str, ours: bool
) -> None:
    """The filter names only operation ids and a time window; an entry of another store (by
    any known label spelling) or of another payload type is still left out."""
    assert _entry(labels, payload).is_error_of(STORE) is ours
    text = errors_filter(STORE, ["7", "8"], TimeWindow(0, 60))
    assert text == (
        'operation.id=("7" OR "8") AND timestamp>="1970-01-01T00:00:00Z"'
        ' AND timestamp<="1970-01-01T00:01:00Z"'
    )
