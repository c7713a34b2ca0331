"""The retry engine's decisions, case by case: no servers, no sleeping."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from bulkmover.retry import (
    CLOUD_STORAGE,
    CORPUS_UPLOADS,
    HEALTHCARE,
    Decision,
    Outcome,
    RetryPolicy,
    TransientErrors,
    Verdict,
    decide,
    full_jitter,
    parse_retry_after,
    send_with_retries,
)

POLICY = RetryPolicy(max_attempts=3, base_delay=1.0, max_delay=8.0, rng=random.Random(7))
LOST = Outcome(None, connected=True)  # connection made, then reset or timed out
REFUSED = Outcome(None, connected=False)  # no connection was ever made


def verdict(
    outcome: Outcome, attempt: int = 1, *, start: bool = False, api: TransientErrors = HEALTHCARE
) -> Verdict:
    return decide(outcome, attempt, POLICY, api, starts_operation=start).verdict


# -- what each API calls transient ---------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_healthcare_retries_quota_and_server_errors(status: int) -> None:
    assert verdict(Outcome(status)) is Verdict.RETRY


@pytest.mark.parametrize("status", [400, 401, 403, 404, 408, 409, 501])
def test_healthcare_does_not_retry_answers_about_the_request_itself(status: int) -> None:
    assert verdict(Outcome(status)) is Verdict.FINAL


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_cloud_storage_also_retries_408(status: int) -> None:
    assert verdict(Outcome(status), api=CLOUD_STORAGE) is Verdict.RETRY


def test_every_api_retries_a_connection_lost_after_it_was_made() -> None:
    for api in (HEALTHCARE, CLOUD_STORAGE, CORPUS_UPLOADS):
        assert verdict(LOST, api=api) is Verdict.RETRY


def test_a_refused_connection_is_retried_except_by_the_corpus_sink_which_reports_it_at_once() -> (
    None
):
    assert verdict(REFUSED, api=HEALTHCARE) is Verdict.RETRY
    assert verdict(REFUSED, api=CLOUD_STORAGE) is Verdict.RETRY
    assert verdict(REFUSED, api=CORPUS_UPLOADS) is Verdict.FINAL


def test_a_success_is_final_and_draws_no_delay() -> None:
    policy = RetryPolicy(rng=random.Random(1))
    before = policy.rng.getstate()
    assert decide(Outcome(204), 1, policy, HEALTHCARE) == Decision(Verdict.FINAL, "success")
    assert policy.rng.getstate() == before


def test_a_401_is_retried_only_when_the_sender_refreshed_its_credentials() -> None:
    assert verdict(Outcome(401)) is Verdict.FINAL
    assert verdict(Outcome(401, auth_retry=True)) is Verdict.RETRY
    assert verdict(Outcome(401, auth_retry=True), start=True) is Verdict.RETRY


def test_the_last_attempt_is_exhausted_not_retried() -> None:
    assert verdict(Outcome(503), attempt=2) is Verdict.RETRY
    assert verdict(Outcome(503), attempt=3) is Verdict.EXHAUSTED
    assert verdict(Outcome(404), attempt=3) is Verdict.FINAL


def test_a_decision_says_why() -> None:
    assert (
        "503 is transient for Healthcare/Logging"
        in decide(Outcome(503), 1, POLICY, HEALTHCARE).reason
    )
    assert "no attempts left" in decide(LOST, 3, POLICY, HEALTHCARE).reason


# -- calls that start an operation -------------------------------------------------------------


def test_a_503_on_a_start_is_resent_because_nothing_started() -> None:
    assert verdict(Outcome(503), start=True) is Verdict.RETRY


def test_a_429_on_a_start_is_resent_because_the_quota_refused_it() -> None:
    assert verdict(Outcome(429), start=True) is Verdict.RETRY


def test_a_start_that_never_connected_is_resent_because_nothing_was_sent() -> None:
    assert verdict(REFUSED, start=True) is Verdict.RETRY


@pytest.mark.parametrize("status", [500, 502, 504])
def test_another_5xx_on_a_start_is_outcome_unknown(status: int) -> None:
    assert verdict(Outcome(status), start=True) is Verdict.OUTCOME_UNKNOWN


def test_a_connection_lost_after_sending_a_start_is_outcome_unknown() -> None:
    assert verdict(LOST, start=True) is Verdict.OUTCOME_UNKNOWN


def test_outcome_unknown_wins_over_exhausted_on_the_last_attempt() -> None:
    assert verdict(Outcome(500), attempt=3, start=True) is Verdict.OUTCOME_UNKNOWN


def test_a_4xx_on_a_start_is_final_because_the_server_refused_it() -> None:
    assert verdict(Outcome(400), start=True) is Verdict.FINAL


def test_a_500_trusted_as_not_started_is_resent() -> None:
    trusting = RetryPolicy(not_started_statuses=frozenset({429, 500, 503}))
    assert decide(Outcome(500), 1, trusting, HEALTHCARE, starts_operation=True).retrying


# -- how long to wait ----------------------------------------------------------------------------


def test_full_jitter_stays_within_the_exponential_ceiling_and_the_cap() -> None:
    rng = random.Random(3)
    for retry, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 4.0), (60, 4.0)]:
        waits = [full_jitter(retry, 0.5, 4.0, rng) for _ in range(200)]
        assert all(0.0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling * 0.8  # it uses the whole range, not a fixed wait


def test_full_jitter_is_a_pure_function_of_the_rng_state() -> None:
    assert full_jitter(2, 1.0, 10.0, random.Random(5)) == full_jitter(
        2, 1.0, 10.0, random.Random(5)
    )


def test_a_retry_waits_the_policy_delay_for_that_retry() -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=8.0, rng=random.Random(9))
    expected = full_jitter(2, 1.0, 8.0, random.Random(9))
    assert decide(Outcome(503), 3, policy, HEALTHCARE).delay == expected


def test_retry_after_wins_over_the_backoff_with_a_little_jitter() -> None:
    policy = RetryPolicy(base_delay=0.5, rng=random.Random(1))
    delay = decide(Outcome(429, retry_after=7.0), 1, policy, HEALTHCARE).delay
    assert 7.0 <= delay <= 7.5


def test_a_bogus_retry_after_is_capped() -> None:
    policy = RetryPolicy(base_delay=0.5, max_retry_after=60.0, rng=random.Random(1))
    assert 60.0 <= policy.delay(0, retry_after=86400.0) <= 60.5


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("Wed, 01 Jan 2025 00:00:30 GMT", 30.0),
        ("Tue, 31 Dec 2024 23:00:00 GMT", 0.0),  # in the past
        (None, None),
        ("", None),
        ("soon", None),
        ("inf", None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(
    header: str | None, seconds: float | None
) -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_retry_after(header, now=now) == seconds


# -- the loop ------------------------------------------------------------------------------------


async def test_the_loop_sends_until_final_and_shows_every_attempt_before_waiting() -> None:
    answers = [Outcome(503), Outcome(429, retry_after=2.0), Outcome(200)]
    seen: list[tuple[int, int | None, Verdict]] = []
    slept: list[float] = []

    async def send(attempt: int) -> tuple[Outcome, str]:
        return answers[attempt - 1], f"body {attempt}"

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    last = await send_with_retries(
        send,
        RetryPolicy(max_attempts=5, base_delay=0.1, rng=random.Random(2)),
        HEALTHCARE,
        observe=lambda n, outcome, detail, d: seen.append((n, outcome.status, d.verdict)),
        sleep=sleep,
    )
    assert (last.attempt, last.detail, last.decision.verdict) == (3, "body 3", Verdict.FINAL)
    assert seen == [(1, 503, Verdict.RETRY), (2, 429, Verdict.RETRY), (3, 200, Verdict.FINAL)]
    assert len(slept) == 2 and 2.0 <= slept[1] <= 2.1


async def test_the_loop_stops_at_outcome_unknown_without_waiting() -> None:
    slept: list[float] = []

    async def send(attempt: int) -> tuple[Outcome, None]:
        return LOST, None

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    last = await send_with_retries(send, POLICY, HEALTHCARE, starts_operation=True, sleep=sleep)
    assert (last.attempt, last.decision.verdict, slept) == (1, Verdict.OUTCOME_UNKNOWN, [])


async def test_an_exception_from_the_sender_ends_the_loop_unchanged() -> None:
    async def send(attempt: int) -> tuple[Outcome, None]:
        raise KeyError("credentials")

    with pytest.raises(KeyError, match="credentials"):
        await send_with_retries(send, POLICY, HEALTHCARE)
