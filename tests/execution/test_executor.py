"""The executor against the real emulators: every shard ends once, counters equal the corpus.

Shards here are made by hand (one per study directory) so these tests do not depend on the
planner; the planner's own tests check that its shards are exact.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cloudkit import start_gcs_emulator, start_healthcare_emulator

from bulkmover.corpus import CorpusSpec, iter_corpus, write_corpus
from bulkmover.emulator.processes import RunningServer
from bulkmover.errors import ApiError
from bulkmover.execution.executor import Executor, ExecutorSettings, RunResult
from bulkmover.execution.kinds import ImportKind, Judgement, OperationKind, Outcome, judge_error
from bulkmover.execution.limits import AdaptiveLimits, LimitSettings
from bulkmover.execution.pacing import StartPacer
from bulkmover.healthcare.client import HealthcareClient
from bulkmover.healthcare.operations import EXPORT_METHOD, IMPORT_METHOD, Operation, OperationRef
from bulkmover.healthcare.resources import StorePath
from bulkmover.retry import RetryPolicy
from bulkmover.state import PlanDraft, ShardState, StateStore
from bulkmover.state.runs import RunLedger, ShardRun

SPEC = CorpusSpec(studies=12, series_per_study=2, instances_per_series=5, bad_files=6, seed=7)


def study_shards(bucket: str, prefix: str, spec: CorpusSpec) -> list[tuple[str, int]]:
    """One `**.dcm` shard per study directory (bad files inside count), exact shards elsewhere."""
    files = list(iter_corpus(spec))
    dirs: dict[str, int] = {}
    for f in files:
        if f.valid:
            dirs.setdefault(f.name.rsplit("/", 2)[0], 0)
    loose: list[str] = []
    for f in files:
        owner = next((d for d in dirs if f.name.startswith(d + "/")), None)
        if owner is None:
            loose.append(f.name)
        else:
            dirs[owner] += 1
    shards = [(f"gs://{bucket}/{prefix}/{d}/**.dcm", n) for d, n in sorted(dirs.items())]
    shards += [(f"gs://{bucket}/{prefix}/{name}", 1) for name in sorted(loose)]
    return shards


def planned_ledger(path: Path, shards: list[tuple[str, int]]) -> RunLedger:
    """A state file holding ``shards`` as a plan, and the executor's view of it."""
    store = StateStore.open(path)
    total = sum(n for _, n in shards)
    with store.writing_plan(PlanDraft("test", 10**6, 10**12, total, total, total, 0.0)) as plan:
        for uri, n in shards:
            plan.add_shard(uri, uri.split("/", 3)[3].split("*")[0], n, n * 1000)
    return store.runs


@pytest.fixture()
def cloud(tmp_path: Path) -> Iterator[tuple[RunningServer, RunningServer]]:
    gcs = start_gcs_emulator(tmp_path / "gcs")
    hc = start_healthcare_emulator(
        tmp_path / "hc", gcs.url, "--max-running-operations", "4", "--seed", "3"
    )
    yield gcs, hc
    hc.stop()
    gcs.stop()


def _http(method: str, url: str, body: dict[str, object] | None = None) -> dict[str, object]:
    req = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"{}")  # type: ignore[no-any-return]


def _imports(hc_url: str) -> list[dict[str, object]]:
    """Every import operation the emulator ever started (its admin view)."""
    ops = _http("GET", f"{hc_url}/_emulator/operations")["operations"]
    assert isinstance(ops, list)
    return [o for o in ops if "gcsSource" in o["request"]]


def _make_store(hc_url: str) -> StorePath:
    _http("POST", f"{hc_url}/v1/projects/p/locations/l/datasets?datasetId=d", {})
    _http("POST", f"{hc_url}/v1/projects/p/locations/l/datasets/d/dicomStores?dicomStoreId=s", {})
    return StorePath("p", "l", "d", "s")


async def _run(
    ledger: RunLedger,
    hc_url: str,
    store: StorePath,
    max_ops: int = 8,
    kind: OperationKind | None = None,
) -> RunResult:
    limits = AdaptiveLimits(
        LimitSettings(max_concurrency=max_ops, cooldown=1.0, recovery_interval=1.0)
    )
    pacer = StartPacer(limits.acquire_request)
    async with HealthcareClient(
        endpoint=hc_url,
        retry=RetryPolicy(base_delay=0.05, max_delay=0.5),
        before_request=pacer.before_request,
    ) as client:
        executor = Executor(
            ledger, client, limits, kind or ImportKind(store),
            ExecutorSettings(retry_base=0.05, retry_cap=0.2), pacer=pacer,
        )  # fmt: skip
        client.listeners.extend((pacer.on_response, executor.on_response))
        return await executor.run()


def test_run_imports_corpus_exactly_once(
    tmp_path: Path, cloud: tuple[RunningServer, RunningServer]
) -> None:
    gcs, hc = cloud
    asyncio.run(write_corpus("gs://pacs/dump", SPEC, storage_endpoint=gcs.url))
    store = _make_store(hc.url)
    shards = study_shards("pacs", "dump", SPEC)
    ledger = planned_ledger(tmp_path / "state.db", shards)

    result = asyncio.run(_run(ledger, hc.url, store))

    t = result.totals
    assert (t.shards, t.done, t.failed, t.pending, t.running) == (len(shards), len(shards), 0, 0, 0)
    assert t.success == SPEC.instances
    assert t.failure == SPEC.bad_files
    assert not result.ok  # bad files failed: a run with failures does not exit 0
    runs = {r.shard_id: r for r in ledger.iter_shards()}
    assert all(r.state == ShardState.DONE and r.operation for r in runs.values())
    assert not any(r.drift for r in runs.values())
    # On the emulator's side: each shard's URI was imported exactly once (429s were retried
    # before any operation started, so they do not count).
    ops = _imports(hc.url)
    uris = [o["request"]["gcsSource"]["uri"] for o in ops]
    assert sorted(uris) == sorted(uri for uri, _ in shards)
    metrics = _http("GET", f"{hc.url}/v1/{store.name}:getDICOMStoreMetrics")
    assert int(str(metrics["instanceCount"])) == SPEC.instances

    # A second run over the finished state does nothing.
    again = asyncio.run(_run(ledger, hc.url, store))
    assert again.totals == t
    assert len(_imports(hc.url)) == len(ops)


def test_transient_operation_failures_are_requeued_until_done(tmp_path: Path) -> None:
    gcs = start_gcs_emulator(tmp_path / "gcs")
    hc = start_healthcare_emulator(
        tmp_path / "hc", gcs.url, "--failed-operation-rate", "0.4", "--seed", "11"
    )
    try:
        spec = CorpusSpec(studies=8, series_per_study=1, instances_per_series=3, seed=5)
        asyncio.run(write_corpus("gs://pacs/dump", spec, storage_endpoint=gcs.url))
        store = _make_store(hc.url)
        ledger = planned_ledger(tmp_path / "state.db", study_shards("pacs", "dump", spec))
        result = asyncio.run(_run(ledger, hc.url, store))
        assert result.ok, result
        assert result.totals.success == spec.instances
        ops = _imports(hc.url)
        failed = [o for o in ops if o["error"]]
        assert failed, "the knob should have failed some operations"
        # Every shard has exactly one successful operation, and only failed ones before it.
        for shard in ledger.iter_shards():
            mine = [o for o in ops if o["request"]["gcsSource"]["uri"] == shard.uri]
            assert [o for o in mine if not o["error"]] and len(
                [o for o in mine if not o["error"]]
            ) == 1
            assert ledger.operation_count(shard.shard_id) == len(mine)
    finally:
        hc.stop()
        gcs.stop()


@dataclass(frozen=True)
class ExportEachShard:
    """A kind the executor was not written for: each shard exports the whole store to a prefix
    of its own (a stand-in for the export and failure-resolution kinds to come)."""

    store: StorePath
    bucket: str
    name: str = "export-test"
    api_method: str = EXPORT_METHOD

    async def start(self, client: HealthcareClient, shard: ShardRun) -> OperationRef:
        return await client.export_dicom(self.store, self.prefix(shard))

    def judge(self, shard: ShardRun, op: Operation) -> Judgement:
        return judge_error(op) if op.error else Judgement(Outcome.DONE)

    def prefix(self, shard: ShardRun) -> str:
        return f"gs://{self.bucket}/exports/{shard.shard_id}"


def test_a_new_operation_kind_runs_through_the_unchanged_executor(
    tmp_path: Path, cloud: tuple[RunningServer, RunningServer]
) -> None:
    gcs, hc = cloud
    spec = CorpusSpec(studies=2, series_per_study=1, instances_per_series=3, seed=2)
    asyncio.run(write_corpus("gs://pacs/dump", spec, storage_endpoint=gcs.url))
    store = _make_store(hc.url)
    imported = asyncio.run(
        _run(planned_ledger(tmp_path / "in.db", study_shards("pacs", "dump", spec)), hc.url, store)
    )
    assert imported.ok

    exports = planned_ledger(
        tmp_path / "out.db", [(f"gs://pacs/export-plan/{i}", 1) for i in range(6)]
    )
    kind = ExportEachShard(store, "pacs")
    result = asyncio.run(_run(exports, hc.url, store, max_ops=3, kind=kind))

    assert result.ok, result
    shards = list(exports.iter_shards())
    assert all(s.state == ShardState.DONE and s.operation for s in shards)
    ops = _http("GET", f"{hc.url}/_emulator/operations")["operations"]
    assert isinstance(ops, list)
    prefixes = sorted(o["request"]["gcsDestination"]["uriPrefix"] for o in ops
                      if "gcsDestination" in o["request"])  # fmt: skip
    assert prefixes == sorted(kind.prefix(s) for s in shards)
    # Each export wrote every instance under its own prefix.
    for shard in shards:
        listing = _http("GET", f"{gcs.url}/storage/v1/b/pacs/o?prefix=exports/{shard.shard_id}/")
        assert isinstance(listing["items"], list) and len(listing["items"]) == spec.instances


@dataclass(frozen=True)
class SystemicOnFirst:
    """Import, but judge the first shard's operation as a failure every shard would share."""

    inner: ImportKind
    name: str = "import"
    api_method: str = IMPORT_METHOD

    @property
    def store(self) -> StorePath:
        return self.inner.store

    async def start(self, client: HealthcareClient, shard: ShardRun) -> OperationRef:
        return await self.inner.start(client, shard)

    def judge(self, shard: ShardRun, op: Operation) -> Judgement:
        if shard.shard_id == 1:
            return Judgement(Outcome.SYSTEMIC, "the service agent cannot read the bucket")
        return self.inner.judge(shard, op)


def test_a_systemic_judgement_stops_the_run_with_its_error_and_keeps_the_shard_queued(
    tmp_path: Path, cloud: tuple[RunningServer, RunningServer]
) -> None:
    gcs, hc = cloud
    asyncio.run(write_corpus("gs://pacs/dump", SPEC, storage_endpoint=gcs.url))
    store = _make_store(hc.url)
    ledger = planned_ledger(tmp_path / "state.db", study_shards("pacs", "dump", SPEC))
    kind = SystemicOnFirst(ImportKind(store))

    with pytest.raises(ApiError, match="cannot read the bucket"):
        asyncio.run(_run(ledger, hc.url, store, max_ops=1, kind=kind))

    first = next(s for s in ledger.iter_shards() if s.shard_id == 1)
    assert first.state == ShardState.PENDING and first.error
    # Stopping means stopping: with one slot, nothing after the first shard was started.
    assert len(_imports(hc.url)) == 1
    assert all(s.state == ShardState.PENDING for s in ledger.iter_shards())


def test_starts_whose_answers_are_lost_are_adopted_not_sent_again(tmp_path: Path) -> None:
    """A third of the emulator's faults reset the connection after the import started: the
    executor must find those operations instead of starting each shard a second time."""
    gcs = start_gcs_emulator(tmp_path / "gcs")
    hc = start_healthcare_emulator(tmp_path / "hc", gcs.url, "--fault-rate", "0.3", "--seed", "6")
    try:
        spec = CorpusSpec(studies=12, series_per_study=1, instances_per_series=2, seed=8)
        asyncio.run(write_corpus("gs://pacs/dump", spec, storage_endpoint=gcs.url))
        store = _make_store(hc.url)
        shards = study_shards("pacs", "dump", spec)
        ledger = planned_ledger(tmp_path / "state.db", shards)
        result = asyncio.run(_run(ledger, hc.url, store, max_ops=4))
        assert result.ok, result
        assert result.totals.success == spec.instances
        ops = _imports(hc.url)
        history = [(e.shard_id, e.kind, e.detail) for e in ledger.recent_events(200)]
        seen = [
            (o["request"]["gcsSource"]["uri"][-30:], o["name"][-6:], o.get("createTime"))
            for o in ops
        ]
        uris = sorted(o["request"]["gcsSource"]["uri"] for o in ops)
        assert uris == sorted(uri for uri, _ in shards), (history, seen)  # one operation each
        adopted = ledger.recent_events(100, kinds=("adopted",))
        assert adopted, "no start lost its answer: the fault knob did not bite"
        assert all(ledger.operation_count(s.shard_id) == 1 for s in ledger.iter_shards())
    finally:
        hc.stop()
        gcs.stop()
