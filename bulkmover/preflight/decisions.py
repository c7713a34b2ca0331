"""Pure decisions of the preflight: which permissions a run needs and where, what a bucket
policy grants, and the exact command that fixes each failed check. No IO: unit-tested alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bulkmover.healthcare import calls
from bulkmover.healthcare.calls import CallSpec
from bulkmover.healthcare.resources import StorePath
from bulkmover.preflight.checks import Check

AGENT_DOMAIN = "gcp-sa-healthcare.iam.gserviceaccount.com"
READER_ROLE = "roles/storage.objectViewer"
# Roles that let a principal list and read a bucket's objects (what an import does).
READ_ROLES = frozenset(
    {
        "roles/storage.objectViewer",
        "roles/storage.objectUser",
        "roles/storage.objectAdmin",
        "roles/storage.admin",
        "roles/viewer",
        "roles/editor",
        "roles/owner",
    }
)
EVERYONE = ("allUsers", "allAuthenticatedUsers")


class Scope(StrEnum):
    """Where a permission is tested (and granted): the store, its dataset, the project."""

    STORE = "store"
    DATASET = "dataset"
    PROJECT = "project"


@dataclass(frozen=True)
class Need:
    spec: CallSpec
    scope: Scope
    why: str

    @property
    def permission(self) -> str:
        return self.spec.permission


def needed_permissions(*, resolve_failures: bool) -> list[Need]:
    """What ``run`` calls, by permission: starts, polls, the per-file stage's reads."""
    needs = [
        Need(calls.IMPORT, Scope.STORE, "start imports"),
        Need(calls.GET_DICOM_STORE, Scope.STORE, "check the store"),
        Need(calls.GET_OPERATION, Scope.DATASET, "poll operations"),
        Need(calls.LIST_OPERATIONS, Scope.DATASET, "poll many operations, find lost starts"),
        Need(calls.LIST_LOG_ENTRIES, Scope.PROJECT, "read each failed file's error"),
    ]
    if resolve_failures:
        needs += [
            Need(calls.SEARCH_INSTANCES, Scope.STORE, "find files the log does not name"),
            Need(calls.STORE_INSTANCES, Scope.STORE, "send files one by one (STOW-RS)"),
        ]
    return needs


def member_of(email: str | None) -> str:
    """The IAM principal of an identity; a placeholder when it is not known."""
    if not email:
        return "user:YOUR_ACCOUNT"
    if email.endswith(".gserviceaccount.com"):
        return f"serviceAccount:{email}"
    return f"user:{email}"


def grant_command(need: Need, target: StorePath, member: str) -> str:
    role = need.spec.role
    if need.scope is Scope.STORE:
        return (
            f"gcloud healthcare dicom-stores add-iam-policy-binding {target.store}"
            f" --dataset={target.dataset_id} --location={target.location}"
            f" --project={target.project} --member={member} --role={role}"
        )
    if need.scope is Scope.DATASET:
        return (
            f"gcloud healthcare datasets add-iam-policy-binding {target.dataset_id}"
            f" --location={target.location} --project={target.project}"
            f" --member={member} --role={role}"
        )
    return (
        f"gcloud projects add-iam-policy-binding {target.project} --member={member} --role={role}"
    )


def permission_checks(
    needs: Sequence[Need],
    granted: Mapping[Scope, Iterable[str] | None],
    target: StorePath,
    member: str,
) -> list[Check]:
    """One check per permission. ``granted[scope]`` None: that scope could not be tested."""
    out: list[Check] = []
    for need in needs:
        name = f"permission {need.permission}"
        held = granted.get(need.scope)
        if held is None:
            out.append(Check(name, None, f"not tested on the {need.scope} (see above)"))
        elif need.permission in set(held):
            out.append(Check(name, True, f"granted on the {need.scope} ({need.why})"))
        else:
            out.append(
                Check(
                    name,
                    False,
                    f"denied on the {need.scope}: needed to {need.why}",
                    grant_command(need, target, member),
                )
            )
    return out


def agent_email(project_number: int | str) -> str:
    return f"service-{project_number}@{AGENT_DOMAIN}"


def bucket_grant_command(bucket: str, member: str) -> str:
    return (
        f"gcloud storage buckets add-iam-policy-binding gs://{bucket}"
        f" --member={member} --role={READER_ROLE}"
    )


class Grant(StrEnum):
    YES = "yes"
    NO = "no"
    CONDITIONAL = "conditional"


def policy_grants_read(policy: Mapping[str, Any], member: str) -> Grant:
    """Whether a bucket IAM policy lets ``member`` read objects (a read role naming it, or
    everyone); CONDITIONAL when only bindings with a condition do."""
    conditional = False
    for binding in policy.get("bindings", []) or []:
        if not isinstance(binding, Mapping) or binding.get("role") not in READ_ROLES:
            continue
        members = binding.get("members", []) or []
        if member in members or any(m in members for m in EVERYONE):
            if binding.get("condition"):
                conditional = True
            else:
                return Grant.YES
    return Grant.CONDITIONAL if conditional else Grant.NO


def canary_object(names: Iterable[str]) -> str | None:
    """A matched object an import URI can name exactly (no wildcard characters in it)."""
    for name in names:
        if not any(c in name for c in "*?[]"):
            return name
    return None


def canary_verdict(operation: Mapping[str, Any], uri: str, fix: str) -> Check:
    """What a finished one-file import says about the service agent's access."""
    name = "service agent reads the bucket"
    error = operation.get("error")
    if not isinstance(error, Mapping):
        return Check(name, True, f"a one-file canary import read {uri}")
    code, message = error.get("code"), str(error.get("message", ""))
    if code == 7 or "permission" in message.lower():
        return Check(name, False, f"a one-file canary import of {uri} failed: {message}", fix)
    if code == 5:
        return Check(name, False, f"a one-file canary import found no {uri}: {message}")
    # Another error (not DICOM, a transient failure) means the file was reached.
    return Check(name, True, f"a one-file canary import reached {uri} ({message})")


# -- quotas ---------------------------------------------------------------------------------------
LRO_METRIC = "healthcare.googleapis.com/dicom_store_lro_ops"
QUOTAS_PAGE = "https://console.cloud.google.com/iam-admin/quotas?service=healthcare.googleapis.com"
#: Starts alone taking longer than this make the LRO quota "too low for the plan".
TOO_LONG_MINUTES = 24 * 60


def lro_limit(metrics: Mapping[str, Any], region: str) -> int | None:
    """The per-minute LRO quota in ``region`` from Service Usage's consumerQuotaMetrics: the
    bucket for that region, else the one without dimensions; None when not listed."""
    for metric in metrics.get("metrics") or []:
        if not isinstance(metric, Mapping) or metric.get("metric") != LRO_METRIC:
            continue
        for limit in metric.get("consumerQuotaLimits") or []:
            if "/min" not in str(limit.get("unit", "")):
                continue
            general = None
            for bucket in limit.get("quotaBuckets") or []:
                dims = bucket.get("dimensions") or {}
                value = _int(bucket.get("effectiveLimit"))
                if dims.get("region") == region:
                    return value
                if not dims:
                    general = value
            if general is not None:
                return general
    return None


def quota_check(limit: int | None, region: str, shards: int | None, why: str = "") -> Check:
    """Whether the LRO quota lets the plan's starts happen in a sane time (-1: unlimited)."""
    name = "LRO quota"
    fix = (
        f"request more dicom_store_lro_ops in {region} at {QUOTAS_PAGE}, or raise"
        " import.max_objects_per_shard (fewer, larger shards) and plan again"
    )
    if limit is None:
        return Check(
            name,
            None,
            f"dicom_store_lro_ops in {region} unknown{f' ({why})' if why else ''}; the run adapts"
            f" to 429s; see {QUOTAS_PAGE}",
        )
    if limit < 0:
        return Check(name, True, f"dicom_store_lro_ops in {region}: unlimited")
    if limit == 0:
        return Check(name, False, f"dicom_store_lro_ops in {region} is 0: no import can start", fix)
    if shards is None:
        return Check(name, True, f"dicom_store_lro_ops in {region}: {limit:,} starts/min")
    minutes = shards / limit
    detail = (
        f"dicom_store_lro_ops in {region}: {limit:,} starts/min; {shards:,} shard(s) to start"
        f" need at least {_duration(minutes)} of starts"
    )
    if minutes > TOO_LONG_MINUTES:
        return Check(name, False, detail + " (more than a day)", fix)
    return Check(name, True, detail)


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _duration(minutes: float) -> str:
    if minutes < 1:
        return f"{minutes * 60:.0f}s"
    if minutes < 120:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.1f} h"
