"""``plan`` end to end against real servers: exact shards on tricky names, ledger, replans."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from cloudkit import fill_bucket

from bulkmover.config import Config, load_config
from bulkmover.emulator.processes import RunningServer
from bulkmover.errors import ApiError, PlanError, StateError
from bulkmover.gcs.wildcard import has_wildcard, parse_wildcard
from bulkmover.planning.plan import PlanOutcome, plan
from bulkmover.planning.summary import plan_json
from bulkmover.state import KeptChanges, ShardState, StateStore

TRICKY = [
    "site/a/1.dcm",
    "site/a/2.dcm",
    "site/a/b/3.dcm",
    "site/a/b/c/d/e/f/g/h/deep.dcm",
    "site/with space/x y.dcm",
    "site/with space/z.dcm",
    "site/ünï/cödé.dcm",
    "site/日本/画像.dcm",
    "site/meta/+()[]$^.{}|\\.dcm",
    "site/meta/a&b=c#d;e,f%20.dcm",
    "site/q?mark.dcm",
    "site/star*name.dcm",
    "site/x*y.dcm",
    "site/x*z.dcm",
    "site/odd*dir/1.dcm",
    "site/trailing/",
    "site//empty-component.dcm",
    "site/x.dcm.json",
    "site/1.2.dcm",
    "site/1.2.3.dcm",
    "site/1.24.dcm",
    "site-sibling/y.dcm",
    *(f"site/P{p:02d}/s{s}/{i}.dcm" for p in range(12) for s in range(2) for i in range(2)),
]


def write_config(
    tmp_path: Path, url: str, source: str, *, objects: int = 3, extra: str = ""
) -> Config:
    path = tmp_path / f"job-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(
        f"""\
target: {{project: p, location: l, dataset: d, dicom_store: s}}
storage: {{endpoint: "{url}", list_concurrency: 8}}
import:
  source: "{source}"
  max_objects_per_shard: {objects}
  max_bytes_per_shard: 1GiB
{extra}
credentials: {{kind: anonymous}}
state: state/{path.stem}.db
"""
    )
    return load_config(path)


@pytest.fixture
def tricky_bucket(gcs_server: RunningServer) -> str:
    bucket = f"plan-{uuid.uuid4().hex[:10]}"
    fill_bucket(gcs_server.url, bucket, {n: b"x" * (1 + i % 5) for i, n in enumerate(TRICKY)})
    return bucket


def check_exact(outcome: PlanOutcome, names: list[str], config: Config) -> None:
    """Evaluate every shard over the bucket's names; compare with the ledger."""
    source = config.import_.wildcard
    matched = {n for n in names if source.matches(n)}
    covered: set[str] = set()
    with StateStore.open(config.state, create=False) as store:
        for shard in outcome.shards:
            members = {n for n in names if parse_wildcard(shard.uri).matches(n)}
            assert not members & covered, shard.uri
            assert config.import_.max_objects_per_shard >= shard.objects or shard.objects == 1
            assert {o.name for o in store.ledger(shard.id)} == members, shard.uri
            assert shard.objects == len(members)
            covered |= members
        unplanned = {u.name for u in store.unplanned()}
    assert covered | unplanned == matched
    assert all(has_wildcard(n) for n in unplanned)
    assert outcome.totals.objects == len(covered)


@pytest.mark.parametrize(
    ("source", "limit"),
    [("site/**.dcm", 3), ("site/**.dcm", 1000), ("site/**", 2), ("**.dcm", 4), ("site/*/*.dcm", 2)],
)
def test_plans_are_exact_on_tricky_names(
    gcs_server: RunningServer, tricky_bucket: str, tmp_path: Path, source: str, limit: int
) -> None:
    uri = f"gs://{tricky_bucket}/{source}"
    config = write_config(
        tmp_path, gcs_server.url, uri, objects=limit, extra="  unaddressable: skip"
    )
    outcome = plan(config)
    check_exact(outcome, TRICKY, config)
    if limit == 1000:
        assert [s.uri for s in outcome.shards] == [uri]
    document = plan_json(outcome)
    assert set(document) == {"source", "shards", "totals"}
    assert document["totals"]["shards"] == len(document["shards"]) == len(outcome.shards)


def test_same_depth_siblings_share_a_shard(
    gcs_server: RunningServer, tricky_bucket: str, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        gcs_server.url,
        f"gs://{tricky_bucket}/site/**.dcm",
        objects=40,
        extra="  unaddressable: skip",
    )
    outcome = plan(config)
    check_exact(outcome, TRICKY, config)
    uris = [s.uri for s in outcome.shards]
    assert f"gs://{tricky_bucket}/site/P0*/*/*.dcm" in uris  # 10 patient directories
    assert f"gs://{tricky_bucket}/site/P1*/*/*.dcm" in uris


def test_unaddressable_names_fail_the_plan_by_default(
    gcs_server: RunningServer, tricky_bucket: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, gcs_server.url, f"gs://{tricky_bucket}/site/**.dcm", objects=1)
    with pytest.raises(
        PlanError, match=r"2 matched objects cannot be imported by any shard URI .*site/x\*y.dcm"
    ):
        plan(config)
    assert not config.state.exists()


def test_replan_refuses_then_keeps_what_ran(gcs_server: RunningServer, tmp_path: Path) -> None:
    bucket = f"replan-{uuid.uuid4().hex[:10]}"
    names = [f"r/{d}/{i}.dcm" for d in "abcd" for i in range(3)]
    fill_bucket(gcs_server.url, bucket, dict.fromkeys(names, b"xy"))
    config = write_config(tmp_path, gcs_server.url, f"gs://{bucket}/r/**.dcm", objects=4)
    first = plan(config)
    assert len(first.shards) == 4
    with pytest.raises(StateError, match="already holds a plan .* use --replan"):
        plan(config)
    ran = first.shards[1]
    with StateStore.open(config.state) as store:
        store.runs.claim(ran.id)
        store.runs.mark_running(ran.id, "operations/ran")
        store.runs.mark_finished(
            ran.id, "operations/ran", success=3, failure=0, error=None, state=ShardState.DONE
        )
    # New files arrive, among them one inside the scope of the shard that ran.
    added = ["r/e/0.dcm", "r/a/9.dcm", ran.prefix + "late.dcm"]
    fill_bucket(gcs_server.url, bucket, dict.fromkeys(added, b"z"))
    second = plan(config, replan=True)
    assert (second.kept_shards, second.new_shards) == (1, len(second.shards) - 1)
    # The late file is the kept shard's (its URI imports it): in its ledger, not in a new shard,
    # imported by a child shard of it whose URI matches nothing else.
    kept = [s for s in second.shards if s.id == ran.id]
    assert [(s.uri, s.objects, s.state) for s in kept] == [(ran.uri, 4, ShardState.DONE)]
    assert second.kept_changes == KeptChanges(added=1, children=1)
    assert all(s.id > first.shards[-1].id for s in second.shards if s.id != ran.id)
    own = [f"{ran.prefix}{i}.dcm" for i in range(3)] + [ran.prefix + "late.dcm"]
    with StateStore.open(config.state, create=False) as store:
        assert [o.name for o in store.ledger(ran.id)] == sorted(own)
        in_new = {o.name for s in second.shards if s.id != ran.id for o in store.ledger(s.id)}
        children = store.conn.execute(
            "SELECT uri, purpose, objects FROM shards WHERE parent_id = ?", (ran.id,)
        ).fetchall()
    assert in_new == set(names + added) - set(own)
    assert [(c[1], c[2]) for c in children] == [("replan", 1)]
    assert [n for n in names + added if parse_wildcard(children[0][0]).matches(n)] == [own[-1]]
    for shard in second.shards:
        if shard.id != ran.id:
            assert not any(parse_wildcard(shard.uri).matches(n) for n in own)


def test_nothing_matched_and_missing_bucket(
    gcs_server: RunningServer, tricky_bucket: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, gcs_server.url, f"gs://{tricky_bucket}/site/**.nii")
    with pytest.raises(PlanError, match=r"nothing matches .*site/\*\*\.nii \(\d+ objects listed"):
        plan(config)
    config = write_config(tmp_path, gcs_server.url, "gs://no-such-bucket-y/site/**.dcm")
    with pytest.raises(ApiError, match="bucket gs://no-such-bucket-y not found"):
        plan(config)
    assert not config.state.exists()
    assert not list(config.state.parent.glob("*.listing"))
