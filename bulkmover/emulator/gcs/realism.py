"""Realism knobs of the Cloud Storage emulator: latency, a read-rate limit, injected faults.

Defaults are all zero: a fast, faultless server for tests. Benchmarks that should feel like the
real service set ``page_latency`` to about 0.2 s. Each field is a flag (``--page-latency``) and a
profile key (``page_latency``), see :mod:`bulkmover.emulator.knobs`.
"""

from __future__ import annotations

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
