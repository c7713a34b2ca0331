"""Command-line entry point: parse, call, print, exit codes. No logic lives here."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from bulkmover.errors import BulkmoverError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="bulkmover")
def app() -> None:
    """Controlled, observable, resumable DICOM migrations into the Cloud Healthcare API.

    \b
    Example (a whole rehearsal on the local cloud):
      bulkmover demo
    """


@app.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.pass_context
def emulator(ctx: click.Context) -> None:
    """Run the local cloud (Cloud Storage + Healthcare API emulators) until Ctrl-C.

    \b
    Example:
      bulkmover emulator --gcs-port 4443 --healthcare-port 8080 --data-dir ./cloud
    Run `bulkmover emulator --help` for every realism knob.
    """
    from bulkmover.emulator.launcher import main as launch

    launch(list(ctx.args))


@app.command()
@click.argument("dest")
@click.option("--studies", type=int, required=True, help="Number of studies.")
@click.option("--series-per-study", type=int, default=1, show_default=True)
@click.option("--instances-per-series", type=int, default=1, show_default=True)
@click.option("--bad-files", type=int, default=0, show_default=True, help="Non-DICOM .dcm files.")
@click.option("--seed", type=int, default=None, help="Same seed, same UIDs and bytes.")
@click.option("--sites", type=int, default=1, show_default=True, help="site-a, site-b, ...")
@click.option("--storage-endpoint", default=None, help="GCS URL [default: $STORAGE_EMULATOR_HOST].")
@click.option("--concurrency", type=int, default=32, show_default=True, help="Uploads in flight.")
@click.option("--manifest", type=click.Path(dir_okay=False), default=None, help="JSON Lines out.")
def corpus(
    dest: str,
    studies: int,
    series_per_study: int,
    instances_per_series: int,
    bad_files: int,
    seed: int | None,
    sites: int,
    storage_endpoint: str | None,
    concurrency: int,
    manifest: str | None,
) -> None:
    """Write a synthetic PACS dump (real DICOM + bad files) to gs://BUCKET/PREFIX or a directory.

    Layout: PREFIX/SITE/YYYY/MM/STUDYUID/SERIESUID/SOPUID.dcm. Creates the bucket if missing.

    \b
    Example (3,000 instances and 5 bad files into the local cloud):
      bulkmover corpus gs://pacs-dump/2024 --studies 100 --series-per-study 3 \\
        --instances-per-series 10 --bad-files 5 --seed 1 \\
        --storage-endpoint http://127.0.0.1:4443 --manifest truth.jsonl
    """
    from pathlib import Path

    from bulkmover.corpus.command import make_spec, run_corpus

    spec = make_spec(
        studies=studies,
        series_per_study=series_per_study,
        instances_per_series=instances_per_series,
        bad_files=bad_files,
        seed=seed,
        sites=sites,
    )
    summary = run_corpus(
        dest,
        spec,
        storage_endpoint=storage_endpoint,
        concurrency=concurrency,
        manifest=Path(manifest) if manifest else None,
    )
    click.echo(summary.line())


@app.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON on stdout (only).")
@click.option("--replan", is_flag=True, help="Plan again; shards that already ran are kept.")
def plan(config: str, as_json: bool, replan: bool) -> None:
    """List the import source, cut it into shards, and record every file in the state file.

    Each shard is one import URI (one operation) holding at most import.max_objects_per_shard
    objects and import.max_bytes_per_shard bytes. Refuses to overwrite an existing plan unless
    --replan.

    \b
    Example:
      bulkmover plan configs/demo.yaml
      bulkmover plan configs/demo.yaml --json > plan.json
    """
    from pathlib import Path

    from bulkmover.planning.command import run_plan_command

    run_plan_command(Path(config), as_json=as_json, replan=replan)


@app.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print a final summary as JSON on stdout.")
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Import exactly the failed files again (in small new shards), and failed shards.",
)
@click.option(
    "--error-code",
    type=int,
    default=None,
    metavar="N",
    help="With --retry-failed: only files that failed with this google.rpc code.",
)
@click.option(
    "--create-store", is_flag=True, help="Create the dataset and DICOM store when missing."
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Plan if needed, then print the import starts it would send (method, URL, body), how"
    " many, and the limits; send none.",
)
@click.option(
    "--no-preflight",
    is_flag=True,
    help="Skip the checks of `bulkmover doctor` that run before anything is submitted.",
)
def run(
    config: str,
    as_json: bool,
    retry_failed: bool,
    error_code: int | None,
    create_store: bool,
    dry_run: bool,
    no_preflight: bool,
) -> None:
    """Run every pending shard as an import operation, with a live board; resumable.

    Plans first if the state file holds no plan. Re-attaches to operations still running from
    an interrupted run. As operations end, their failed files are read from Cloud Logging;
    when a log is capped, the rest are found (run.resolve_failures), so every file ends
    imported or failed with its reason. Ctrl-C stops submitting and exits once everything is
    recorded; a second Ctrl-C exits at once. Exit code 0 only when every file was imported.
    First, the checks of `bulkmover doctor` (no canary import): one that fails stops the run
    before anything is submitted, unless --no-preflight.

    \b
    Example:
      bulkmover run configs/demo.yaml --create-store
      bulkmover status configs/demo.yaml --watch     # from a second terminal
      bulkmover run configs/demo.yaml --retry-failed --error-code 3
      bulkmover run configs/demo.yaml --dry-run --json | jq '.starts[].body'
    """
    from pathlib import Path

    from bulkmover.execution.command import run_command

    raise SystemExit(
        run_command(
            Path(config),
            as_json=as_json,
            retry_failed=retry_failed,
            create_store=create_store,
            error_code=error_code,
            dry_run=dry_run,
            preflight=not no_preflight,
        )
    )


@app.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON on stdout (only).")
def doctor(config: str, as_json: bool) -> None:
    """Check that a job can run: identity, store, permissions, bucket, service agent.

    One line per check, ✓ or ✗, and for each ✗ the command that fixes it: which identity the
    credentials are (and their quota project); the store reachable; the caller's permissions
    (testIamPermissions on the store, its dataset and the project: import, operations get/list,
    Logging read, and DICOMweb when run.resolve_failures); the bucket readable and the source
    non-empty; the Healthcare service agent able to read the bucket (from the bucket's IAM
    policy; when the policy cannot say, a one-file canary import into the store). Exit code 0
    when no check fails. `run` makes the same checks first (without the canary).

    \b
    Example:
      bulkmover doctor configs/demo.yaml
      bulkmover doctor configs/demo.yaml --json | jq '.checks[] | select(.ok == false)'
    """
    from pathlib import Path

    from bulkmover.preflight.command import doctor_command

    raise SystemExit(doctor_command(Path(config), as_json=as_json))


@app.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print totals and every shard as JSON.")
@click.option("--watch", is_flag=True, help="Keep the board on screen, refreshed, until Ctrl-C.")
def status(config: str, as_json: bool, watch: bool) -> None:
    """Show where a migration stands, from its state file (read-only, safe during `run`).

    \b
    Example:
      bulkmover status configs/demo.yaml
      bulkmover status configs/demo.yaml --json | jq .totals
    """
    from pathlib import Path

    from bulkmover.board.command import status_command

    status_command(Path(config), as_json=as_json, watch=watch)


@app.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option(
    "--failed",
    "failed_only",
    is_flag=True,
    help="List only files whose outcome is failed (not unknown or pending); totals still count"
    " every file.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "jsonl"]),
    default="table",
    show_default=True,
    help="table (for people), csv, json ({totals, files}) or jsonl (one file a line).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Same as --format json (like `status --json`)."
)
@click.option(
    "--output", metavar="PATH", default=None, help="Write the report to this file, not stdout."
)
def report(config: str, failed_only: bool, fmt: str, as_json: bool, output: str | None) -> None:
    """Which files did not make it, and why: every planned file with its outcome.

    Totals per outcome, the errors with how many files each, then per file its gs:// URI, size,
    shard, outcome and error, by shard and name. Reads the state file only (safe during `run`).

    \b
    Example:
      bulkmover report configs/demo.yaml --failed
      bulkmover report configs/demo.yaml --json > outcomes.json
      bulkmover report configs/demo.yaml --format csv --output report.csv
      bulkmover report configs/demo.yaml --format jsonl | jq -r 'select(.error) | .uri'
    """
    from pathlib import Path

    from bulkmover.errors import UsageError
    from bulkmover.reporting.command import report_command

    if as_json:
        if fmt not in ("table", "json"):
            raise UsageError(f"--json and --format {fmt} disagree; pass one of them")
        fmt = "json"
    report_command(
        Path(config), fmt=fmt, failed_only=failed_only, output=Path(output) if output else None
    )


@app.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Look up N imported files, chosen at random, in the store.",
)
@click.option("--all", "all_files", is_flag=True, help="Look up every imported file.")
@click.option("--seed", type=int, default=None, help="With --sample: same seed, same files.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout (only).")
def verify(
    config: str, sample: int | None, all_files: bool, seed: int | None, as_json: bool
) -> None:
    """Check the DICOM store against the files the state file records as imported.

    Always compares the store's instance count with the number of imported files. With
    --sample N or --all, reads each chosen file's DICOM header from Cloud Storage and looks its
    SOP Instance UID up in the store (one QIDO-RS search per study). Reads the state file only.
    Exit code 0 when every checked file's instance is in the store, 1 when one is missing or
    its header cannot be read.

    \b
    Example:
      bulkmover verify configs/demo.yaml --sample 500 --seed 7
      bulkmover verify configs/demo.yaml --all --json | jq .missing
    """
    from pathlib import Path

    from bulkmover.verification.command import verify_command

    raise SystemExit(
        verify_command(Path(config), sample=sample, all_files=all_files, seed=seed, as_json=as_json)
    )


@app.command()
@click.option(
    "--data-dir",
    default="demo-data",
    show_default=True,
    help="Where the local cloud, config and state file of the demo go.",
)
@click.option(
    "--studies",
    type=click.IntRange(1, 10_000),
    default=100,
    show_default=True,
    help="Studies in the synthetic dump (50 instances each).",
)
@click.option(
    "--bad-files",
    type=click.IntRange(0, 1000),
    default=5,
    show_default=True,
    help="Non-DICOM files in the dump.",
)
def demo(data_dir: str, studies: int, bad_files: int) -> None:
    """Rehearse a whole migration on the local cloud: emulators, corpus, plan, run, report.

    \b
    Example:
      bulkmover demo
      bulkmover demo --studies 20 --data-dir /tmp/demo
    """
    from pathlib import Path

    from bulkmover.demo import run_demo

    raise SystemExit(run_demo(Path(data_dir), studies=studies, bad_files=bad_files))


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the CLI; a BulkmoverError becomes one line on stderr and its exit code."""
    from bulkmover import logs

    # Library log records go nowhere unless a command (``run``) sends them to its log file:
    # structlog's default prints them to stdout, into the middle of `verify --json`.
    logs.configure(None)
    try:
        app.main(args=argv, prog_name="bulkmover", standalone_mode=False)
    except BulkmoverError as exc:
        from bulkmover.logs import redact_text  # servers may echo a request's credentials

        print(f"error: {_one_line(redact_text(str(exc)))}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.Abort:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except click.UsageError as exc:
        if isinstance(exc, _NoArgsIsHelp) and exc.ctx is not None:  # bare `bulkmover`
            click.echo(exc.ctx.get_help())
            raise SystemExit(exc.exit_code) from None
        # One line, like every other error: what is wrong, and where the fix is (--help).
        command = exc.ctx.command_path if exc.ctx is not None else "bulkmover"
        print(f"error: {_one_line(exc.format_message())} (see `{command} --help`)", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except click.ClickException as exc:
        print(f"error: {_one_line(exc.format_message())}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    raise SystemExit(0)


# click >= 8.2 raises this for a group called with no command (its message is the whole help).
_NoArgsIsHelp: type[click.UsageError] = getattr(
    click.exceptions, "NoArgsIsHelpError", type("_Never", (click.UsageError,), {})
)


def _one_line(text: str) -> str:
    """The message on one line, whatever it quotes (a file name, a server's answer)."""
    return " ".join(text.split()) or "unknown error"


if __name__ == "__main__":
    main()
