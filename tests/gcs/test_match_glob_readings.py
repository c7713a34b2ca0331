"""matchGlob under every reading of ``**`` the real service might have.

Google's documentation does not settle what Cloud Storage's ``matchGlob`` makes of ``**`` not
alone in a path segment (``g/**.dcm``): the emulator's ``match_glob_double_star`` knob offers
``any`` (any characters, ``/`` included), ``segment`` (a single ``*`` unless alone in its
segment, as gcloud-style wildcards read ``dir**``) and ``star`` (a single ``*`` everywhere).
Under each, the planner lists exactly what the source matches, files in sub-directories
included, and says when it stopped trusting the server's glob.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cloudkit import start_gcs_emulator

from bulkmover.emulator.gcs import BulkRow, bulk_load
from bulkmover.emulator.processes import RunningServer
from bulkmover.gcs.client import StorageClient
from bulkmover.gcs.listing import ListedObject, ListingStats, list_matches
from bulkmover.gcs.wildcard import parse_wildcard
from bulkmover.state.store import StateStore

READINGS = ["any", "segment", "star"]
NOISE = [f"g/{i:05d}.json" for i in range(4000)]
TOP = [f"g/{i:05d}.dcm" for i in range(0, 4000, 40)]
ONE_DOWN = [f"g/{i:05d}/a.dcm" for i in range(10, 4000, 40)]
TWO_DOWN = [f"g/{i:05d}/s/{j}.dcm" for i in range(20, 4000, 40) for j in range(2)]
NAMES = NOISE + TOP + ONE_DOWN + TWO_DOWN
# For the CLI (pages of 1000): enough noise that chains start after the glob pays.
CLI_NAMES = [
    *(f"c/{i:05d}.json" for i in range(20000)),
    *(f"c/{i:05d}.dcm" for i in range(0, 20000, 100)),
    *(f"c/{i:05d}/s/{j}.dcm" for i in range(50, 20000, 100) for j in range(2)),
]


@pytest.fixture(scope="module", params=READINGS)
def reading_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, RunningServer, str]]:
    reading: str = request.param
    server = start_gcs_emulator(
        tmp_path_factory.mktemp(f"gcs-{reading}"), "--match-glob-double-star", reading
    )
    try:
        bucket = f"readings-{uuid.uuid4().hex[:10]}"
        rows = (BulkRow(n, size=1) for n in NAMES + CLI_NAMES)
        asyncio.run(bulk_load(server.url, bucket, rows))
        yield reading, server, bucket
    finally:
        server.stop()


class RecordingPages:
    def __init__(self, client: StorageClient) -> None:
        self.client = client
        self.sent: list[dict[str, str]] = []

    async def list_page(self, bucket: str, params: dict[str, str]) -> dict[str, object]:
        self.sent.append(dict(params))
        return await self.client.list_page(bucket, params)


async def listed(url: str, uri: str) -> tuple[list[str], ListingStats, list[dict[str, str]]]:
    objects: list[ListedObject] = []
    async with StorageClient(endpoint=url) as client:
        pages = RecordingPages(client)
        stats = await list_matches(
            parse_wildcard(uri), pages, objects.extend, concurrency=4, page_size=200
        )
    return sorted(o.name for o in objects), stats, pages.sent


async def test_recursive_source_is_exact_under_every_reading(
    reading_server: tuple[str, RunningServer, str],
) -> None:
    reading, server, bucket = reading_server
    wildcard = parse_wildcard(f"gs://{bucket}/g/**.dcm")
    names, stats, sent = await listed(server.url, str(wildcard))
    assert names == sorted(n for n in NAMES if wildcard.matches(n))
    assert len(names) == len(TOP) + len(ONE_DOWN) + len(TWO_DOWN)
    globbed = [p for p in sent if "matchGlob" in p and p["maxResults"] != "1"]
    assert stats.glob_probes >= 1  # the server's reading was checked before any use
    if reading == "star":
        # '**' read as '*' would drop every file below g/: the check sees it, no chain sends it.
        assert stats.match_glob is None and not globbed
        assert "leaves out" in stats.match_glob_note
    else:
        # The glob is sent with '**' alone in its segment, which both readings agree on.
        assert stats.match_glob == "g/**/*.dcm", stats.match_glob_note
        assert globbed and all(p["matchGlob"] == "g/**/*.dcm" for p in globbed)
        assert "matchGlob" not in sent[0]


async def test_mid_segment_double_star_is_exact_under_every_reading(
    reading_server: tuple[str, RunningServer, str],
) -> None:
    """``g/0**.dcm`` cannot put ``**`` alone in a segment: sent as is, only if the server
    reads it across directories."""
    reading, server, bucket = reading_server
    wildcard = parse_wildcard(f"gs://{bucket}/g/0**.dcm")
    names, stats, sent = await listed(server.url, str(wildcard))
    assert names == sorted(n for n in NAMES if wildcard.matches(n))
    assert any(n.count("/") == 3 for n in names)
    globbed = [p for p in sent if "matchGlob" in p and p["maxResults"] != "1"]
    if reading == "any":
        assert stats.match_glob == "g/0**.dcm" and globbed
    else:
        assert stats.match_glob is None and not globbed
        assert "leaves out" in stats.match_glob_note


async def test_no_deep_match_seen_means_no_glob(gcs_emulator: RunningServer) -> None:
    """Without a match two directories down, nothing tells '**' from '*/': never sent."""
    bucket = f"flat-{uuid.uuid4().hex[:10]}"
    noise = [f"f/{i:05d}.json" for i in range(3000)]
    wanted = [f"f/{i:05d}.dcm" for i in range(0, 3000, 30)]
    await bulk_load(gcs_emulator.url, bucket, (BulkRow(n, size=1) for n in noise + wanted))
    names, stats, sent = await listed(gcs_emulator.url, f"gs://{bucket}/f/**.dcm")
    assert names == sorted(wanted)
    assert not any("matchGlob" in p for p in sent)
    assert stats.match_glob is None and "not sent yet" in stats.match_glob_note


CONFIG = """\
target: {{project: p, location: l, dataset: d, dicom_store: s}}
storage: {{endpoint: "{url}", max_attempts: 2, list_concurrency: 16}}
import:
  source: "gs://{bucket}/c/**.dcm"
  max_objects_per_shard: 100
credentials: {{kind: anonymous}}
state: state/plan.db
"""


def test_plan_cli_is_exact_under_every_reading(
    reading_server: tuple[str, RunningServer, str], tmp_path: Path
) -> None:
    """``bulkmover plan`` where most objects do not match (so matchGlob pays) and the .dcm
    files sit in sub-directories: the same exact plan whatever the server's reading."""
    _, server, bucket = reading_server
    config = tmp_path / "job.yaml"
    config.write_text(CONFIG.format(url=server.url, bucket=bucket))
    result = subprocess.run(
        [sys.executable, "-m", "bulkmover.cli", "plan", str(config), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    wildcard = parse_wildcard(f"gs://{bucket}/c/**.dcm")
    expected = sorted(n for n in CLI_NAMES if wildcard.matches(n))
    assert document["totals"]["objects"] == len(expected) == 600
    assert sum(s["objects"] for s in document["shards"]) == len(expected)
    # Every planned file, by name, from the ledger: exactly the matching names.
    with StateStore.open(tmp_path / "state" / "plan.db", create=False) as store:
        planned = sorted(o.name for shard in store.shards() for o in store.ledger(shard.id))
    assert planned == expected


@pytest.mark.parametrize(
    ("glob", "name", "any_", "segment", "star"),
    [
        ("g/**.dcm", "g/x.dcm", True, True, True),
        ("g/**.dcm", "g/a/b/x.dcm", True, False, False),
        ("g/**/*.dcm", "g/x.dcm", True, True, False),
        ("g/**/*.dcm", "g/a/b/x.dcm", True, True, False),
        ("g/**/*.dcm", "g/a/x.dcm", True, True, True),
        ("g/**", "g/a/b/x.dcm", True, True, False),
        ("g/a**/x.dcm", "g/ab/c/x.dcm", True, False, False),
    ],
)
def test_emulator_glob_readings(
    glob: str, name: str, any_: bool, segment: bool, star: bool
) -> None:
    from bulkmover.emulator.gcs.globs import compile_glob

    assert compile_glob(glob).matches(name) is any_
    assert compile_glob(glob, "segment").matches(name) is segment
    assert compile_glob(glob, "star").matches(name) is star
