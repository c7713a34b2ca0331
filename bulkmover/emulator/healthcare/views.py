"""JSON shapes of the API's resources, as the discovery document and the spec describe them.

Proto3 JSON conventions hold: int64 as strings, false and zero fields left out (``done`` is absent
while an operation runs; a zero counter is absent).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from bulkmover.emulator.healthcare.db import OperationRow, StoreRow
from bulkmover.emulator.healthcare.names import DatasetName, StoreName

IMPORT = "ImportDicomData"
EXPORT = "ExportDicomData"
CREATE_DATASET = "CreateDataset"
LOG_TYPES = {
    IMPORT: "type.googleapis.com/google.cloud.healthcare.logging.ImportDicomLogEntry",
    EXPORT: "type.googleapis.com/google.cloud.healthcare.logging.ExportDicomLogEntry",
}
LOG_NAMES = {IMPORT: "import_dicom", EXPORT: "export_dicom"}
STORE_RESOURCE_TYPE = "healthcare_dicom_store"


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def dataset_json(name: DatasetName, time_zone: str) -> dict[str, Any]:
    return {"name": name.path, "timeZone": time_zone}


def store_json(store: StoreRow) -> dict[str, Any]:
    return {**store.config, "name": store.name.path}


def api_method(version: str, method: str) -> str:
    service = "dataset.DatasetService" if method == CREATE_DATASET else "dicom.DicomService"
    return f"google.cloud.healthcare.{version}.{service}.{method}"


def logs_url(project: str, method: str, op_id: str) -> str:
    query = (
        f'resource.type="{STORE_RESOURCE_TYPE}"\n'
        f'logName="projects/{project}/logs/healthcare.googleapis.com%2F{LOG_NAMES[method]}"\n'
        f'operation.id="{op_id}"'
    )
    return (
        f"https://console.cloud.google.com/logs/query/query={quote(query, safe='')}"
        f"?project={quote(project, safe='')}"
    )


def counter_json(success: int, failure: int, pending: int) -> dict[str, str]:
    counts = {"success": success, "failure": failure, "pending": pending}
    return {key: str(value) for key, value in counts.items() if value}


def operation_json(op: OperationRow) -> dict[str, Any]:
    """An Operation with OperationMetadata, as operations.get answers."""
    version = op.version
    meta: dict[str, Any] = {
        "@type": f"type.googleapis.com/google.cloud.healthcare.{version}.OperationMetadata",
        "apiMethodName": api_method(version, op.method),
        "createTime": op.create_time,
    }
    if op.end_time:
        meta["endTime"] = op.end_time
    if op.method in LOG_NAMES:
        meta["logsUrl"] = logs_url(op.dataset.project, op.method, op.op_id)
        meta["counter"] = counter_json(op.success, op.failure, op.pending)
    if op.cancel_requested:
        meta["cancelRequested"] = True
    body: dict[str, Any] = {"name": op.name, "metadata": meta}
    if op.done:
        body["done"] = True
        if op.error:
            body["error"] = op.error
        else:
            body["response"] = op.response or {}
    return body


def response_json(version: str, method: str) -> dict[str, Any]:
    kind = f"dicom.{method}Response"
    return {"@type": f"type.googleapis.com/google.cloud.healthcare.{version}.{kind}"}


def log_entry(
    *,
    store: StoreName,
    method: str,
    op_id: str,
    insert_id: str,
    target: str,
    code: int,
    message: str,
) -> dict[str, Any]:
    """A Cloud Logging entry for one file (import: ``source``) or instance (export)."""
    now = now_rfc3339()
    target_key = "source" if method == IMPORT else "resourceName"
    return {
        "logName": f"projects/{store.project}/logs/healthcare.googleapis.com%2F{LOG_NAMES[method]}",
        "resource": {
            "type": STORE_RESOURCE_TYPE,
            "labels": {
                "project_id": store.project,
                "location": store.location,
                "dataset_id": store.dataset,
                "dicom_store_id": store.store,
            },
        },
        "operation": {"id": op_id, "producer": f"healthcare.googleapis.com/{method}"},
        "severity": "ERROR",
        "timestamp": now,
        "receiveTimestamp": now,
        "insertId": insert_id,
        "jsonPayload": {
            "@type": LOG_TYPES[method],
            target_key: target,
            "error": {"code": code, "message": message},
        },
    }


LOG_LABELS_CAMEL = {
    "project_id": "projectId",
    "location": "location",
    "dataset_id": "datasetId",
    "dicom_store_id": "dicomStoreId",
}
LOG_NAME_VARIANTS = {
    "import_dicom": {IMPORT: "import_dicom", EXPORT: "export_dicom"},
    "import_dicom_data": {IMPORT: "import_dicom_data", EXPORT: "export_dicom_data"},
    "operations": {IMPORT: "operations", EXPORT: "operations"},
}


def render_log_entry(entry: dict[str, Any], *, labels: str, log_name: str) -> dict[str, Any]:
    """``entry`` (as ``log_entry`` wrote it) as ``entries:list`` shows it under the knobs for
    what Google does not document: the resource labels' spelling (``snake``: ``dataset_id``,
    ``camel``: ``datasetId``, ``none``: no labels) and the log's name (``log_name``)."""
    if labels == "snake" and log_name == "import_dicom":
        return entry
    out = dict(entry)
    resource = dict(out.get("resource") or {})
    if labels == "camel":
        given = resource.get("labels") or {}
        resource["labels"] = {LOG_LABELS_CAMEL.get(k, k): v for k, v in given.items()}
    elif labels == "none":
        resource.pop("labels", None)
    out["resource"] = resource
    method = IMPORT if out.get("jsonPayload", {}).get("@type") == LOG_TYPES[IMPORT] else EXPORT
    project = str(out.get("logName", "projects/?/")).split("/")[1]
    name = LOG_NAME_VARIANTS[log_name][method]
    out["logName"] = f"projects/{project}/logs/healthcare.googleapis.com%2F{name}"
    return out
