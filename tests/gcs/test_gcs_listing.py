"""The concurrent lister against real servers: our GCS emulator and fake-gcs-server.

Listing must return exactly what the source matches (the wildcard semantics, client side),
whatever the page size, the concurrency and the cuts made on the way; the client retries what
is retriable and turns the rest into one clear error.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from cloudkit import fill_bucket, start_gcs_emulator

from bulkmover.emulator.processes import RunningServer
from bulkmover.errors import ApiError
from bulkmover.gcs.client import StorageClient
from bulkmover.gcs.listing import ListedObject, ListingStats, list_matches
from bulkmover.gcs.wildcard import parse_wildcard
from bulkmover.retry import RetryPolicy

TRICKY = [
    "site/a/1.dcm",
    "site/a/2.dcm",
    "site/a/b/3.dcm",
    "site/a/b/c/d/e/f/g/h/deep.dcm",
    "site/with space/x y.dcm",
    "site/ünï/cödé.dcm",
    "site/日本/画像.dcm",
    "site/meta/+()[]$^.{}|\\.dcm",
    "site/pct%20/a&b=c#d;e,f.dcm",
    "site/q?mark.dcm",
    "site/star*name.dcm",
    "site/trailing/",
    "site//empty-component.dcm",
    "site/x.dcm.json",
    "site/x.json",
    "site/1.2.dcm",
    "site/1.2.3.dcm",
    "site/1.24.dcm",
    "site-sibling/y.dcm",
    "other/z.dcm",
    *(f"site/many/{i:03d}.dcm" for i in range(60)),
]
SOURCES = [
    "site/**.dcm",
    "site/**",
    "**.dcm",
    "site/*.dcm",
    "site/*/*.dcm",
    "site/*/",
    "site/a/?.dcm",
    "site/many/0?5.dcm",
    "*/many/*",
    "site/a/1.dcm",
    "site/a/nope.dcm",
]


@pytest.fixture
def tricky_bucket(gcs_server: RunningServer) -> str:
    bucket = f"listing-{uuid.uuid4().hex[:10]}"
    fill_bucket(gcs_server.url, bucket, {n: n.encode() * (1 + len(n) % 3) for n in TRICKY})
    return bucket


async def listed(
    url: str, uri: str, *, concurrency: int = 8, page_size: int = 5
) -> tuple[list[ListedObject], ListingStats]:
    objects: list[ListedObject] = []
    async with StorageClient(endpoint=url, concurrency=concurrency) as client:
        stats = await list_matches(
            parse_wildcard(uri),
            client,
            objects.extend,
            concurrency=concurrency,
            page_size=page_size,
        )
    return objects, stats


@pytest.mark.parametrize("concurrency", [1, 8])
async def test_listing_is_exact_on_tricky_names(
    gcs_server: RunningServer, tricky_bucket: str, concurrency: int
) -> None:
    for source in SOURCES:
        wildcard = parse_wildcard(f"gs://{tricky_bucket}/{source}")
        objects, stats = await listed(gcs_server.url, str(wildcard), concurrency=concurrency)
        names = [o.name for o in objects]
        assert len(names) == len(set(names)), f"{source}: listed twice"
        assert set(names) == {n for n in TRICKY if wildcard.matches(n)}, source
        for obj in objects:
            assert obj.size == len(obj.name.encode()) * (1 + len(obj.name) % 3)
            assert obj.generation > 0
        assert stats.matched == len(objects)
        assert stats.pieces_pending == 0


async def test_long_listings_are_cut_into_concurrent_pieces(gcs_emulator: RunningServer) -> None:
    bucket = f"cuts-{uuid.uuid4().hex[:10]}"
    names = [f"p/{i:04d}/{j}.dcm" for i in range(150) for j in range(4)]
    fill_bucket(gcs_emulator.url, bucket, dict.fromkeys(names, b"x"))
    objects, stats = await listed(gcs_emulator.url, f"gs://{bucket}/p/**.dcm", page_size=10)
    assert sorted(o.name for o in objects) == names
    assert stats.cuts > 0 and stats.pieces_done > 1
    # A single-level source lists each matching sub-directory as its own piece.
    objects, stats = await listed(gcs_emulator.url, f"gs://{bucket}/p/00*/1.dcm", page_size=10)
    assert sorted(o.name for o in objects) == [f"p/{i:04d}/1.dcm" for i in range(100)]
    assert stats.pieces_done >= 100


async def test_missing_bucket_is_a_clear_error(gcs_server: RunningServer) -> None:
    with pytest.raises(ApiError, match=r"bucket gs://no-such-bucket-x not found .*\(404\)") as info:
        await listed(gcs_server.url, "gs://no-such-bucket-x/a/**.dcm")
    assert info.value.status == 404


async def test_faults_are_retried(tmp_path_factory: pytest.TempPathFactory) -> None:
    data = tmp_path_factory.mktemp("faulty")
    bucket = "faulty-bucket"
    names = [f"f/{i:03d}.dcm" for i in range(80)]
    healthy = start_gcs_emulator(data)
    fill_bucket(healthy.url, bucket, dict.fromkeys(names, b"x"))
    healthy.stop()
    server = start_gcs_emulator(data, "--fault-rate", "0.3")  # same data, now 30% 503s
    try:
        objects: list[ListedObject] = []
        policy = RetryPolicy(max_attempts=30, base_delay=0.001, max_delay=0.01)
        async with StorageClient(endpoint=server.url, concurrency=4, policy=policy) as client:
            await list_matches(
                parse_wildcard(f"gs://{bucket}/f/**.dcm"), client, objects.extend, page_size=7
            )
            assert client.counters.retries > 0
        assert sorted(o.name for o in objects) == names
    finally:
        server.stop()


@pytest.fixture
async def refusing_server() -> AsyncIterator[str]:
    """A stub answering every listing with the status in the bucket name (``s403``...)."""
    calls: dict[str, int] = {}

    async def handler(request: web.Request) -> web.Response:
        bucket = request.match_info["bucket"]
        calls[bucket] = calls.get(bucket, 0) + 1
        status = int(bucket.removeprefix("s").split("-")[0])
        if bucket.endswith("-once") and calls[bucket] > 1:
            return web.json_response({"items": [{"name": "a.dcm", "size": "3", "generation": "7"}]})
        body = {"error": {"code": status, "message": f"stub says {status}", "errors": []}}
        return web.json_response(body, status=status, headers={"Retry-After": "0"})

    app = web.Application()
    app.router.add_get("/storage/v1/b/{bucket}/o", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (403, r"permission denied listing gs://s403-x \(403: stub says 403\); grant"),
        (401, r"not authenticated to list gs://s401-x \(401: stub says 401\)"),
        (400, r"Cloud Storage refused to list gs://s400-x \(400: stub says 400\)"),
    ],
)
async def test_refusals_are_not_retried(refusing_server: str, status: int, says: str) -> None:
    async with StorageClient(endpoint=refusing_server) as client:
        with pytest.raises(ApiError, match=says) as info:
            await client.list_page(f"s{status}-x", {})
        assert info.value.status == status
        assert client.counters.requests == 1


@pytest.mark.parametrize("status", [408, 429, 500, 503])
async def test_retriable_statuses_are_retried(refusing_server: str, status: int) -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01)
    async with StorageClient(endpoint=refusing_server, policy=policy) as client:
        page = await client.list_page(f"s{status}-once", {})
        assert page["items"][0]["name"] == "a.dcm"
        assert client.counters.retries == 1
        with pytest.raises(ApiError, match=r"failed 3 times .*check storage.endpoint") as info:
            await client.list_page(f"s{status}-always", {})
        assert info.value.retriable


async def test_unreachable_endpoint() -> None:
    policy = RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.01)
    async with StorageClient(endpoint="http://127.0.0.1:9", policy=policy) as client:
        with pytest.raises(ApiError, match="failed 2 times.*check storage.endpoint"):
            await client.list_page("b0b", {})


class RecordingPages:
    """A PageSource that forwards to a real client and keeps the parameters it sent."""

    def __init__(self, client: StorageClient) -> None:
        self.client = client
        self.sent: list[dict[str, str]] = []

    async def list_page(self, bucket: str, params: dict[str, str]) -> dict[str, object]:
        self.sent.append(dict(params))
        return await self.client.list_page(bucket, params)


async def test_match_glob_is_sent_only_when_most_objects_do_not_match(
    gcs_emulator: RunningServer,
) -> None:
    from bulkmover.emulator.gcs import BulkRow, bulk_load

    bucket = f"glob-{uuid.uuid4().hex[:10]}"
    noise = [f"g/{i:05d}.json" for i in range(4000)]
    wanted = [f"g/{i:05d}{d}.dcm" for i in range(0, 4000, 40) for d in ("", "/s/x")]
    await bulk_load(gcs_emulator.url, bucket, (BulkRow(n, size=1) for n in noise + wanted))
    async with StorageClient(endpoint=gcs_emulator.url) as client:
        pages = RecordingPages(client)
        objects: list[ListedObject] = []
        await list_matches(
            parse_wildcard(f"gs://{bucket}/g/**.dcm"), pages, objects.extend, page_size=200
        )
    assert sorted(o.name for o in objects) == sorted(wanted)
    # Sent as g/**/*.dcm (the same names, '**' alone in its segment), once checked.
    globbed = [p for p in pages.sent if p.get("matchGlob") == "g/**/*.dcm"]
    assert globbed and len(globbed) < len(pages.sent)
    assert "matchGlob" not in pages.sent[0]
    # Where everything matches, the glob would only cost the service work: never sent.
    async with StorageClient(endpoint=gcs_emulator.url) as client:
        pages = RecordingPages(client)
        await list_matches(
            parse_wildcard(f"gs://{bucket}/g/**.json"), pages, lambda _: None, page_size=500
        )
    assert not any("matchGlob" in p for p in pages.sent)
