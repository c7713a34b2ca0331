"""Everything a request handler needs, built once per server: the one object handlers share."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from bulkmover.emulator.healthcare.cpu import CpuPool
from bulkmover.emulator.healthcare.db import Database, StoreRow
from bulkmover.emulator.healthcare.gcsclient import GcsClient
from bulkmover.emulator.healthcare.limits import RequestQuota
from bulkmover.emulator.healthcare.names import DatasetName, StoreName
from bulkmover.emulator.healthcare.operations import OperationEngine
from bulkmover.emulator.healthcare.realism import HealthcareRealism
from bulkmover.emulator.healthcare.rpc import not_found


@dataclass(frozen=True)
class ServerConfig:
    """How the server was started (``__main__`` builds it from flags)."""

    data_dir: Path
    gcs_endpoint: str
    knobs: HealthcareRealism
    workers: int = 2


@dataclass
class Service:
    config: ServerConfig
    db: Database
    gcs: GcsClient
    cpu: CpuPool
    engine: OperationEngine
    quota: RequestQuota
    rng: random.Random

    @property
    def knobs(self) -> HealthcareRealism:
        return self.config.knobs

    def require_dataset(self, name: DatasetName) -> None:
        if self.db.dataset(name) is None:
            raise not_found(
                f"dataset {name.path} not found: create it with POST "
                f"projects/{name.project}/locations/{name.location}/datasets?datasetId={name.dataset}"
            )

    def require_store(self, name: StoreName) -> StoreRow:
        self.require_dataset(name.dataset_name)
        store = self.db.store(name)
        if store is None:
            raise not_found(
                f"DICOM store {name.path} not found: create it with POST "
                f"{name.dataset_name.path}/dicomStores?dicomStoreId={name.store}"
            )
        return store


SERVICE = web.AppKey("service", Service)


def service_of(request: web.Request) -> Service:
    return request.app[SERVICE]
