"""google-cloud-logging (the official Logging client) lists the emulator's operation errors.

A user of that client points it at the emulator's endpoint with anonymous credentials and
calls ``list_entries`` with a filter, as they would against ``logging.googleapis.com``: the
emulator's ``entries:list`` must answer what that client parses, and the filter must mean what
it means in Logging (timestamps as instants whatever their UTC offset; OR, NOT, parentheses).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
from google.auth.credentials import AnonymousCredentials
from google.cloud.logging import Client
from hc_testkit import PROJECT, Hc, corpus, counter, unique, upload

from bulkmover.emulator.processes import RunningServer

PLUS_TWO = timezone(timedelta(hours=2))


def _list(endpoint: str, log_filter: str) -> list[Any]:
    client = Client(
        project=PROJECT,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": endpoint},
        _use_grpc=False,
    )
    return list(
        client.list_entries(resource_names=[f"projects/{PROJECT}"], filter_=log_filter, page_size=2)
    )


async def test_list_entries_with_filters(
    hc: Hc,
    healthcare_emulator: RunningServer,
    gcs_emulator: RunningServer,
    http: aiohttp.ClientSession,
) -> None:
    files = corpus(studies=1, series=1, instances=2, bad=3, seed=63)
    bucket = unique("logs")
    await upload(http, gcs_emulator.url, bucket, [(f"in/{f.name}", f.data) for f in files])
    store = await hc.create_store()
    op = await hc.import_and_wait(store, f"gs://{bucket}/in/**")
    assert counter(op)["failure"] == 3
    op_id = op["name"].rsplit("/", 1)[1]
    raw = await hc.log_entries(op["name"])
    assert len(raw) == 3

    async def listed(log_filter: str) -> list[Any]:
        return await asyncio.to_thread(_list, healthcare_emulator.url, log_filter)

    entries = await listed(f'operation.id="{op_id}" AND severity>=ERROR')
    assert len(entries) == 3  # three pages of at most two: the client follows the tokens
    assert {e.operation["id"] for e in entries} == {op_id}
    assert all(e.payload["error"]["code"] for e in entries)
    assert {e.payload["source"] for e in entries} == {
        f"gs://{bucket}/in/{f.name}" for f in files if not f.valid
    }
    first = min(e.timestamp for e in entries)
    # The same instant, written in UTC+2: as a string it sorts after every entry's UTC stamp.
    before = (first - timedelta(minutes=1)).astimezone(PLUS_TWO).isoformat()
    after = (first + timedelta(hours=1)).astimezone(PLUS_TWO).isoformat()
    assert len(await listed(f'operation.id="{op_id}" AND timestamp>="{before}"')) == 3
    assert await listed(f'operation.id="{op_id}" AND timestamp>="{after}"') == []
    either = await listed(f'(operation.id="{op_id}" OR operation.id="nope") AND NOT severity<ERROR')
    assert len(either) == 3
    assert await listed(f'operation.id="{op_id}" AND -severity=ERROR') == []
    assert isinstance(first, datetime) and first.tzinfo is not None
