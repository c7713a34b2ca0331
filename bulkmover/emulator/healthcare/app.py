"""The aiohttp application: routes of the Healthcare API (v1 and v1beta1) and of Logging v2.

Every handler reaches the shared state through ``service_of(request)``; the state is built in
the application's lifecycle (database, worker pool, Cloud Storage session, operation engine).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from bulkmover.emulator.healthcare import dicomweb, iam, operations_api, quotas_api, resources
from bulkmover.emulator.healthcare.cpu import CpuPool
from bulkmover.emulator.healthcare.db import Database
from bulkmover.emulator.healthcare.gcsclient import GcsClient
from bulkmover.emulator.healthcare.limits import RequestQuota
from bulkmover.emulator.healthcare.logging_api import list_entries
from bulkmover.emulator.healthcare.middleware import api_middleware
from bulkmover.emulator.healthcare.operations import OperationEngine
from bulkmover.emulator.healthcare.service import SERVICE, ServerConfig, Service

FLUSH_INTERVAL = 0.05  # seconds between commits of operation progress

LOC = "/{version:v1|v1beta1}/projects/{project:[^/]+}/locations/{location:[^/]+}"
DS = LOC + "/datasets/{dataset:[^/:]+}"
STORE = DS + "/dicomStores/{store:[^/:]+}"
WEB = STORE + "/dicomWeb"
STUDY = WEB + "/studies/{study:[^/:]+}"
SERIES = STUDY + "/series/{series:[^/:]+}"
INSTANCE = SERIES + "/instances/{instance:[^/:]+}"
OPERATION = DS + "/operations/{operation:[^/:]+}"


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post(LOC + "/datasets", resources.create_dataset)
    r.add_get(LOC + "/datasets", resources.list_datasets)
    r.add_get(DS, resources.get_dataset)
    r.add_delete(DS, resources.delete_dataset)
    r.add_post(DS + "/dicomStores", resources.create_store)
    r.add_get(DS + "/dicomStores", resources.list_stores)
    r.add_get(STORE, resources.get_store)
    r.add_delete(STORE, resources.delete_store)
    r.add_patch(STORE, resources.patch_store)
    r.add_post(STORE + ":import", resources.import_dicom)
    r.add_post(STORE + ":export", resources.export_dicom)
    r.add_get(STORE + ":getDICOMStoreMetrics", resources.store_metrics)
    r.add_post(STORE + ":testIamPermissions", resources.test_iam_permissions)
    r.add_get(DS + "/operations", operations_api.list_operations)
    r.add_get(OPERATION, operations_api.get_operation)
    r.add_post(OPERATION + ":cancel", operations_api.cancel_operation)
    r.add_get(WEB + "/studies", dicomweb.search_studies)
    r.add_post(WEB + "/studies", dicomweb.store_instances)
    r.add_post(STUDY, dicomweb.store_instances)
    r.add_get(WEB + "/series", dicomweb.search_series)
    r.add_get(WEB + "/instances", dicomweb.search_instances)
    r.add_get(STUDY + "/series", dicomweb.search_series)
    r.add_get(STUDY + "/instances", dicomweb.search_instances)
    r.add_get(SERIES + "/instances", dicomweb.search_instances)
    r.add_get(INSTANCE, dicomweb.retrieve_instance)
    r.add_delete(INSTANCE, dicomweb.delete_instance)
    r.add_get(INSTANCE + "/metadata", dicomweb.retrieve_instance_metadata)
    r.add_get(STUDY, dicomweb.retrieve_many)
    r.add_get(SERIES, dicomweb.retrieve_many)
    r.add_get(STUDY + "/metadata", dicomweb.retrieve_many_metadata)
    r.add_get(SERIES + "/metadata", dicomweb.retrieve_many_metadata)
    r.add_get(INSTANCE + "/frames/{frames}", dicomweb.retrieve_frames)
    r.add_get(INSTANCE + "/bulkdata/{path:.+}", dicomweb.retrieve_bulkdata)
    r.add_post("/v2/entries:list", list_entries)
    r.add_get("/_emulator/operations", operations_api.admin_operations)
    iam.add_routes(r)
    quotas_api.add_routes(r)


async def _flusher(svc: Service) -> None:
    """Commit operation progress every few milliseconds (one transaction per interval)."""
    while True:
        await asyncio.sleep(FLUSH_INTERVAL)
        svc.engine.flush_progress()
        if svc.db.dirty:
            svc.db.commit()


def create_app(config: ServerConfig) -> web.Application:
    app = web.Application(middlewares=[api_middleware], client_max_size=1024**3)
    add_routes(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        db = Database(config.data_dir)
        shutil.rmtree(db.staging_dir, ignore_errors=True)
        db.staging_dir.mkdir(exist_ok=True)
        cpu = CpuPool(config.workers)
        cpu.warm()
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=300, sock_connect=10),
            connector=aiohttp.TCPConnector(limit=64),
        )
        rng = random.Random(config.knobs.seed)
        gcs = GcsClient(config.gcs_endpoint, session, agent=iam.agent_access(config.knobs))
        engine = OperationEngine(db, config.knobs, gcs, cpu, rng)
        svc = Service(
            config, db, gcs, cpu, engine, RequestQuota(config.knobs.requests_per_minute), rng
        )
        app[SERVICE] = svc
        engine.resume_all()
        flusher = asyncio.create_task(_flusher(svc), name="flusher")
        try:
            yield
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await engine.shutdown()
            await session.close()
            db.close()
            cpu.close()

    app.cleanup_ctx.append(lifecycle)
    return app
