"""The API methods the client calls, as data: quota family, IAM permission, role, 404 hint.

A method's fixed facts live here once; the client adds the resource and the one-line ``what``
that messages start with, so each client method stays a few lines.
"""

from __future__ import annotations

from dataclasses import dataclass

from bulkmover.healthcare.failures import DEFAULT_NOT_FOUND_HINT, Call
from bulkmover.healthcare.stats import Family


@dataclass(frozen=True)
class CallSpec:
    """What every call of one API method shares; ``on`` makes the ``Call`` for one resource."""

    family: Family
    method: str
    permission: str
    role: str
    starts_operation: bool = False
    not_found_hint: str = DEFAULT_NOT_FOUND_HINT

    def on(self, resource: str, what: str) -> Call:
        return Call(
            self.family,
            self.method,
            what,
            resource,
            self.permission,
            self.role,
            self.starts_operation,
            self.not_found_hint,
        )


_EXPIRED_HINT = "it may have expired (kept about 30 days) or belong to another dataset"

IMPORT = CallSpec(
    Family.LRO_START,
    "dicomStores.import",
    "healthcare.dicomStores.import",
    "roles/healthcare.dicomEditor",
    starts_operation=True,
    not_found_hint="check the dataset and store names, or create the store first",
)
EXPORT = CallSpec(
    Family.LRO_START,
    "dicomStores.export",
    "healthcare.dicomStores.export",
    "roles/healthcare.dicomEditor",
    starts_operation=True,
)
GET_OPERATION = CallSpec(
    Family.OPERATIONS,
    "operations.get",
    "healthcare.operations.get",
    "roles/healthcare.datasetViewer",
    not_found_hint=_EXPIRED_HINT,
)
LIST_OPERATIONS = CallSpec(
    Family.OPERATIONS,
    "operations.list",
    "healthcare.operations.list",
    "roles/healthcare.datasetViewer",
    not_found_hint="check the project, location and dataset names in the config",
)
CANCEL_OPERATION = CallSpec(
    Family.OPERATIONS,
    "operations.cancel",
    "healthcare.operations.cancel",
    "roles/healthcare.datasetAdmin",
    not_found_hint=_EXPIRED_HINT,
)
LIST_LOG_ENTRIES = CallSpec(
    Family.LOGGING,
    "entries.list",
    "logging.logEntries.list",
    "roles/logging.viewer",
    not_found_hint="check the project name",
)
GET_DATASET = CallSpec(
    Family.DICOM_OPS,
    "datasets.get",
    "healthcare.datasets.get",
    "roles/healthcare.datasetViewer",
    not_found_hint="check the project, location and dataset names, or create the dataset",
)
CREATE_DATASET = CallSpec(
    Family.DICOM_OPS,
    "datasets.create",
    "healthcare.datasets.create",
    "roles/healthcare.datasetAdmin",
    not_found_hint="check the project and location names",
)
GET_DICOM_STORE = CallSpec(
    Family.DICOM_OPS,
    "dicomStores.get",
    "healthcare.dicomStores.get",
    "roles/healthcare.dicomViewer",
    not_found_hint="check the dataset and store names, or create the store",
)
CREATE_DICOM_STORE = CallSpec(
    Family.DICOM_OPS,
    "dicomStores.create",
    "healthcare.dicomStores.create",
    "roles/healthcare.dicomStoreAdmin",
    not_found_hint="check the dataset name, or create the dataset first",
)
GET_DICOM_STORE_METRICS = CallSpec(
    Family.DICOM_OPS,
    "dicomStores.getDICOMStoreMetrics",
    "healthcare.dicomStores.get",
    "roles/healthcare.dicomViewer",
    not_found_hint="check the dataset and store names in the config",
)
# DICOMweb draws on its own quota (dicom_web_ops); ``Family`` has no such member yet, so its
# requests count under DICOM_OPS, the nearest family.
SEARCH_INSTANCES = CallSpec(
    Family.DICOM_OPS,
    "dicomStores.searchForInstances",
    "healthcare.dicomStores.dicomWebRead",
    "roles/healthcare.dicomViewer",
    not_found_hint="check the dataset and store names in the config",
)
STORE_INSTANCES = CallSpec(
    Family.DICOM_OPS,
    "dicomStores.storeInstances",
    "healthcare.dicomStores.dicomWebWrite",
    "roles/healthcare.dicomEditor",
    not_found_hint="check the dataset and store names, or create the store",
)
