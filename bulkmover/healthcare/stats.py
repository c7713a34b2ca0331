"""Request accounting per quota family, read by the executor's adaptive limits and the board.

Quotas are per method family (starting operations draws on ``dicom_store_lro_ops``, polling on
the operations quota, ...), so every request the client sends is counted under its family, and
every response (or connection failure) is also handed to an optional callback as it happens.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from bulkmover.healthcare.errorinfo import QuotaInfo


class Family(StrEnum):
    """Quota families; the executor keeps one rate limiter per family."""

    LRO_START = "lro_start"  # dicomStores.import / export: the LRO quota
    OPERATIONS = "operations"  # operations.get / list / cancel
    DICOM_OPS = "dicom_ops"  # datasets and DICOM stores get / create (dicom_ops quota)
    LOGGING = "logging"  # Logging entries:list


@dataclass(frozen=True)
class RequestEvent:
    """One attempt's outcome. ``status`` is None when no HTTP response came back.

    ``method`` is the API method (``dicomStores.import``); ``retrying`` tells whether the client
    will try again; ``elapsed`` is the attempt's duration in seconds; ``message`` is the server's
    error message (or the connection error's type) when the attempt failed, e.g. to tell a 429
    "too many operations running" from a 429 "requests per minute exhausted".
    """

    family: Family
    method: str
    status: int | None
    attempt: int
    retrying: bool
    elapsed: float
    message: str | None = None
    quota: QuotaInfo | None = None  # a 429's google.rpc.ErrorInfo, when it carries one

    @property
    def throttled(self) -> bool:
        return self.status == 429


@dataclass
class FamilyStats:
    requests: int = 0  # attempts sent (retries included)
    throttled: int = 0  # 429 responses
    server_errors: int = 0  # 5xx responses
    connection_errors: int = 0  # no response: refused, reset, timed out
    retries: int = 0  # attempts that were followed by another
    outcome_unknown: int = 0  # operation starts whose result cannot be known
    statuses: Counter[int] = field(default_factory=Counter)

    def copy(self) -> FamilyStats:
        return FamilyStats(
            self.requests,
            self.throttled,
            self.server_errors,
            self.connection_errors,
            self.retries,
            self.outcome_unknown,
            Counter(self.statuses),
        )


@dataclass
class ClientStats:
    """Counters per family; ``snapshot()`` gives a copy safe to keep."""

    families: dict[Family, FamilyStats] = field(
        default_factory=lambda: {family: FamilyStats() for family in Family}
    )

    def __getitem__(self, family: Family) -> FamilyStats:
        return self.families[family]

    def record(self, event: RequestEvent) -> None:
        stats = self.families[event.family]
        stats.requests += 1
        if event.status is None:
            stats.connection_errors += 1
        else:
            stats.statuses[event.status] += 1
            if event.status == 429:
                stats.throttled += 1
            elif event.status >= 500:
                stats.server_errors += 1
        if event.retrying:
            stats.retries += 1

    @property
    def requests(self) -> int:
        return sum(s.requests for s in self.families.values())

    @property
    def throttled(self) -> int:
        return sum(s.throttled for s in self.families.values())

    def snapshot(self) -> ClientStats:
        return ClientStats({family: stats.copy() for family, stats in self.families.items()})
