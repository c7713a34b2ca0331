"""The preflight's calls, in order, each turned into checks by ``decisions``.

Endpoints: the Healthcare API is ``target.endpoint`` (else Google's); Cloud Resource Manager
(``projects.get`` for the project number that names the service agent, and
``projects.testIamPermissions`` for Logging's permission) is Google's for Google's Healthcare
endpoint and ``target.endpoint`` itself otherwise (the emulator serves both, as the Logging
endpoint already works); Cloud Storage is ``storage.endpoint``, else ``STORAGE_EMULATOR_HOST``,
else Google's.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from bulkmover.config import Config
from bulkmover.errors import BulkmoverError
from bulkmover.gcs.wildcard import Wildcard, parse_wildcard
from bulkmover.healthcare import calls
from bulkmover.healthcare.auth import Credentials, load_credentials
from bulkmover.healthcare.client import DEFAULT_ENDPOINT
from bulkmover.preflight import decisions
from bulkmover.preflight.checks import Check, Report
from bulkmover.preflight.decisions import Grant, Scope
from bulkmover.preflight.http import JsonHttp, Reply
from bulkmover.state.store import StateStore

CRM_ENDPOINT = "https://cloudresourcemanager.googleapis.com"
SERVICE_USAGE_ENDPOINT = "https://serviceusage.googleapis.com"
STORAGE_ENDPOINT = "https://storage.googleapis.com"
TOKENINFO = "https://oauth2.googleapis.com/tokeninfo"
CANARY_WAIT = 120.0
LIST_PAGE = 1000


@dataclass(frozen=True)
class Options:
    create_store: bool = False
    """``run --create-store``: a missing store (or dataset) is not a failure."""
    canary: bool = True
    """Confirm the service agent's access by a one-file import when the policy cannot say."""
    planned: bool = False
    """A plan exists: an empty source is the run's finding (files gone), not the preflight's."""
    raise_credential_errors: bool = False
    """``run``: a credential that cannot load is its own one-line error, as before."""


@dataclass
class _Facts:
    member: str = "user:YOUR_ACCOUNT"
    store_exists: bool = False
    dataset_exists: bool = False
    can_import: bool = False
    matched: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)


async def diagnose(config: Config, options: Options) -> Report:
    facts = _Facts()
    try:
        credentials = await load_credentials(config.credentials)
    except BulkmoverError as err:
        if options.raise_credential_errors:
            raise
        return Report((Check("identity", False, str(err), _login_fix(config)),))
    async with JsonHttp(credentials) as http:
        await _identity(http, config, credentials, facts)
        if await _store(http, config, options, facts):
            await _permissions(http, config, facts)
        await _bucket(http, config, options, facts)
        await _agent(http, config, options, facts)
        await _quotas(http, config, facts)
    return Report(tuple(facts.checks))


def _healthcare(config: Config) -> str:
    return (config.target.endpoint or DEFAULT_ENDPOINT).rstrip("/")


def _crm(config: Config) -> str:
    endpoint = _healthcare(config)
    return CRM_ENDPOINT if endpoint == DEFAULT_ENDPOINT else endpoint


def _storage(config: Config) -> str:
    endpoint = config.storage.endpoint or os.environ.get("STORAGE_EMULATOR_HOST") or ""
    if endpoint and not endpoint.startswith("http"):
        endpoint = "http://" + endpoint
    return (endpoint or STORAGE_ENDPOINT).rstrip("/")


def _login_fix(config: Config) -> str:
    if config.credentials.kind == "service_account":
        return (
            "point credentials.key_file at a valid JSON key"
            " (gcloud iam service-accounts keys create KEY.json --iam-account=SA_EMAIL)"
        )
    return "gcloud auth application-default login"


# -- identity -------------------------------------------------------------------------------------
async def _identity(
    http: JsonHttp, config: Config, credentials: Credentials, facts: _Facts
) -> None:
    if credentials.anonymous:
        facts.checks.append(
            Check("identity", True, "anonymous (credentials.kind: anonymous; the emulators)")
        )
        return
    email = _email_of(credentials)
    if email is None and _healthcare(config) == DEFAULT_ENDPOINT:
        headers = await credentials.headers()
        token = headers.get("Authorization", "").partition(" ")[2]
        reply = await http.call("GET", TOKENINFO, params={"access_token": token})
        email = reply.json().get("email") if reply.ok else None
    facts.member = decisions.member_of(email)
    quota = credentials.quota_project
    where = f"quota project {quota}" if quota else "no quota project (billed to each resource's)"
    who = email or "an account whose email the token does not show"
    kind: str = config.credentials.kind
    if config.credentials.impersonate:
        kind += f", impersonating {config.credentials.impersonate}"
    facts.checks.append(Check("identity", True, f"{who} ({kind}); {where}"))


def _email_of(credentials: Credentials) -> str | None:
    google = getattr(credentials, "google", None)
    for attr in ("service_account_email", "signer_email", "_target_principal"):
        value = getattr(google, attr, None)
        if isinstance(value, str) and "@" in value:
            return value
    return None


# -- the store ------------------------------------------------------------------------------------
async def _store(http: JsonHttp, config: Config, options: Options, facts: _Facts) -> bool:
    """The store check; True when the API answered (so permissions can be tested)."""
    target = config.target.store_path
    base = _healthcare(config)
    reply = await http.call("GET", f"{base}/{config.target.api_version}/{target.name}")
    name = "store reachable"
    if reply.ok:
        facts.store_exists = facts.dataset_exists = True
        facts.checks.append(Check(name, True, f"{target.name} at {base}"))
        return True
    if reply.status == 404:
        dataset = await http.call(
            "GET", f"{base}/{config.target.api_version}/{target.dataset.name}"
        )
        facts.dataset_exists = dataset.ok
        create = (
            f"bulkmover run CONFIG --create-store (or gcloud healthcare dicom-stores create"
            f" {target.store} --dataset={target.dataset_id} --location={target.location}"
            f" --project={target.project})"
        )
        if options.create_store:
            facts.checks.append(
                Check(name, True, f"{target.name} is missing; --create-store creates it")
            )
        elif options.planned or options.raise_credential_errors:
            # run without --create-store: its own check names the store after planning.
            facts.checks.append(
                Check(name, None, f"{target.name} not found (the run says how to create it)")
            )
        else:
            facts.checks.append(Check(name, False, f"{target.name} not found at {base}", create))
        return dataset.ok
    if reply.status in (401, 403):
        fix = (
            "gcloud auth application-default login"
            if reply.status == 401
            else decisions.grant_command(
                decisions.Need(calls.GET_DICOM_STORE, Scope.STORE, "check the store"),
                target,
                facts.member,
            )
        )
        facts.checks.append(Check(name, False, f"{target.name}: {reply.say()}", fix))
        return False
    facts.checks.append(
        Check(
            name,
            False,
            f"{base} answered {reply.say()}",
            "check target.endpoint and the network (a proxy, a firewall; for the emulators:"
            " bulkmover emulator)",
        )
    )
    return False


async def _permissions(http: JsonHttp, config: Config, facts: _Facts) -> None:
    target = config.target.store_path
    base, version = _healthcare(config), config.target.api_version
    needs = decisions.needed_permissions(resolve_failures=config.run.resolve_failures)

    async def test(url: str, scope: Scope) -> list[str] | None:
        asked = [n.permission for n in needs if n.scope is scope]
        reply = await http.call("POST", f"{url}:testIamPermissions", body={"permissions": asked})
        if not reply.ok:
            facts.checks.append(
                Check(f"permissions on the {scope}", None, f"testIamPermissions: {reply.say()}")
            )
            return None
        return [p for p in reply.json().get("permissions", []) if isinstance(p, str)]

    granted: dict[Scope, list[str] | None] = {Scope.STORE: None, Scope.DATASET: None}
    if facts.store_exists:
        granted[Scope.STORE] = await test(f"{base}/{version}/{target.name}", Scope.STORE)
    else:
        facts.checks.append(Check("permissions on the store", None, "the store does not exist yet"))
    if facts.dataset_exists:
        granted[Scope.DATASET] = await test(
            f"{base}/{version}/{target.dataset.name}", Scope.DATASET
        )
    granted[Scope.PROJECT] = await test(
        f"{_crm(config)}/v1/projects/{target.project}", Scope.PROJECT
    )
    facts.checks += decisions.permission_checks(needs, granted, target, facts.member)
    facts.can_import = "healthcare.dicomStores.import" in (granted[Scope.STORE] or [])


# -- the bucket -----------------------------------------------------------------------------------
async def _bucket(http: JsonHttp, config: Config, options: Options, facts: _Facts) -> None:
    source = parse_wildcard(config.import_.source)
    bucket, base = source.bucket, _storage(config)
    url = f"{base}/storage/v1/b/{quote(bucket, safe='')}/o"
    reply = await http.call(
        "GET",
        url,
        params={
            "prefix": source.literal_prefix,
            "maxResults": str(LIST_PAGE),
            "fields": "items(name),nextPageToken",
        },
    )
    name = "bucket readable"
    grant = decisions.bucket_grant_command(bucket, facts.member)
    if reply.status == 404:
        facts.checks.append(
            Check(name, False, f"gs://{bucket} does not exist at {base}", "fix import.source")
        )
        return
    if not reply.ok:
        fix = grant if reply.status == 403 else "check storage.endpoint and the network"
        facts.checks.append(Check(name, False, f"listing gs://{bucket}: {reply.say()}", fix))
        return
    lacking = await _bucket_permissions(http, base, bucket)
    if lacking:
        facts.checks.append(
            Check(name, False, f"gs://{bucket} lists, but {', '.join(lacking)} is denied", grant)
        )
    else:
        facts.checks.append(Check(name, True, f"gs://{bucket} lists and reads at {base}"))
    items = reply.json().get("items", [])
    names = [i["name"] for i in items if isinstance(i, dict) and isinstance(i.get("name"), str)]
    facts.matched = [n for n in names if source.matches(n)]
    facts.checks.append(_source_check(source, facts.matched, names, reply, options))


async def _bucket_permissions(http: JsonHttp, base: str, bucket: str) -> list[str]:
    """Reading permissions the caller lacks (header reads need objects.get); [] when the
    server has no testIamPermissions (the listing already proved the bucket readable)."""
    asked = ["storage.objects.list", "storage.objects.get"]
    reply = await http.call(
        "GET",
        f"{base}/storage/v1/b/{quote(bucket, safe='')}/iam/testPermissions",
        params=[("permissions", p) for p in asked],
    )
    if not reply.ok:
        return []
    held = reply.json().get("permissions", []) or []
    return [p for p in asked if p not in held]


def _source_check(
    source: Wildcard, matched: list[str], names: list[str], reply: Reply, options: Options
) -> Check:
    name = "source non-empty"
    more = bool(reply.json().get("nextPageToken"))
    if matched:
        count = f"{len(matched):,}+" if more or len(matched) >= LIST_PAGE else f"{len(matched):,}"
        return Check(name, True, f"{count} object(s) match {source} (first page)")
    if names:
        return Check(
            name,
            True if more else False,
            f"{len(names):,} object(s) under gs://{source.bucket}/{source.literal_prefix} but"
            f" none of the first page matches {source}",
            None if more else "fix import.source (try: gcloud storage ls 'SOURCE')",
        )
    if options.planned:
        return Check(name, None, f"nothing matches {source} now (the run reports the files gone)")
    return Check(
        name,
        False,
        f"no object matches {source}",
        f"fix import.source (gcloud storage ls gs://{source.bucket}/{source.literal_prefix})",
    )


# -- quotas -------------------------------------------------------------------------------------
async def _quotas(http: JsonHttp, config: Config, facts: _Facts) -> None:
    """The LRO quota (Service Usage, ``serviceusage.quotas.get``) against the plan's shards."""
    endpoint = _healthcare(config)
    base = SERVICE_USAGE_ENDPOINT if endpoint == DEFAULT_ENDPOINT else endpoint
    project = quote(config.target.project, safe="")
    reply = await http.call(
        "GET", f"{base}/v1beta1/projects/{project}/services/healthcare.googleapis.com"
        "/consumerQuotaMetrics",
        params={"view": "BASIC"},
    )  # fmt: skip
    region = config.target.location
    limit = decisions.lro_limit(reply.json(), region) if reply.ok else None
    why = "" if reply.ok else f"consumerQuotaMetrics: {reply.say()}"
    facts.checks.append(decisions.quota_check(limit, region, _shards_to_start(config), why))


def _shards_to_start(config: Config) -> int | None:
    """Shards of the plan still to start, when a plan exists (read-only, no lock)."""
    if not config.state.exists():
        return None
    try:
        with StateStore.open_readonly(config.state) as store:
            if store.latest_plan() is None:
                return None
            totals = store.runs.totals()
            return totals.pending + totals.running
    except BulkmoverError:
        return None


# -- the service agent ----------------------------------------------------------------------------
async def _agent(http: JsonHttp, config: Config, options: Options, facts: _Facts) -> None:
    name = "service agent reads the bucket"
    project = config.target.project
    bucket = parse_wildcard(config.import_.source).bucket
    reply = await http.call("GET", f"{_crm(config)}/v1/projects/{quote(project, safe='')}")
    number = reply.json().get("projectNumber") if reply.ok else None
    if not number:
        facts.checks.append(
            Check(
                name,
                None,
                f"project number of {project} unknown (projects.get: {reply.say()}); grant"
                f" {decisions.READER_ROLE} on gs://{bucket} to"
                " service-PROJECT_NUMBER@gcp-sa-healthcare.iam.gserviceaccount.com",
            )
        )
        return
    email = decisions.agent_email(number)
    member = f"serviceAccount:{email}"
    fix = decisions.bucket_grant_command(bucket, member)
    policy = await http.call(
        "GET",
        f"{_storage(config)}/storage/v1/b/{quote(bucket, safe='')}/iam",
        params={"optionsRequestedPolicyVersion": "3"},
    )
    grant = decisions.policy_grants_read(policy.json(), member) if policy.ok else None
    if grant is Grant.YES:
        facts.checks.append(Check(name, True, f"{email} may read gs://{bucket} (bucket policy)"))
        return
    why = (
        f"the bucket policy grants {email} no read role"
        if grant is Grant.NO
        else f"only a conditional binding grants {email}"
        if grant is Grant.CONDITIONAL
        else f"cannot read gs://{bucket}'s IAM policy ({policy.say()})"
    )
    if options.canary and facts.can_import and facts.store_exists:
        obj = decisions.canary_object(facts.matched)
        if obj is not None:
            facts.checks.append(await _canary(http, config, f"gs://{bucket}/{obj}", fix, why))
            return
    if grant is Grant.NO:
        facts.checks.append(
            Check(
                name,
                False,
                f"{why} (a project-level grant would not show here: `bulkmover doctor CONFIG`"
                " confirms with a one-file import)",
                fix,
            )
        )
    else:
        facts.checks.append(Check(name, None, f"{why}; if imports fail PERMISSION_DENIED: {fix}"))


async def _canary(http: JsonHttp, config: Config, uri: str, fix: str, why: str) -> Check:
    """One import of one file of the source (into the target store: the run imports it anyway)."""
    base, version = _healthcare(config), config.target.api_version
    store = config.target.store_path.name
    started = await http.call(
        "POST",
        f"{base}/{version}/{store}:import",
        body={"gcsSource": {"uri": uri}},
        starts_operation=True,
    )
    name = "service agent reads the bucket"
    op_name = started.json().get("name") if started.ok else None
    if not isinstance(op_name, str):
        return Check(name, None, f"{why}; the canary import did not start ({started.say()})")
    deadline = time.monotonic() + CANARY_WAIT
    delay = 0.2
    while time.monotonic() < deadline:
        reply = await http.call("GET", f"{base}/{version}/{op_name}")
        op: dict[str, Any] = reply.json()
        if reply.ok and op.get("done"):
            verdict = decisions.canary_verdict(op, uri, fix)
            return Check(verdict.name, verdict.ok, f"{why}; {verdict.detail}", verdict.fix)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)
    return Check(
        name, None, f"{why}; the canary import {op_name} did not end in {CANARY_WAIT:.0f}s"
    )
