"""One writer per report format. Each streams: rows go out as the cursor yields them.

* ``json``: ``{"totals": {...}, "files": [...]}``, the files written one by one as SQLite
  renders them (the document is never built in memory);
* ``jsonl``: the same file objects, one a line, no totals;
* ``csv``: ``uri,size,shard,outcome,error_code,error_message,changed``, empty cells for no error,
  quoted as the csv module quotes (rendered by SQLite, like the JSON);
* ``table``: totals, the matched files no shard imports (``import.unaddressable: skip``), the
  distinct errors with their file counts (rich tables), then one aligned
  line per file. The file lines are formatted here, not by rich: rich lays a table out in
  memory and takes ~250 us a row, minutes for a million files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import islice
from typing import TextIO

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from bulkmover.reporting.rows import CSV_COLUMNS, Ledger, Reason, Widths
from bulkmover.state.files import FileOutcome, OutcomeTotals

MAX_REASONS = 20
"""Distinct errors listed in the table; the rest are summed in one line (messages that name
their file can make every error distinct)."""

Writer = Callable[[Ledger, TextIO, bool, str], None]
"""``writer(ledger, out, failed_only, title)``."""


def write_json(ledger: Ledger, out: TextIO, failed_only: bool, title: str) -> None:
    out.write('{"totals": ' + json.dumps(ledger.totals().as_dict()) + ', "files": [')
    separator = "\n"
    for text in ledger.json_rows(failed_only=failed_only):
        out.write(separator)
        out.write(text)
        separator = ",\n"
    out.write("\n]}\n")


def write_jsonl(ledger: Ledger, out: TextIO, failed_only: bool, title: str) -> None:
    out.writelines(text + "\n" for text in ledger.json_rows(failed_only=failed_only))


def write_csv(ledger: Ledger, out: TextIO, failed_only: bool, title: str) -> None:
    out.write(",".join(CSV_COLUMNS) + "\n")
    out.writelines(text + "\n" for text in ledger.csv_rows(failed_only=failed_only))


_OUTCOME_STYLES = {
    FileOutcome.IMPORTED: "green",
    FileOutcome.FAILED: "bold red",
    FileOutcome.UNKNOWN: "yellow",
    FileOutcome.PENDING: "dim",
}


def write_table(ledger: Ledger, out: TextIO, failed_only: bool, title: str) -> None:
    totals = ledger.totals()
    every = ledger.reasons(failed_only=failed_only)
    reasons = list(islice(every, MAX_REASONS))
    more = more_files = 0
    for reason in every:
        more += 1
        more_files += reason.files
    widths = ledger.widths(failed_only=failed_only)
    terminal = out.isatty()
    # Off a terminal nothing may wrap: a URI or message cut in two cannot be grepped.
    longest = max([len(title), *(len(r.message) + 40 for r in reasons)], default=0)
    console = Console(
        file=out,
        width=None if terminal else max(100, longest + 12),
        color_system="auto" if terminal else None,
        highlight=False,
        emoji=False,
    )
    console.print(Text(title, style="bold"))
    console.print(_totals(totals))
    console.print()
    unplanned = ledger.unplanned()
    if unplanned and not failed_only:
        console.print(
            Text(f"{len(unplanned):,} matched file(s) not planned, not imported", style="bold red")
        )
        for uri, size, why in unplanned:
            console.print(f"{uri}  {size}  {why}", soft_wrap=True)
        console.print()
    what = "failed files" if failed_only else "failed or unknown files"
    selected = "failed files" if failed_only else "files"
    if widths.rows == 0:
        console.print(f"No {selected}.")
        return
    if reasons:
        console.print(Text(f"Why: {what} by error", style="bold"))
        console.print(_reasons(reasons, more, more_files))
    else:
        console.print(f"No {what}.")
    console.print()
    console.print(Text(f"{widths.rows:,} {selected}, by shard and name", style="bold"))
    _file_lines(ledger, out, console, failed_only, widths)


def _totals(totals: OutcomeTotals) -> Table:
    grid = Table.grid(padding=(0, 3))
    counts = totals.as_dict()
    for _ in range(len(counts) + 1):
        grid.add_column(justify="right")
    grid.add_row("files", *(Text(str(o), style=_OUTCOME_STYLES[FileOutcome(o)]) for o in counts))
    grid.add_row(f"{totals.files:,}", *(f"{n:,}" for n in counts.values()))
    return grid


def _reasons(reasons: list[Reason], more: int, more_files: int) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("outcome")
    table.add_column("code", justify="right")
    table.add_column("message", overflow="fold")
    table.add_column("files", justify="right")
    for reason in reasons:
        table.add_row(
            Text(reason.outcome, style=_OUTCOME_STYLES.get(FileOutcome(reason.outcome), "")),
            str(reason.code),
            Text(" ".join(reason.message.split()) or "(no message)"),
            f"{reason.files:,}",
        )
    if more:
        more_text = Text(f"... {more:,} more distinct errors", style="dim")
        table.add_row("", "", more_text, f"{more_files:,}")
    return table


def _file_lines(
    ledger: Ledger,
    out: TextIO,
    console: Console,
    failed_only: bool,
    widths: Widths,
) -> None:
    """One line per file, columns padded to the widest cell (``Ledger.widths``)."""
    uri_width = max(widths.uri, 3)
    size_width = max(widths.size, 4)
    shard_width = max(widths.shard, 5)
    code_width = widths.code
    outcome_width = max(len(o) for o in FileOutcome)
    head = (
        f"{'uri':<{uri_width}}  {'size':>{size_width}}  {'shard':>{shard_width}}"
        f"  {'outcome':<{outcome_width}}  changed  error"
    )
    console.print(Text(head, style="bold"), soft_wrap=True)
    cells = {}
    for outcome in FileOutcome:
        with console.capture() as captured:
            console.print(
                Text(f"{outcome:<{outcome_width}}", style=_OUTCOME_STYLES[outcome]), end=""
            )
        cells[str(outcome)] = captured.get()
    line = f"{{:<{uri_width}}}  {{:>{size_width}}}  {{:>{shard_width}}}  {{}}  {{:<7}}  {{}}"
    write = out.write
    for row in ledger.rows(failed_only=failed_only):
        error = (
            ""
            if row.error_code is None
            else f"{row.error_code:>{code_width}} {_one_line(row.error_message)}"
        )
        text = line.format(
            row.uri,
            row.size,
            row.shard,
            cells.get(row.outcome) or f"{row.outcome:<{outcome_width}}",
            "yes" if row.changed else "",
            error,
        )
        write(text.rstrip() + "\n")


def _one_line(message: str | None) -> str:
    return " ".join(message.split()) if message else ""


FORMATS: dict[str, Writer] = {
    "table": write_table,
    "csv": write_csv,
    "json": write_json,
    "jsonl": write_jsonl,
}
