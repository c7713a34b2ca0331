"""What an operation *is*, apart from how the executor runs it: the operation kind seam.

The executor schedules, gates, polls, records and requeues; it never knows whether a shard is an
import, an export or a failure-resolution import. A kind says three things: how to start the
operation for a shard, how to judge its final state, and which ``apiMethodName`` its operations
carry (to find the operation of a start whose answer was lost). A new kind is a new class here
(or beside it) and a command; nothing inside the executor changes.

    kind = ImportKind(store, blob_storage_class="STANDARD")
    ref = await kind.start(client, shard)          # POST; the name is committed at once
    judgement = kind.judge(shard, final_operation)  # done / with failures / transient / ...
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from bulkmover.healthcare.client import HealthcareClient
from bulkmover.healthcare.operations import (
    IMPORT_METHOD,
    ErrorClass,
    Operation,
    OperationRef,
)
from bulkmover.healthcare.resources import StorePath
from bulkmover.state.runs import ShardRun


class Outcome(StrEnum):
    """How an operation ended, as far as its shard is concerned."""

    DONE = "done"  # every unit went through
    DONE_WITH_FAILURES = "done-with-failures"  # it ran; some units failed (counted per file)
    TRANSIENT = "transient"  # the whole operation failed for a reason that may pass: requeue
    PERMANENT = "permanent"  # it will fail again unchanged: fail the shard
    SYSTEMIC = "systemic"  # every other shard would fail the same way: stop the run


@dataclass(frozen=True)
class Judgement:
    outcome: Outcome
    error: str | None = None  # the whole-operation error, or a note (drift) on a done shard
    drift: bool = False  # the units reported differ from the plan: the source changed
    error_code: int | None = None  # the whole-operation error's google.rpc code

    @property
    def ran(self) -> bool:
        return self.outcome in (Outcome.DONE, Outcome.DONE_WITH_FAILURES)


class OperationKind(Protocol):
    """One kind of long-running operation the executor can run for a shard."""

    @property
    def name(self) -> str:
        """Short name for logs and events ("import", "export")."""
        ...

    @property
    def api_method(self) -> str:
        """The ``metadata.apiMethodName`` its operations carry (the last dotted part counts)."""
        ...

    @property
    def store(self) -> StorePath:
        """The store its operations run on (operations are listed per dataset)."""
        ...

    async def start(self, client: HealthcareClient, shard: ShardRun) -> OperationRef:
        """Start the shard's operation (one POST). Raises ``ApiError`` or
        ``OutcomeUnknownError`` as the client does."""
        ...

    def judge(self, shard: ShardRun, op: Operation) -> Judgement:
        """The shard's outcome from its operation's final state (``op.done`` is true)."""
        ...


#: google.rpc codes of an operation error that every shard would meet: PERMISSION_DENIED,
#: UNAUTHENTICATED.
SYSTEMIC_CODES = frozenset({7, 16})
SYSTEMIC_FIX = (
    "the run stopped: grant the Healthcare service agent"
    " (service-PROJECT_NUMBER@gcp-sa-healthcare.iam.gserviceaccount.com) roles/storage.objectViewer"
    " on the source bucket (`bulkmover doctor CONFIG` checks it), then run again"
)


def ran_with_error(op: Operation) -> bool:
    """An import that ended with a (not transient) error but counted files: it ran, and some
    files failed. Whether a partly failed import ends with ``error`` or ``response`` is not
    documented ("returns an error if any of the files to import are not DICOM files"): its
    counters say which, and its files are settled one by one like any other's."""
    if op.error is None or op.error_class != ErrorClass.PERMANENT:
        return False
    return op.counter.failure > 0


def judge_error(op: Operation) -> Judgement:
    """A whole-operation error: transient codes (and a cancel) requeue, others fail the shard.

    Shared by the kinds whose operation errors mean the same (import and export alike).
    """
    error = str(op.error) if op.error is not None else "operation ended without a result"
    code = op.error.code if op.error is not None else None
    if op.error is None or op.error_class in (ErrorClass.TRANSIENT, ErrorClass.CANCELLED):
        return Judgement(Outcome.TRANSIENT, error, error_code=code)
    if code in SYSTEMIC_CODES:
        # The Healthcare service agent cannot read the bucket, or the credentials lost their
        # grant: every other shard would end the same way, each spending an operation.
        return Judgement(Outcome.SYSTEMIC, f"{error}; {SYSTEMIC_FIX}", error_code=code)
    return Judgement(Outcome.PERMANENT, error, error_code=code)


@dataclass(frozen=True)
class ImportKind:
    """``dicomStores.import`` of the shard's wildcard URI."""

    store: StorePath
    blob_storage_class: str | None = None
    name: str = "import"
    api_method: str = IMPORT_METHOD

    async def start(self, client: HealthcareClient, shard: ShardRun) -> OperationRef:
        return await client.import_dicom(self.store, shard.uri, self.blob_storage_class)

    def judge(self, shard: ShardRun, op: Operation) -> Judgement:
        success, failure = op.counter.success, op.counter.failure
        if not op.succeeded and not ran_with_error(op):
            return judge_error(op)
        # Each matched file counts once, in success or failure; any other sum means the bucket
        # changed under the shard since it was planned.
        reported = success + failure
        drift = reported != shard.expected
        note = (
            f"drift: expected {shard.expected} objects, operation reported {reported}"
            if drift
            else None
            if op.error is None
            else str(op.error)
        )
        outcome = Outcome.DONE_WITH_FAILURES if failure else Outcome.DONE
        return Judgement(outcome, note, drift)
