"""Realism knobs of the Healthcare API emulator: speed, quotas, logs, faults, auth.

Defaults are realistic in shape but fast: no pacing, generous quotas, no faults. Each field is a
flag (``--operation-speed``) and a profile key (``operation_speed``), see
:mod:`bulkmover.emulator.knobs`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class HealthcareRealism(BaseModel):
    """How the emulated Healthcare API paces, limits and breaks."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    operation_speed: float = Field(
        0.0,
        ge=0,
        description="instances per second processed by one import/export operation; 0 = unlimited",
    )
    store_throughput: float = Field(
        0.0,
        ge=0,
        description="instances per second per DICOM store, shared by all its running operations "
        "(so more concurrent operations stop paying); 0 = unlimited",
    )
    max_running_operations: int = Field(
        100,
        ge=1,
        description="import/export operations running at once per project; one more gets "
        "429 RESOURCE_EXHAUSTED",
    )
    requests_per_minute: int = Field(
        60000,
        ge=1,
        description="requests per minute per project and method family (lro_start, operations, "
        "dicom_ops, dicomweb, logging); beyond: 429 RESOURCE_EXHAUSTED with Retry-After",
    )
    log_errors_per_operation: int = Field(
        1000,
        ge=0,
        description="only the first N per-file errors of an operation reach the log; "
        "the failure counter still counts them all",
    )
    log_ingestion_delay: float = Field(
        0.0,
        ge=0,
        description="seconds before a written error entry shows in entries:list (Logging is "
        "eventually consistent: entries can arrive after the operation is done)",
    )
    log_ingestion_jitter: float = Field(
        0.0,
        ge=0,
        description="extra seconds, uniform in 0..N per entry (from the seeded dice), on top of "
        "log_ingestion_delay, so entries also arrive out of order",
    )
    log_labels: Literal["snake", "camel", "none"] = Field(
        "snake",
        description="how the error entries' resource labels are spelled, which Google does not "
        "document: dataset_id/dicom_store_id (snake), datasetId/dicomStoreId (camel), or "
        "absent (none)",
    )
    log_name: Literal["import_dicom", "import_dicom_data", "operations"] = Field(
        "import_dicom",
        description="the error entries' logName (undocumented): projects/P/logs/ then "
        "healthcare.googleapis.com/ URL-encoded, then this (for exports: export_dicom, "
        "export_dicom_data, operations)",
    )
    duplicates_count_as: Literal["success", "skip"] = Field(
        "success",
        description="whether an imported instance that already exists (and is skipped) counts "
        "in the success counter or in no counter",
    )
    fault_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="fraction of requests answered 500/503 before any effect, or whose connection "
        "is reset after the effect took place (the client cannot tell it happened)",
    )
    failed_operation_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="fraction of import/export operations that end with an INTERNAL or "
        "UNAVAILABLE error part way through (what they stored so far stays)",
    )
    latency: float = Field(0.0, ge=0, description="seconds added to every request")
    answer_latency: float = Field(
        0.0,
        ge=0,
        description="seconds added to every answer after its effect took place (an operation "
        "started by a client that dies or gives up meanwhile runs, unknown to it)",
    )
    operations_filter: Literal["supported", "ignored", "rejected"] = Field(
        "supported",
        description="how operations.list treats `filter` (the v1 reference documents only "
        "pageSize and pageToken): applies done=true/false, ignores it (every operation of the "
        "dataset comes back), or rejects it with 400",
    )
    partial_failure: Literal["response", "error"] = Field(
        "response",
        description="how an import with some failed files ends: with `response`, or with "
        "`error` (INVALID_ARGUMENT) beside its counters, as the discovery document's 'returns an "
        "error if any of the files to import are not DICOM files' may mean",
    )
    quota_errors: Literal["emulator", "error_info", "bare"] = Field(
        "emulator",
        description="the wording of 429 answers: this emulator's own sentences, Google's with "
        "google.rpc.ErrorInfo details (quota_metric, quota_limit), or a bare 'Resource has been "
        "exhausted' with no details, for the running-operations cap and rate quotas alike",
    )
    deny: str = Field(
        "",
        pattern=r"^((lro_start|operations|dicom_ops|dicomweb|logging)(,|$))*$",
        description="answer 403 PERMISSION_DENIED to these method families, comma separated "
        "(lro_start, operations, dicom_ops, dicomweb, logging): a role that lacks a permission",
    )
    deny_permissions: str = Field(
        "",
        pattern=r"^([a-z]+(\.[a-zA-Z]+)+(,|$))*$",
        description="IAM permissions the caller lacks, comma separated (such as "
        "healthcare.dicomStores.import,logging.logEntries.list): testIamPermissions leaves them "
        "out and the methods that need them answer 403 PERMISSION_DENIED",
    )
    project_number: int = Field(
        123456789012,
        ge=1,
        description="the project number of every project (Cloud Resource Manager projects.get on "
        "this port), so the service agent is service-N@gcp-sa-healthcare.iam.gserviceaccount.com",
    )
    agent_denied_buckets: str = Field(
        "",
        description="buckets the Healthcare service agent cannot read, comma separated: imports "
        "from them end PERMISSION_DENIED whatever the bucket's IAM policy says (the agent's reads "
        "also follow each bucket's policy on the Cloud Storage emulator)",
    )
    require_auth: bool = Field(
        False, description="answer 401 UNAUTHENTICATED without an 'Authorization: Bearer' header"
    )
    operation_time: float = Field(
        0.0,
        ge=0,
        description="minimum wall-clock seconds of every import/export operation (a fixed "
        "operation time for executor benchmarks)",
    )
    seed: int | None = Field(
        None, description="seed of the fault and failure dice and of operation ids; none = random"
    )
