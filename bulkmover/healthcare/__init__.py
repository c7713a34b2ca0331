"""Cloud Healthcare API client: REST + auth + retry, typed operations, Logging error entries.

The engine talks to the Healthcare API only through these names.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bulkmover.healthcare.auth import (
        AnonymousCredentials,
        Credentials,
        GoogleCredentials,
        anonymous,
        application_default,
        load_credentials,
        service_account_file,
    )
    from bulkmover.healthcare.client import (
        DEFAULT_ENDPOINT,
        DEFAULT_LOGGING_ENDPOINT,
        HealthcareClient,
    )
    from bulkmover.healthcare.failures import OutcomeUnknownError
    from bulkmover.healthcare.logging import (
        LogEntriesPage,
        LogEntry,
        iter_log_entries,
        operation_errors,
        operation_errors_filter,
    )
    from bulkmover.healthcare.operations import (
        EXPORT_METHOD,
        IMPORT_METHOD,
        ErrorClass,
        Operation,
        OperationMetadata,
        OperationRef,
        OperationsPage,
        PollSchedule,
        ProgressCounter,
        RpcCode,
        RpcStatus,
        classify_status,
        operations_started_since,
        wait_for_operation,
    )
    from bulkmover.healthcare.resources import DatasetInfo, DatasetPath, DicomStoreInfo, StorePath
    from bulkmover.healthcare.stats import ClientStats, Family, FamilyStats, RequestEvent
    from bulkmover.retry import RetryPolicy

# Imported on first use: `bulkmover status` and config loading must not pay for aiohttp and
# google-auth (half a second) when they only need a name or a path.
_LAZY = {
    "AnonymousCredentials": "bulkmover.healthcare.auth",
    "ClientStats": "bulkmover.healthcare.stats",
    "Credentials": "bulkmover.healthcare.auth",
    "DEFAULT_ENDPOINT": "bulkmover.healthcare.client",
    "DEFAULT_LOGGING_ENDPOINT": "bulkmover.healthcare.client",
    "DatasetInfo": "bulkmover.healthcare.resources",
    "DatasetPath": "bulkmover.healthcare.resources",
    "DicomStoreInfo": "bulkmover.healthcare.resources",
    "EXPORT_METHOD": "bulkmover.healthcare.operations",
    "ErrorClass": "bulkmover.healthcare.operations",
    "Family": "bulkmover.healthcare.stats",
    "FamilyStats": "bulkmover.healthcare.stats",
    "GoogleCredentials": "bulkmover.healthcare.auth",
    "HealthcareClient": "bulkmover.healthcare.client",
    "IMPORT_METHOD": "bulkmover.healthcare.operations",
    "LogEntriesPage": "bulkmover.healthcare.logging",
    "LogEntry": "bulkmover.healthcare.logging",
    "Operation": "bulkmover.healthcare.operations",
    "OperationMetadata": "bulkmover.healthcare.operations",
    "OperationRef": "bulkmover.healthcare.operations",
    "OperationsPage": "bulkmover.healthcare.operations",
    "OutcomeUnknownError": "bulkmover.healthcare.failures",
    "PollSchedule": "bulkmover.healthcare.operations",
    "ProgressCounter": "bulkmover.healthcare.operations",
    "RequestEvent": "bulkmover.healthcare.stats",
    "RetryPolicy": "bulkmover.retry",
    "RpcCode": "bulkmover.healthcare.operations",
    "RpcStatus": "bulkmover.healthcare.operations",
    "StorePath": "bulkmover.healthcare.resources",
    "anonymous": "bulkmover.healthcare.auth",
    "application_default": "bulkmover.healthcare.auth",
    "classify_status": "bulkmover.healthcare.operations",
    "iter_log_entries": "bulkmover.healthcare.logging",
    "load_credentials": "bulkmover.healthcare.auth",
    "operation_errors": "bulkmover.healthcare.logging",
    "operation_errors_filter": "bulkmover.healthcare.logging",
    "operations_started_since": "bulkmover.healthcare.operations",
    "service_account_file": "bulkmover.healthcare.auth",
    "wait_for_operation": "bulkmover.healthcare.operations",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_LOGGING_ENDPOINT",
    "EXPORT_METHOD",
    "IMPORT_METHOD",
    "AnonymousCredentials",
    "ClientStats",
    "Credentials",
    "DatasetInfo",
    "DatasetPath",
    "DicomStoreInfo",
    "ErrorClass",
    "Family",
    "FamilyStats",
    "GoogleCredentials",
    "HealthcareClient",
    "LogEntriesPage",
    "LogEntry",
    "Operation",
    "OperationMetadata",
    "OperationRef",
    "OperationsPage",
    "OutcomeUnknownError",
    "PollSchedule",
    "ProgressCounter",
    "RequestEvent",
    "RetryPolicy",
    "RpcCode",
    "RpcStatus",
    "StorePath",
    "anonymous",
    "application_default",
    "classify_status",
    "iter_log_entries",
    "load_credentials",
    "operation_errors",
    "operation_errors_filter",
    "operations_started_since",
    "service_account_file",
    "wait_for_operation",
]
