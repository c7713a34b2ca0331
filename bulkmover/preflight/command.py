"""``bulkmover doctor CONFIG`` and ``run``'s preflight."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from bulkmover.config import Config, load_config
from bulkmover.preflight.checks import PreflightError, Report
from bulkmover.preflight.probes import Options, diagnose


def doctor_command(config_path: Path, *, as_json: bool) -> int:
    """Every check, one line each (``--json``: one document); 0 when none fails."""
    config = load_config(config_path)
    report = asyncio.run(diagnose(config, Options(planned=_has_plan(config))))
    if as_json:
        json.dump(report.as_json(), sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        for line in report.lines():
            print(line)
        failed = len(report.failed)
        print("all checks passed" if report.ok else f"{failed} check(s) failed: see fix: lines")
    return 0 if report.ok else 1


def run_preflight(config: Config, *, create_store: bool) -> None:
    """Before ``run`` submits anything: PreflightError (one line, every failed check) unless
    every check passes. No canary import here: a run submits nothing before it passes."""
    options = Options(
        create_store=create_store,
        canary=False,
        planned=_has_plan(config),
        raise_credential_errors=True,
    )
    report: Report = asyncio.run(diagnose(config, options))
    if not report.ok:
        raise PreflightError.of(report)


def _has_plan(config: Config) -> bool:
    from bulkmover.execution.runner import has_plan

    return has_plan(config)
