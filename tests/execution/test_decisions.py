"""The executor's decisions, case by case, without servers or sleeping."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkmover.errors import ApiError
from bulkmover.execution.decisions import (
    LIST_POLL_THRESHOLD,
    StartAction,
    Throttle,
    after_operation,
    after_start_error,
    expected_seconds,
    get_poll_delay,
    left_the_list,
    poll_by_list,
    requeue_delay,
    throttle_target,
)
from bulkmover.execution.kinds import ImportKind, Judgement, Outcome
from bulkmover.healthcare.errorinfo import QuotaInfo, quota_info
from bulkmover.healthcare.failures import Call, OutcomeUnknownError
from bulkmover.healthcare.operations import Operation, PollSchedule
from bulkmover.healthcare.resources import StorePath
from bulkmover.healthcare.stats import Family, RequestEvent
from bulkmover.state.runs import ShardRun
from bulkmover.state.store import ShardState


def _event(
    status: int | None, message: str = "", family: Family = Family.LRO_START
) -> RequestEvent:
    return RequestEvent(family, "dicomStores.import", status, 1, False, 0.01, message)


# -- 429s ------------------------------------------------------------------------------------


def test_a_429_saying_too_many_operations_cuts_concurrency_not_rate() -> None:
    event = _event(429, "Too many operations are running on this store; try again later")
    assert throttle_target(event) == Throttle.CONCURRENCY


def test_a_429_saying_quota_exceeded_cuts_the_rate() -> None:
    event = _event(429, "Quota exceeded for quota metric 'dicom_store_lro_ops'")
    assert throttle_target(event) == Throttle.RATE


def test_a_429_mentioning_operations_and_quota_is_a_rate_quota() -> None:
    event = _event(429, "Quota exceeded for operations per minute")
    assert throttle_target(event) == Throttle.RATE


@pytest.mark.parametrize("message", ["", "Resource has been exhausted (e.g. check quota)."])
def test_a_refused_start_that_does_not_say_which_limit_cuts_both(message: str) -> None:
    """The running-operations cap's wording is not published: guessing either way could
    stall the run (rate cut while the cap is hit) or waste slots; both recover later."""
    assert throttle_target(_event(429, message)) == Throttle.BOTH


@pytest.mark.parametrize(
    ("metric", "limit", "message", "target"),
    [
        # ErrorInfo wins over a message that says the opposite.
        ("healthcare.googleapis.com/concurrent_lro_ops", "ConcurrentLroOpsPerProject",
         "Quota exceeded for requests per minute", Throttle.CONCURRENCY),
        ("healthcare.googleapis.com/lro_start_requests", "LroRequestsPerMinutePerProject",
         "too many operations running", Throttle.RATE),
        (None, "RunningOperationsPerStore", "", Throttle.CONCURRENCY),
        ("healthcare.googleapis.com/dicom_store_lro_ops", None, "", Throttle.RATE),
    ],
)  # fmt: skip
def test_a_429_is_classified_on_its_error_info_first(
    metric: str | None, limit: str | None, message: str, target: Throttle
) -> None:
    quota = QuotaInfo("RATE_LIMIT_EXCEEDED", metric, limit)
    event = RequestEvent(
        Family.LRO_START, "dicomStores.import", 429, 1, False, 0.01, message, quota
    )
    assert throttle_target(event) == target


def test_error_info_is_read_from_a_google_error_body() -> None:
    body = json.dumps({"error": {"code": 429, "message": "Quota exceeded", "details": [
        {"@type": "type.googleapis.com/google.rpc.Help", "links": []},
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED",
         "metadata": {"quota_metric": "m", "quota_limit": "l"}},
    ]}}).encode()  # fmt: skip
    assert quota_info(body) == QuotaInfo("RATE_LIMIT_EXCEEDED", "m", "l")
    assert quota_info(b"not json") is None
    assert quota_info(b'{"error": {"code": 429, "message": "x"}}') is None


def test_a_429_on_polling_cuts_that_familys_rate_even_if_it_names_operations() -> None:
    event = _event(429, "too many operations requests", family=Family.OPERATIONS)
    assert throttle_target(event) == Throttle.RATE


@pytest.mark.parametrize("status", [200, 400, 500, 503, None])
def test_an_answer_that_is_not_a_429_cuts_nothing(status: int | None) -> None:
    assert throttle_target(_event(status, "operations")) is None


# -- a start that raised -----------------------------------------------------------------------


def test_a_start_whose_outcome_is_unknown_is_resolved_before_anything_else() -> None:
    call = Call(Family.LRO_START, "dicomStores.import", "import", "r", "p", "role")
    error = OutcomeUnknownError("lost", call=call, sent_at=datetime.now(UTC), status=None)
    assert after_start_error(error) == StartAction.RESOLVE


def test_a_retriable_refused_start_is_requeued() -> None:
    assert after_start_error(ApiError("x", status=429, retriable=True)) == StartAction.REQUEUE


@pytest.mark.parametrize("status", [401, 403, 404, None])
def test_a_start_refused_for_credentials_permission_or_missing_store_stops_the_run(
    status: int | None,
) -> None:
    assert after_start_error(ApiError("x", status=status)) == StartAction.STOP_RUN


def test_a_start_refused_as_a_bad_request_fails_only_its_shard() -> None:
    assert after_start_error(ApiError("bad uri", status=400)) == StartAction.FAIL_SHARD


# -- an operation that ended -------------------------------------------------------------------


def test_a_done_operation_leaves_its_shard_done() -> None:
    assert after_operation(Judgement(Outcome.DONE), 1, 8).state == ShardState.DONE


def test_a_done_operation_with_failed_files_is_done_not_failed() -> None:
    verdict = after_operation(Judgement(Outcome.DONE_WITH_FAILURES), 1, 8)
    assert verdict.state == ShardState.DONE and not verdict.retry


def test_a_transient_operation_error_requeues_until_the_last_attempt() -> None:
    assert after_operation(Judgement(Outcome.TRANSIENT, "x"), 7, 8).retry
    last = after_operation(Judgement(Outcome.TRANSIENT, "x"), 8, 8)
    assert last.state == ShardState.FAILED and not last.retry


def test_a_permanent_operation_error_fails_the_shard_at_once() -> None:
    verdict = after_operation(Judgement(Outcome.PERMANENT, "x"), 1, 8)
    assert verdict.state == ShardState.FAILED and not verdict.retry and not verdict.stop_run


def test_a_systemic_operation_error_stops_the_run_and_keeps_the_shard_pending() -> None:
    verdict = after_operation(Judgement(Outcome.SYSTEMIC, "x"), 1, 8)
    assert verdict.state == ShardState.PENDING and verdict.stop_run


# -- the import kind's judgement ---------------------------------------------------------------

SHARD = ShardRun(1, "gs://b/d/**.dcm", 10, 1000, ShardState.RUNNING, "op", 1, 0.0, None, None, 0,
                 0, None, False)  # fmt: skip
KIND = ImportKind(StorePath("p", "l", "d", "s"))


def _op(**fields: object) -> Operation:
    return Operation.model_validate({"name": "projects/p/locations/l/datasets/d/operations/1",
                                     "done": True, **fields})  # fmt: skip


def test_an_import_that_took_every_file_is_done_without_drift() -> None:
    j = KIND.judge(SHARD, _op(metadata={"counter": {"success": "10"}}, response={}))
    assert j == Judgement(Outcome.DONE, None, False)


def test_an_import_with_failed_files_is_done_with_failures() -> None:
    j = KIND.judge(SHARD, _op(metadata={"counter": {"success": "7", "failure": "3"}}, response={}))
    assert j.outcome == Outcome.DONE_WITH_FAILURES and not j.drift


def test_an_import_that_reports_another_count_than_planned_is_flagged_as_drift() -> None:
    j = KIND.judge(SHARD, _op(metadata={"counter": {"success": "12"}}, response={}))
    assert j.drift and j.error == "drift: expected 10 objects, operation reported 12"


@pytest.mark.parametrize("code", [1, 4, 8, 10, 13, 14])
def test_an_import_ending_with_a_transient_or_cancelled_code_is_transient(code: int) -> None:
    j = KIND.judge(SHARD, _op(error={"code": code, "message": "m"}))
    assert j.outcome == Outcome.TRANSIENT and j.error and "m" in j.error


@pytest.mark.parametrize("code", [3, 5, 9, 2])
def test_an_import_ending_with_another_code_is_permanent(code: int) -> None:
    assert KIND.judge(SHARD, _op(error={"code": code})).outcome == Outcome.PERMANENT


@pytest.mark.parametrize("code", [7, 16])
def test_an_import_denied_its_source_stops_the_run_with_the_fix(code: int) -> None:
    """PERMISSION_DENIED (the service agent cannot read the bucket) would end every shard
    alike, each spending an operation: the run stops instead."""
    j = KIND.judge(SHARD, _op(error={"code": code, "message": "denied"}))
    assert j.outcome == Outcome.SYSTEMIC
    assert j.error and "gcp-sa-healthcare" in j.error and "doctor" in j.error


def test_an_import_ending_with_an_error_beside_failed_files_ran() -> None:
    """One reading of a partly failed import: ``error`` set, counters kept. Its files are
    settled one by one like those of an import that ended with ``response``."""
    op = _op(metadata={"counter": {"success": "7", "failure": "3"}},
             error={"code": 3, "message": "3 of 10 file(s) could not be imported"})  # fmt: skip
    j = KIND.judge(SHARD, op)
    assert j.outcome == Outcome.DONE_WITH_FAILURES and not j.drift
    assert j.error and "could not be imported" in j.error


def test_a_transient_error_with_counters_still_requeues() -> None:
    """INTERNAL part way through: importing the shard again finishes it (stored files are
    skipped), whatever the counters say so far."""
    op = _op(metadata={"counter": {"success": "4", "failure": "1"}}, error={"code": 13})
    assert KIND.judge(SHARD, op).outcome == Outcome.TRANSIENT


# -- backoff and polling -----------------------------------------------------------------------


def test_the_requeue_delay_grows_per_attempt_within_the_cap() -> None:
    rng = random.Random(4)
    firsts = [requeue_delay(1, 5.0, 600.0, rng) for _ in range(200)]
    fifths = [requeue_delay(5, 5.0, 600.0, rng) for _ in range(200)]
    capped = [requeue_delay(30, 5.0, 600.0, rng) for _ in range(200)]
    assert all(0 <= d <= 5.0 for d in firsts)
    assert all(0 <= d <= 80.0 for d in fifths) and max(fifths) > 5.0
    assert all(0 <= d <= 600.0 for d in capped) and max(capped) > 80.0


def test_many_operations_in_flight_are_polled_by_one_list_few_by_a_get_each() -> None:
    assert not poll_by_list(LIST_POLL_THRESHOLD)
    assert poll_by_list(LIST_POLL_THRESHOLD + 1)


def test_an_operation_missing_from_a_done_false_listing_has_ended_and_frees_its_slot() -> None:
    assert left_the_list(["a", "b", "c"], {"b", "x"}) == ["a", "c"]


def test_a_listing_that_shows_every_watched_operation_frees_no_slot() -> None:
    assert left_the_list(["a", "b"], {"a", "b", "z"}) == []


# -- polling each operation with get (operations.list unusable) ----------------------------------

SCHEDULE = PollSchedule(minimum=0.2, maximum=30.0, fraction=0.05)


def test_an_operations_expected_time_is_the_median_pace_times_its_files() -> None:
    assert expected_seconds([], 10) is None
    samples = [(8.0, 1), (80.0, 10), (100.0, 10), (2.0, 1)]  # 8, 8, 10, 2 s a file
    assert expected_seconds(samples, 5) == 40.0


def test_gets_wait_for_most_of_the_expected_time_then_poll_finely() -> None:
    assert get_poll_delay(0.0, 8.0, SCHEDULE) == pytest.approx(6.4)  # nothing before 80%
    assert get_poll_delay(6.4, 8.0, SCHEDULE) == pytest.approx(0.2)  # finely around the end
    assert get_poll_delay(100.0, 8.0, SCHEDULE) == SCHEDULE.delay(100.0)  # late: the schedule
    assert get_poll_delay(3.0, None, SCHEDULE) == SCHEDULE.delay(3.0)  # no pace known yet


@given(st.floats(0, 10_000), st.one_of(st.none(), st.floats(0.01, 5_000)))
def test_a_get_is_never_later_than_80_percent_of_expected_nor_sooner_than_the_minimum(
    age: float, expected: float | None
) -> None:
    delay = get_poll_delay(age, expected, SCHEDULE)
    assert delay >= SCHEDULE.minimum
    if expected is not None and age < 0.8 * expected:
        assert age + delay <= max(0.8 * expected, age + SCHEDULE.delay(age)) + 1e-9
