"""The preflight's pure decisions: no server, no IO."""

from __future__ import annotations

from bulkmover.healthcare.resources import StorePath
from bulkmover.preflight import decisions
from bulkmover.preflight.checks import Check, PreflightError, Report
from bulkmover.preflight.decisions import (
    Grant,
    Scope,
    canary_object,
    canary_verdict,
    member_of,
    needed_permissions,
    permission_checks,
    policy_grants_read,
)

TARGET = StorePath("proj", "us", "ds", "store")
AGENT = "serviceAccount:service-42@gcp-sa-healthcare.iam.gserviceaccount.com"


def test_members_of_identities() -> None:
    assert (
        member_of("sa@p.iam.gserviceaccount.com") == "serviceAccount:sa@p.iam.gserviceaccount.com"
    )
    assert member_of("ana@hospital.org") == "user:ana@hospital.org"
    assert member_of(None) == "user:YOUR_ACCOUNT"


def test_dicomweb_permissions_only_when_failures_are_resolved() -> None:
    base = {n.permission for n in needed_permissions(resolve_failures=False)}
    full = {n.permission for n in needed_permissions(resolve_failures=True)}
    assert "healthcare.dicomStores.import" in base and "logging.logEntries.list" in base
    assert full - base == {
        "healthcare.dicomStores.dicomWebRead",
        "healthcare.dicomStores.dicomWebWrite",
    }


def test_permission_checks_one_per_permission_with_the_grant_at_its_scope() -> None:
    needs = needed_permissions(resolve_failures=False)
    granted = {
        Scope.STORE: ["healthcare.dicomStores.get"],
        Scope.DATASET: ["healthcare.operations.get", "healthcare.operations.list"],
        Scope.PROJECT: None,  # could not be tested
    }
    checks = {c.name: c for c in permission_checks(needs, granted, TARGET, "user:a@b.org")}
    imp = checks["permission healthcare.dicomStores.import"]
    assert imp.ok is False
    assert imp.fix == (
        "gcloud healthcare dicom-stores add-iam-policy-binding store --dataset=ds --location=us"
        " --project=proj --member=user:a@b.org --role=roles/healthcare.dicomEditor"
    )
    assert checks["permission healthcare.operations.list"].ok is True
    assert checks["permission logging.logEntries.list"].ok is None


def test_policy_grants() -> None:
    viewer = {"role": "roles/storage.objectViewer", "members": [AGENT]}
    assert policy_grants_read({"bindings": [viewer]}, AGENT) is Grant.YES
    assert policy_grants_read({"bindings": []}, AGENT) is Grant.NO
    legacy = {"role": "roles/storage.legacyBucketReader", "members": [AGENT]}
    assert policy_grants_read({"bindings": [legacy]}, AGENT) is Grant.NO  # lists, cannot read
    public = {"role": "roles/storage.objectViewer", "members": ["allAuthenticatedUsers"]}
    assert policy_grants_read({"bindings": [public]}, AGENT) is Grant.YES
    conditional = {**viewer, "condition": {"expression": "request.time < timestamp('2020')"}}
    assert policy_grants_read({"bindings": [conditional]}, AGENT) is Grant.CONDITIONAL


def test_canary() -> None:
    assert canary_object(["a/*.dcm", "a/b?.dcm", "a/ok.dcm"]) == "a/ok.dcm"
    assert canary_object(["x[1].dcm"]) is None
    denied = canary_verdict({"done": True, "error": {"code": 7, "message": "no"}}, "gs://b/o", "F")
    assert denied.ok is False and denied.fix == "F"
    assert canary_verdict({"done": True, "response": {}}, "gs://b/o", "F").ok is True
    not_dicom = canary_verdict({"done": True, "error": {"code": 3, "message": "x"}}, "u", "F")
    assert not_dicom.ok is True  # the file was reached


def test_report_and_preflight_error_are_one_line() -> None:
    report = Report(
        (
            Check("a", True, "fine"),
            Check("b", None, "not tested"),
            Check("c", False, "broken", "do this"),
        )
    )
    assert not report.ok and [c.name for c in report.failed] == ["c"]
    assert report.lines() == ["✓ a: fine", "– b: not tested", "✗ c: broken", "    fix: do this"]
    message = str(PreflightError.of(report))
    assert "\n" not in message and "✗ c: broken (fix: do this)" in message


def test_the_lro_quota_is_read_for_the_region_else_the_default() -> None:
    def metrics(*buckets: dict[str, object]) -> dict[str, object]:
        limit = {"unit": "1/min/{project}/{region}", "quotaBuckets": list(buckets)}
        return {"metrics": [{"metric": decisions.LRO_METRIC, "consumerQuotaLimits": [limit]}]}

    both = metrics(
        {"effectiveLimit": "600"}, {"effectiveLimit": "90", "dimensions": {"region": "eu"}}
    )
    assert decisions.lro_limit(both, "eu") == 90
    assert decisions.lro_limit(both, "us") == 600
    assert decisions.lro_limit({"metrics": []}, "eu") is None


def test_an_lro_quota_too_low_for_the_plan_fails_with_the_fix() -> None:
    ok = decisions.quota_check(600, "eu", 10_000)
    assert ok.ok is True and "17 min" in ok.detail
    low = decisions.quota_check(5, "eu", 10_000)  # 2,000 minutes of starts alone
    assert low.ok is False and low.fix and "max_objects_per_shard" in low.fix
    assert decisions.quota_check(0, "eu", None).ok is False
    assert decisions.quota_check(None, "eu", 10, "403").ok is None
    assert decisions.quota_check(-1, "eu", 10**9).ok is True
