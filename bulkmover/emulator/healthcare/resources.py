"""Handlers of datasets, DICOM stores and the store methods (import, export, metrics, IAM)."""

from __future__ import annotations

import json
import shutil
import sqlite3
from typing import Any

from aiohttp import web

from bulkmover.emulator.healthcare import iam
from bulkmover.emulator.healthcare.filters import parse_filter_file
from bulkmover.emulator.healthcare.formats import parse_mime_type
from bulkmover.emulator.healthcare.gcsclient import GcsError
from bulkmover.emulator.healthcare.names import (
    DatasetName,
    StoreName,
    check_resource_id,
    parse_gcs_uri,
)
from bulkmover.emulator.healthcare.requests import (
    dataset_name,
    decode_token,
    encode_token,
    json_response,
    page_size,
    read_json,
    store_name,
    version,
)
from bulkmover.emulator.healthcare.rpc import ApiFailure, Code, invalid
from bulkmover.emulator.healthcare.service import service_of
from bulkmover.emulator.healthcare.views import (
    CREATE_DATASET,
    EXPORT,
    IMPORT,
    dataset_json,
    now_rfc3339,
    operation_json,
    store_json,
)
from bulkmover.emulator.healthcare.wildcard import parse_import_uri

DATASET_FIELDS = {"name": str, "timeZone": str, "encryptionSpec": dict}
STORE_FIELDS = {
    "name": str,
    "labels": dict,
    "notificationConfig": dict,
    "notificationConfigs": list,
    "streamConfigs": list,
}
IMPORT_FIELDS = {
    "gcsSource": {"uri": str},
    "blobStorageSettings": {"blobStorageClass": str},
}
EXPORT_FIELDS = {
    "gcsDestination": {"uriPrefix": str, "mimeType": str},
    "filterConfig": {"resourcePathsGcsUri": str},
    "bigqueryDestination": dict,
}
IAM_FIELDS = {"permissions": list}
STORAGE_CLASSES = ("BLOB_STORAGE_CLASS_UNSPECIFIED", "STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE")


# -- datasets -------------------------------------------------------------------------------------
async def create_dataset(request: web.Request) -> web.Response:
    svc = service_of(request)
    m = request.match_info
    dataset_id = check_resource_id("datasetId", request.query.get("datasetId"))
    body = await read_json(request, DATASET_FIELDS)
    name = DatasetName(m["project"], m["location"], dataset_id)
    time_zone = body.get("timeZone") or "UTC"
    try:
        svc.db.add_dataset(name, time_zone, now_rfc3339())
    except sqlite3.IntegrityError:
        svc.db.commit()
        raise ApiFailure(Code.ALREADY_EXISTS, f"dataset {name.path} already exists") from None
    op_name = f"{name.path}/operations/{svc.engine.new_operation_id()}"
    ver = version(request)
    response = {
        "@type": f"type.googleapis.com/google.cloud.healthcare.{ver}.dataset.Dataset",
        **dataset_json(name, time_zone),
    }
    op = svc.db.add_operation(
        name=op_name,
        dataset=name,
        store_id=None,
        store_path="",
        method=CREATE_DATASET,
        version=ver,
        request={"datasetId": dataset_id, **body},
        now=now_rfc3339(),
        plan={},
    )
    svc.db.finish_operation(op.seq, now_rfc3339(), None, response)
    svc.db.commit()
    finished = svc.db.operation(op_name)
    assert finished is not None
    return json_response(operation_json(finished))


async def get_dataset(request: web.Request) -> web.Response:
    svc = service_of(request)
    name = dataset_name(request)
    svc.require_dataset(name)
    row = svc.db.dataset(name)
    assert row is not None
    return json_response(dataset_json(name, row["time_zone"]))


async def list_datasets(request: web.Request) -> web.Response:
    svc = service_of(request)
    m = request.match_info
    size = page_size(request, 100, 1000)
    after = decode_token(request.query.get("pageToken", ""))
    rows = svc.db.datasets(m["project"], m["location"], after, size + 1)
    body: dict[str, Any] = {
        "datasets": [
            dataset_json(DatasetName(r["project"], r["location"], r["dataset"]), r["time_zone"])
            for r in rows[:size]
        ]
    }
    if len(rows) > size:
        body["nextPageToken"] = encode_token(rows[size - 1]["dataset"])
    return json_response(body)


async def delete_dataset(request: web.Request) -> web.Response:
    """datasets.delete: the dataset and every DICOM store in it (their running operations end
    with an error, as when a store is deleted)."""
    svc = service_of(request)
    name = dataset_name(request)
    svc.require_dataset(name)
    stores = svc.db.stores(name, "", 1 << 30)
    for store in stores:
        svc.engine.abort_store(store.id, f"dataset {name.path} was deleted")
        svc.db.delete_store(store.id)
    svc.db.conn.execute(
        "DELETE FROM datasets WHERE project=? AND location=? AND dataset=?",
        (name.project, name.location, name.dataset),
    )
    svc.db.commit()
    for store in stores:
        svc.engine.forget_store_dirs(store.id)
        shutil.rmtree(svc.db.store_dir(store.id), ignore_errors=True)
    return json_response({})


# -- DICOM stores ---------------------------------------------------------------------------------
async def create_store(request: web.Request) -> web.Response:
    svc = service_of(request)
    dataset = dataset_name(request)
    store_id = check_resource_id("dicomStoreId", request.query.get("dicomStoreId"))
    body = await read_json(request, STORE_FIELDS)
    svc.require_dataset(dataset)
    name = StoreName(dataset.project, dataset.location, dataset.dataset, store_id)
    config = {k: v for k, v in body.items() if k != "name"}
    try:
        svc.db.add_store(name, config, now_rfc3339())
    except sqlite3.IntegrityError:
        svc.db.commit()
        raise ApiFailure(Code.ALREADY_EXISTS, f"DICOM store {name.path} already exists") from None
    svc.db.commit()
    store = svc.db.store(name)
    assert store is not None
    return json_response(store_json(store))


async def get_store(request: web.Request) -> web.Response:
    svc = service_of(request)
    return json_response(store_json(svc.require_store(store_name(request))))


async def list_stores(request: web.Request) -> web.Response:
    svc = service_of(request)
    dataset = dataset_name(request)
    svc.require_dataset(dataset)
    size = page_size(request, 100, 1000)
    after = decode_token(request.query.get("pageToken", ""))
    stores = svc.db.stores(dataset, after, size + 1)
    body: dict[str, Any] = {"dicomStores": [store_json(s) for s in stores[:size]]}
    if len(stores) > size:
        body["nextPageToken"] = encode_token(stores[size - 1].name.store)
    return json_response(body)


PATCHABLE_STORE_FIELDS = ("labels", "notificationConfig", "notificationConfigs", "streamConfigs")


async def patch_store(request: web.Request) -> web.Response:
    """dicomStores.patch: the fields ``updateMask`` names take the body's values (a field the
    body leaves out is cleared), as a FieldMask update does."""
    svc = service_of(request)
    body = await read_json(request, STORE_FIELDS)
    store = svc.require_store(store_name(request))
    raw_mask = request.query.get("updateMask", "")
    paths = [p.strip() for p in raw_mask.split(",") if p.strip()]
    if not paths:
        raise invalid(
            "updateMask is required: name the fields to change, e.g. updateMask=labels "
            f"(updatable: {', '.join(PATCHABLE_STORE_FIELDS)})"
        )
    config = dict(store.config)
    for path in paths:
        field, _, key = path.partition(".")
        if field not in PATCHABLE_STORE_FIELDS or (key and field != "labels"):
            raise invalid(
                f"invalid updateMask path {path!r}: updatable fields are "
                + ", ".join(PATCHABLE_STORE_FIELDS)
            )
        if key:  # labels.KEY: one label
            labels = dict(config.get("labels", {}))
            value = body.get("labels", {}).get(key)
            if value is None:
                labels.pop(key, None)
            else:
                labels[key] = value
            config["labels"] = labels
        elif body.get(field) in (None, {}, []):
            config.pop(field, None)
        else:
            config[field] = body[field]
    if not config.get("labels"):
        config.pop("labels", None)
    svc.db.conn.execute("UPDATE stores SET config=? WHERE id=?", (json.dumps(config), store.id))
    updated = svc.db.store_by_id(store.id)
    assert updated is not None
    return json_response(store_json(updated))


async def delete_store(request: web.Request) -> web.Response:
    svc = service_of(request)
    store = svc.require_store(store_name(request))
    svc.engine.abort_store(store.id, f"DICOM store {store.name.path} was deleted")
    svc.db.delete_store(store.id)
    svc.db.commit()
    svc.engine.forget_store_dirs(store.id)
    shutil.rmtree(svc.db.store_dir(store.id), ignore_errors=True)
    return json_response({})


async def store_metrics(request: web.Request) -> web.Response:
    svc = service_of(request)
    store = svc.require_store(store_name(request))
    row = svc.db.metrics(store.id)
    counts = {
        "studyCount": row["studies"],
        "seriesCount": row["series"],
        "instanceCount": row["instances"],
        "blobStorageSizeBytes": row["size"],
        "structuredStorageSizeBytes": row["structured"],
    }
    # proto3 JSON: int64 as strings, zero values left out (an empty store has only a name)
    body = {"name": store.name.path} | {k: str(v) for k, v in counts.items() if v}
    return json_response(body)


async def test_iam_permissions(request: web.Request) -> web.Response:
    """The permissions asked for, less the ``deny_permissions`` knob's (see ``iam``)."""
    svc = service_of(request)
    body = await read_json(request, IAM_FIELDS)
    svc.require_store(store_name(request))
    permissions = body.get("permissions", [])
    if not all(isinstance(p, str) for p in permissions):
        raise invalid("permissions must be a list of strings such as healthcare.dicomStores.import")
    if any("*" in p for p in permissions):
        raise invalid("permissions with wildcards (such as healthcare.*) are not allowed")
    permissions = iam.granted(svc.knobs, permissions)
    return json_response({"permissions": permissions} if permissions else {})


# -- import / export ------------------------------------------------------------------------------
async def import_dicom(request: web.Request) -> web.Response:
    svc = service_of(request)
    body = await read_json(request, IMPORT_FIELDS)
    store = svc.require_store(store_name(request))
    source = body.get("gcsSource")
    if not source:
        raise invalid('gcsSource is required: {"gcsSource": {"uri": "gs://BUCKET/PATH/**.dcm"}}')
    parse_import_uri(source.get("uri"))
    storage_class = body.get("blobStorageSettings", {}).get("blobStorageClass")
    if storage_class is not None and storage_class not in STORAGE_CLASSES:
        raise invalid(
            f"invalid blobStorageSettings.blobStorageClass {storage_class!r}: use one of "
            + ", ".join(STORAGE_CLASSES[1:])
        )
    op = svc.engine.start(store, version(request), IMPORT, body, {})
    return json_response(operation_json(op))


async def export_dicom(request: web.Request) -> web.Response:
    svc = service_of(request)
    body = await read_json(request, EXPORT_FIELDS)
    store = svc.require_store(store_name(request))
    if "bigqueryDestination" in body:
        raise invalid("bigqueryDestination is not supported by the emulator; use gcsDestination")
    destination = body.get("gcsDestination")
    if not destination:
        raise invalid(
            'gcsDestination is required: {"gcsDestination": {"uriPrefix": "gs://BUCKET/DIR"}}'
        )
    parse_gcs_uri(destination.get("uriPrefix"), "gcsDestination.uriPrefix", allow_empty_object=True)
    parse_mime_type(destination.get("mimeType"))
    plan: dict[str, Any] = {}
    filter_uri = body.get("filterConfig", {}).get("resourcePathsGcsUri")
    if filter_uri is not None:
        uri = parse_gcs_uri(filter_uri, "filterConfig.resourcePathsGcsUri")
        try:
            data = await svc.gcs.download(uri.bucket, uri.object)
        except GcsError as exc:
            if exc.code is Code.NOT_FOUND:
                raise invalid(f"filter file {uri} was not found in Cloud Storage") from None
            raise ApiFailure(exc.code, exc.message) from None
        plan["filter"] = [str(p) for p in parse_filter_file(data, str(uri))]
    op = svc.engine.start(store, version(request), EXPORT, body, plan)
    return json_response(operation_json(op))
