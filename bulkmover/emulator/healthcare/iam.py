"""The caller's IAM permissions and the service agent's access to Cloud Storage, emulated.

Two knobs of :class:`~bulkmover.emulator.healthcare.realism.HealthcareRealism`:

- ``deny_permissions``: IAM permissions the caller lacks. ``testIamPermissions`` (store, dataset
  and Cloud Resource Manager's project) leaves them out, and each API method whose permission is
  denied answers 403 PERMISSION_DENIED in Google's words, as a role that lacks it would.
  (``deny`` denies whole method families; both apply.)
- The Healthcare service agent, ``service-PROJECT_NUMBER@gcp-sa-healthcare.iam.gserviceaccount
  .com`` (``project_number``, the same for every project): before an import lists its source,
  the emulator reads the bucket's IAM policy from the Cloud Storage endpoint, as Cloud Storage
  would check the agent's reads; a policy that grants it no read role, or a bucket named in
  ``agent_denied_buckets``, ends the import with PERMISSION_DENIED. A server without bucket IAM
  (fake-gcs-server) leaves reads allowed.

It also serves the one Cloud Resource Manager method doctors need, ``GET /v1/projects/{id}``
(for the project number), on the emulator's own port.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bulkmover.emulator.healthcare.realism import HealthcareRealism
from bulkmover.emulator.healthcare.requests import json_response, read_json
from bulkmover.emulator.healthcare.rpc import ApiFailure, Code, invalid
from bulkmover.emulator.healthcare.service import service_of

AGENT_DOMAIN = "gcp-sa-healthcare.iam.gserviceaccount.com"
READ_ROLES = frozenset(
    {
        "roles/storage.objectViewer",
        "roles/storage.objectUser",
        "roles/storage.objectAdmin",
        "roles/storage.admin",
        "roles/storage.legacyObjectReader",
        "roles/storage.legacyObjectOwner",
        "roles/viewer",
        "roles/editor",
        "roles/owner",
    }
)
DATASET = (
    "/{version:v1|v1beta1}/projects/{project:[^/]+}/locations/{location:[^/]+}"
    "/datasets/{dataset:[^/:]+}"
)
PROJECT = "/v1/projects/{project:[^/:]+}"


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_post(DATASET + ":testIamPermissions", test_dataset_permissions)
    router.add_get(PROJECT, get_project)
    router.add_post(PROJECT + ":testIamPermissions", test_project_permissions)


# -- the caller's permissions ---------------------------------------------------------------------
def denied(knobs: HealthcareRealism) -> frozenset[str]:
    return frozenset(p.strip() for p in knobs.deny_permissions.split(",") if p.strip())


def granted(knobs: HealthcareRealism, permissions: list[str]) -> list[str]:
    """The subset of ``permissions`` the caller holds, in the order asked."""
    lacking = denied(knobs)
    return [p for p in permissions if p not in lacking]


_VERBS = {
    ":import": "healthcare.dicomStores.import",
    ":export": "healthcare.dicomStores.export",
    ":getDICOMStoreMetrics": "healthcare.dicomStores.get",
    ":cancel": "healthcare.operations.cancel",
}


def required_permission(method: str, path: str) -> str | None:
    """The IAM permission the real API checks for this request; None when none is modelled
    (``testIamPermissions`` needs none)."""
    if path.endswith(":testIamPermissions"):
        return None
    if path == "/v2/entries:list":
        return "logging.logEntries.list"
    for verb, permission in _VERBS.items():
        if path.endswith(verb):
            return permission
    parts = path.split("/")
    if "dicomWeb" in parts:
        return {
            "GET": "healthcare.dicomStores.dicomWebRead",
            "POST": "healthcare.dicomStores.dicomWebWrite",
            "DELETE": "healthcare.dicomStores.dicomWebDelete",
        }.get(method)
    if "operations" in parts:
        return (
            "healthcare.operations.get"
            if parts[-1] != "operations"
            else ("healthcare.operations.list")
        )
    if "dicomStores" in parts:
        if parts[-1] == "dicomStores":
            return {
                "GET": "healthcare.dicomStores.list",
                "POST": "healthcare.dicomStores.create",
            }.get(method)
        return {"GET": "healthcare.dicomStores.get", "DELETE": "healthcare.dicomStores.delete"}.get(
            method
        )
    if "datasets" in parts:
        if parts[-1] == "datasets":
            return {"GET": "healthcare.datasets.list", "POST": "healthcare.datasets.create"}.get(
                method
            )
        return "healthcare.datasets.get" if method == "GET" else None
    return None


def check_permission(knobs: HealthcareRealism, request: web.Request) -> None:
    """403 PERMISSION_DENIED, in the API's words, when the request's permission is denied."""
    if not knobs.deny_permissions:
        return
    permission = required_permission(request.method, request.path)
    if permission is not None and permission in denied(knobs):
        raise permission_denied(permission, _resource(request.path))


def permission_denied(permission: str, resource: str) -> ApiFailure:
    return ApiFailure(
        Code.PERMISSION_DENIED,
        f"Permission '{permission}' denied on resource '{resource}' (or it may not exist).",
    )


def _resource(path: str) -> str:
    name = path.split("/", 2)[-1] if path.startswith("/v") else path
    return name.split(":", 1)[0].split("/dicomWeb", 1)[0]


async def _asked(request: web.Request) -> list[str]:
    body = await read_json(request, {"permissions": list})
    permissions = body.get("permissions", [])
    if not all(isinstance(p, str) for p in permissions):
        raise invalid("permissions must be a list of strings such as healthcare.dicomStores.import")
    if any("*" in p for p in permissions):
        raise invalid("permissions with wildcards (such as healthcare.*) are not allowed")
    return list(permissions)


def _answer(permissions: list[str]) -> web.Response:
    return json_response({"permissions": permissions} if permissions else {})


async def test_dataset_permissions(request: web.Request) -> web.Response:
    svc = service_of(request)
    return _answer(granted(svc.knobs, await _asked(request)))


async def test_project_permissions(request: web.Request) -> web.Response:
    """Cloud Resource Manager's ``projects.testIamPermissions`` (for logging.logEntries.list)."""
    svc = service_of(request)
    return _answer(granted(svc.knobs, await _asked(request)))


async def get_project(request: web.Request) -> web.Response:
    """Cloud Resource Manager v1 ``projects.get``: every project exists, with ``project_number``."""
    svc = service_of(request)
    project = request.match_info["project"]
    if "resourcemanager.projects.get" in denied(svc.knobs):
        raise ApiFailure(
            Code.PERMISSION_DENIED,
            f"The caller does not have permission (resourcemanager.projects.get on {project})",
        )
    return json_response(
        {
            "projectNumber": str(svc.knobs.project_number),
            "projectId": project,
            "lifecycleState": "ACTIVE",
            "name": project,
        }
    )


# -- the service agent ----------------------------------------------------------------------------
@dataclass(frozen=True)
class AgentAccess:
    """Who the service agent is, and the buckets the ``agent_denied_buckets`` knob closes."""

    member: str
    denied_buckets: frozenset[str]

    @property
    def email(self) -> str:
        return self.member.split(":", 1)[1]

    def reads(self, bucket: str, policy: dict[str, Any] | None) -> bool:
        """Whether the agent may read ``bucket`` under ``policy`` (None: no bucket IAM)."""
        if bucket in self.denied_buckets:
            return False
        return policy is None or policy_lets_read(policy, self.member)

    def refusal(self, bucket: str) -> str:
        return (
            f"{self.email} does not have storage.objects.list access to the Google Cloud Storage"
            f" bucket {bucket}. Permission 'storage.objects.list' denied on resource (or it may"
            " not exist)."
        )


def agent_access(knobs: HealthcareRealism) -> AgentAccess:
    return AgentAccess(
        member=f"serviceAccount:service-{knobs.project_number}@{AGENT_DOMAIN}",
        denied_buckets=frozenset(
            b.strip() for b in knobs.agent_denied_buckets.split(",") if b.strip()
        ),
    )


def policy_lets_read(policy: dict[str, Any], member: str) -> bool:
    """Whether an unconditional binding of a read role names ``member`` (or everyone)."""
    for binding in policy.get("bindings", []):
        if not isinstance(binding, dict) or binding.get("condition"):
            continue
        if binding.get("role") not in READ_ROLES:
            continue
        members = binding.get("members", [])
        if member in members or "allUsers" in members or "allAuthenticatedUsers" in members:
            return True
    return False
