"""Bucket IAM: ``getIamPolicy``, ``setIamPolicy`` and ``testIamPermissions`` of the JSON API.

Just enough IAM for ``bulkmover doctor`` and for the Healthcare emulator, which reads a bucket's
policy to decide whether its service agent may read the bucket (as the real service agent's
reads are allowed or denied by that policy). A bucket whose policy was never set answers the
default one: Google's legacy project bindings plus ``roles/storage.objectViewer`` for the
``bucket_readers`` knob's members (by default the Healthcare emulator's service agent, so an
import works out of the box). Policies set by ``PUT`` are kept for the server's life, not in the
data dir.

The caller's own permissions are the ``deny_permissions`` knob's complement: ``testPermissions``
leaves the denied ones out, and the IAM methods answer 403 when theirs is denied (the other
methods of the emulator do not consult it).
"""

from __future__ import annotations

import base64
from typing import Any

from aiohttp import web

from bulkmover.emulator.gcs.errors import GcsApiError, invalid
from bulkmover.emulator.gcs.realism import GcsRealism
from bulkmover.emulator.gcs.responses import json_response, read_json_object
from bulkmover.emulator.gcs.state import state_of

POLICIES = web.AppKey("gcs_bucket_policies", dict[str, dict[str, Any]])
EMULATOR_PROJECT = "emulator-project"
READER_ROLE = "roles/storage.objectViewer"


def add_routes(app: web.Application) -> None:
    """The three bucket IAM methods and their policy table (one line in the app does this)."""
    app[POLICIES] = {}
    router = app.router
    router.add_get("/storage/v1/b/{bucket}/iam", get_policy)
    router.add_put("/storage/v1/b/{bucket}/iam", set_policy)
    router.add_get("/storage/v1/b/{bucket}/iam/testPermissions", test_permissions)


def denied(realism: GcsRealism) -> set[str]:
    return {p.strip() for p in realism.deny_permissions.split(",") if p.strip()}


def default_policy(bucket: str, realism: GcsRealism) -> dict[str, Any]:
    """What a new bucket's policy looks like (uniform bucket-level access)."""
    bindings: list[dict[str, Any]] = [
        {
            "role": "roles/storage.legacyBucketOwner",
            "members": [f"projectEditor:{EMULATOR_PROJECT}", f"projectOwner:{EMULATOR_PROJECT}"],
        },
        {
            "role": "roles/storage.legacyBucketReader",
            "members": [f"projectViewer:{EMULATOR_PROJECT}"],
        },
    ]
    readers = [m.strip() for m in realism.bucket_readers.split(",") if m.strip()]
    if readers:
        bindings.append({"role": READER_ROLE, "members": readers})
    return _shaped(bucket, bindings, 1)


def _shaped(bucket: str, bindings: list[dict[str, Any]], generation: int) -> dict[str, Any]:
    return {
        "kind": "storage#policy",
        "resourceId": f"projects/_/buckets/{bucket}",
        "version": 1,
        "etag": base64.b64encode(f"policy-{generation}".encode()).decode(),
        "bindings": bindings,
    }


def _require(request: web.Request, permission: str) -> str:
    state = state_of(request)
    bucket = request.match_info["bucket"]
    state.store.require_bucket(bucket)
    if permission in denied(state.realism):
        raise GcsApiError(
            403,
            "forbidden",
            f"The caller does not have {permission} access to the Google Cloud Storage bucket."
            f" Permission '{permission}' denied on resource (or it may not exist).",
        )
    return bucket


def _policies(request: web.Request) -> dict[str, dict[str, Any]]:
    return request.app[POLICIES]


async def get_policy(request: web.Request) -> web.Response:
    bucket = _require(request, "storage.buckets.getIamPolicy")
    policy = _policies(request).get(bucket) or default_policy(bucket, state_of(request).realism)
    return json_response(request, policy)


async def set_policy(request: web.Request) -> web.Response:
    bucket = _require(request, "storage.buckets.setIamPolicy")
    body = await read_json_object(request)
    bindings = body.get("bindings", [])
    if not isinstance(bindings, list) or not all(_valid_binding(b) for b in bindings):
        raise invalid("bindings must be a list of {role: roles/..., members: [PRINCIPAL, ...]}")
    policies = _policies(request)
    generation = len(policies) + 2
    policies[bucket] = _shaped(bucket, bindings, generation)
    return json_response(request, policies[bucket])


def _valid_binding(binding: object) -> bool:
    if not isinstance(binding, dict):
        return False
    role, members = binding.get("role"), binding.get("members")
    return (
        isinstance(role, str)
        and role.startswith(("roles/", "projects/", "organizations/"))
        and isinstance(members, list)
        and all(isinstance(m, str) for m in members)
    )


async def test_permissions(request: web.Request) -> web.Response:
    state = state_of(request)
    state.store.require_bucket(request.match_info["bucket"])
    asked = request.query.getall("permissions", [])
    if not asked:
        raise invalid("Required parameter 'permissions' is missing.")
    granted = [p for p in asked if p not in denied(state.realism)]
    body: dict[str, Any] = {"kind": "storage#testIamPermissionsResponse"}
    if granted:
        body["permissions"] = granted
    return json_response(request, body)
