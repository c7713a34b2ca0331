"""``bulkmover demo``: a whole migration rehearsed on the local cloud, start to finish.

Starts both emulators on free ports, seeds a synthetic PACS dump (about 5,000 instances in 100
studies, plus a few bad files), writes a config, plans, runs with the live board, and reports
what landed and exactly which files failed and why. The data directory is recreated each time.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from rich.console import Console

from bulkmover.config import Config, load_config
from bulkmover.corpus import write_corpus
from bulkmover.corpus.command import make_spec
from bulkmover.emulator.healthcare.realism import HealthcareRealism
from bulkmover.emulator.launcher import LocalCloud
from bulkmover.errors import UsageError
from bulkmover.execution.command import print_summary
from bulkmover.execution.runner import RunOptions, run_sync
from bulkmover.planning.plan import plan
from bulkmover.planning.summary import render_summary
from bulkmover.state.store import StateStore

MARKER = ".bulkmover-demo"
BUCKET = "pacs-dump"

CONFIG = """\
# Written by `bulkmover demo`: a migration of the synthetic dump on the local cloud.
target:
  project: demo-project
  location: us-central1
  dataset: demo
  dicom_store: archive
  api_version: v1
  endpoint: {healthcare}
storage:
  endpoint: {gcs}
import:
  source: gs://{bucket}/site-a/**.dcm
  max_objects_per_shard: 400
  max_bytes_per_shard: 1GiB
run:
  max_operations_in_flight: 8
  requests_per_minute: 6000
credentials:
  kind: anonymous
state: state/demo.db
"""


def _fresh_dir(data_dir: Path) -> None:
    """Empty (or create) the demo's directory; a UsageError, never a traceback, when it is a
    file, not a demo's, or cannot be written."""
    if data_dir.exists() and not data_dir.is_dir():
        raise UsageError(
            f"--data-dir {data_dir} is a file, not a directory; pass a new or empty directory"
        )
    try:
        if data_dir.exists():
            if not (data_dir / MARKER).exists() and any(data_dir.iterdir()):
                raise UsageError(
                    f"{data_dir} exists and is not a demo directory; pass --data-dir with a new"
                    " or empty directory"
                )
            shutil.rmtree(data_dir)
        data_dir.mkdir(parents=True)
        (data_dir / MARKER).write_text("bulkmover demo data; deleted by the next demo\n")
    except OSError as err:
        where = err.filename or data_dir
        raise UsageError(
            f"cannot prepare --data-dir {data_dir} ({where}: {err.strerror or err}); pass a"
            " writable directory"
        ) from None


def run_demo(data_dir: Path, *, studies: int = 100, bad_files: int = 5) -> int:
    console = Console(stderr=True)
    spec = make_spec(
        studies=studies, series_per_study=2, instances_per_series=25, bad_files=bad_files, seed=2026
    )  # before anything is started or deleted: a bad count is one line
    _fresh_dir(data_dir)
    knobs = HealthcareRealism(max_running_operations=6, log_errors_per_operation=100)
    with LocalCloud.start(data_dir / "cloud", healthcare_knobs=knobs) as cloud:
        console.print(
            f"[bold]local cloud[/]: Cloud Storage {cloud.gcs.url}, Healthcare API "
            f"{cloud.healthcare.url}"
        )
        summary = asyncio.run(write_corpus(f"gs://{BUCKET}", spec, storage_endpoint=cloud.gcs.url))
        console.print(f"[bold]corpus[/]: {summary.line()}")
        config_path = data_dir / "demo.yaml"
        config_path.write_text(
            CONFIG.format(healthcare=cloud.healthcare.url, gcs=cloud.gcs.url, bucket=BUCKET)
        )
        config = load_config(config_path)
        console.print(f"[bold]config[/]: {config_path}")
        render_summary(plan(config), console)
        result = run_sync(config, options=RunOptions(create_store=True))
        out = Console()
        print_summary(result, out)
        _report_failed_files(config, out)
        out.print(
            f"state file: {config.state}  (try: bulkmover status {config_path})", soft_wrap=True
        )
    # A run that only failed on the deliberately bad files is what the demo expects.
    t = result.totals
    f = result.files
    clean = t.failed == 0 and t.done == t.shards and f.imported == spec.instances
    return 0 if clean and f.failed == bad_files and f.unknown == f.pending == 0 else 1


def _report_failed_files(config: Config, console: Console) -> None:
    """Which files failed, and why: the run found each one (its log, or narrowing)."""
    with StateStore.open(config.state) as store:
        failures = store.runs.files.failures()
    if not failures:
        return
    console.print(f"[bold]files that failed[/] ({len(failures)}):")
    for failure in failures:
        console.print(
            f"  gs://{BUCKET}/{failure.name}\n    {failure.code}: {failure.message}",
            soft_wrap=True,
            highlight=False,
        )
    console.print("every file's outcome: bulkmover report CONFIG (--failed, --format csv|json)")
