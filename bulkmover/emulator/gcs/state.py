"""What every handler needs, kept on the aiohttp application under one typed key."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from aiohttp import web

from bulkmover.emulator.gcs.realism import GcsRealism
from bulkmover.emulator.gcs.store import Store
from bulkmover.emulator.gcs.synthetic import SyntheticBlobs


@dataclass
class EmulatorState:
    store: Store
    realism: GcsRealism
    rng: random.Random
    synthetic: SyntheticBlobs
    upload_locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def upload_lock(self, upload_id: str) -> asyncio.Lock:
        """One lock per resumable session, so two chunks of one upload never interleave."""
        lock = self.upload_locks.get(upload_id)
        if lock is None:
            if len(self.upload_locks) > 10_000:
                for key in [k for k, v in self.upload_locks.items() if not v.locked()]:
                    del self.upload_locks[key]
            lock = self.upload_locks[upload_id] = asyncio.Lock()
        return lock


STATE = web.AppKey("gcs_state", EmulatorState)


def state_of(request: web.Request) -> EmulatorState:
    return request.app[STATE]
