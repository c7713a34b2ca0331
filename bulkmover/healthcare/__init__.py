"""Cloud Healthcare API client: REST + auth + retry, typed operations, Logging error entries.

The engine talks to the Healthcare API only through these names.
"""

from bulkmover.healthcare.auth import (
    AnonymousCredentials,
    Credentials,
    GoogleCredentials,
    anonymous,
    application_default,
    load_credentials,
    service_account_file,
)
from bulkmover.healthcare.client import DEFAULT_ENDPOINT, DEFAULT_LOGGING_ENDPOINT, HealthcareClient
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
from bulkmover.healthcare.retry import RetryPolicy
from bulkmover.healthcare.stats import ClientStats, Family, FamilyStats, RequestEvent

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
