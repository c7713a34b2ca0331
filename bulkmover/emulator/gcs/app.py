"""The aiohttp application: routes of the GCS JSON API subset, middlewares, shared state."""

from __future__ import annotations

import random

from aiohttp import web

from bulkmover.emulator.gcs import api, iam, uploads
from bulkmover.emulator.gcs.bulk import bulk_load_handler
from bulkmover.emulator.gcs.middleware import ReadLimiter, error_middleware, realism_middleware
from bulkmover.emulator.gcs.realism import GcsRealism
from bulkmover.emulator.gcs.state import STATE, EmulatorState
from bulkmover.emulator.gcs.store import Store
from bulkmover.emulator.gcs.synthetic import SyntheticBlobs

OBJECT = "/storage/v1/b/{bucket}/o/{object:.+}"


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def build_app(store: Store, realism: GcsRealism, seed: int | None = None) -> web.Application:
    """The emulator application over ``store``; ``seed`` makes injected faults reproducible."""
    limiter = ReadLimiter(realism.read_rate_limit) if realism.read_rate_limit > 0 else None
    app = web.Application(
        middlewares=[error_middleware, realism_middleware(limiter)],
        client_max_size=64 << 20,
    )
    app[STATE] = EmulatorState(
        store=store,
        realism=realism,
        rng=random.Random(seed),
        synthetic=SyntheticBlobs(store.blobs),
    )
    r = app.router
    r.add_get("/storage/v1/b", api.list_buckets)
    r.add_post("/storage/v1/b", api.insert_bucket)
    r.add_get("/storage/v1/b/{bucket}", api.get_bucket)
    r.add_delete("/storage/v1/b/{bucket}", api.delete_bucket)
    r.add_get("/storage/v1/b/{bucket}/o", api.list_objects)
    r.add_post("/storage/v1/b/{bucket}/o", uploads.insert_object)
    r.add_get(OBJECT, api.get_object)
    r.add_delete(OBJECT, api.delete_object)
    r.add_patch(OBJECT, api.patch_object)
    r.add_post("/storage/v1/b/{bucket}/o/{rest:.+}", api.copy_or_rewrite)
    r.add_get("/download/storage/v1/b/{bucket}/o/{object:.+}", api.download_object)
    r.add_post("/upload/storage/v1/b/{bucket}/o", uploads.insert_object)
    r.add_put("/upload/storage/v1/b/{bucket}/o", uploads.resumable_chunk)
    r.add_delete("/upload/storage/v1/b/{bucket}/o", uploads.cancel_resumable)
    r.add_post("/_emulator/b/{bucket}/bulk", bulk_load_handler)
    r.add_get("/_emulator/health", health)
    iam.add_routes(app)

    async def close_store(_: web.Application) -> None:
        store.close()

    app.on_cleanup.append(close_store)
    return app
