"""Realism knobs of the Cloud Storage emulator: latency, a read-rate limit, injected faults.

Defaults are all zero: a fast, faultless server for tests. Benchmarks that should feel like the
real service set ``page_latency`` to about 0.2 s. Each field is a flag (``--page-latency``) and a
profile key (``page_latency``), see :mod:`bulkmover.emulator.knobs`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class GcsRealism(BaseModel):
    """How the emulated Cloud Storage paces, limits and breaks."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    request_latency: float = Field(0.0, ge=0, description="seconds added to every API request")
    page_latency: float = Field(
        0.0,
        ge=0,
        description="seconds added to every object-list page (real GCS takes about 0.15-0.3)",
    )
    read_rate_limit: float = Field(
        0.0,
        ge=0,
        description="reads (GET requests) per second; above it 429 rateLimitExceeded with "
        "Retry-After; 0 = unlimited",
    )
    fault_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="fraction of API requests answered 503 backendError before any effect",
    )
    match_glob_double_star: Literal["any", "segment", "star"] = Field(
        "any",
        description="how matchGlob reads '**' not alone in a path segment (a/**.dcm), which "
        "Google's documentation does not settle: any characters, '/' included (any); a single "
        "'*' unless alone in its segment, as gcloud-style wildcards read dir** (segment); "
        "a single '*' everywhere, as a glob without globstar (star)",
    )
    bucket_readers: str = Field(
        "serviceAccount:service-123456789012@gcp-sa-healthcare.iam.gserviceaccount.com",
        description="members granted roles/storage.objectViewer in the IAM policy of every "
        "bucket whose policy was never set, comma separated (default: the Healthcare "
        "emulator's service agent, for its default project_number; empty: nobody, as on a new "
        "real bucket)",
    )
    deny_permissions: str = Field(
        "",
        pattern=r"^(storage\.[a-zA-Z]+\.[a-zA-Z]+(,|$))*$",
        description="Cloud Storage permissions the caller lacks, comma separated: bucket "
        "testIamPermissions leaves them out, and getIamPolicy/setIamPolicy answer 403 when "
        "storage.buckets.getIamPolicy/setIamPolicy is among them (other methods ignore it)",
    )
