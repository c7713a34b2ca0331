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


def main(argv: list[str] | None = None) -> NoReturn:
    """Run the CLI; a BulkmoverError becomes one line on stderr and its exit code."""
    try:
        app.main(args=argv, prog_name="bulkmover", standalone_mode=False)
    except BulkmoverError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.Abort:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    raise SystemExit(0)
