"""``bulkmover run``: config in; plan if needed, preflight, execute with the board, summary out.

Signals: the first Ctrl-C (or SIGTERM) stops submitting and returns once everything in progress
is recorded (operations already started keep running on the server; the next ``run`` re-attaches
to them). A second one cancels at once; every transition was committed first, so the state file
stays consistent either way.
"""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from typing import Any

import structlog

from bulkmover import logs
from bulkmover.board.live import BoardSink
from bulkmover.config import Config
from bulkmover.errors import ApiError, first_user_error
from bulkmover.execution.executor import Executor, ExecutorSettings, RunResult
from bulkmover.execution.kinds import ImportKind
from bulkmover.execution.limits import AdaptiveLimits, LimitSettings, ProbeSettings, ThroughputProbe
from bulkmover.execution.pacing import StartPacer
from bulkmover.gcs.client import storage_client
from bulkmover.healthcare.auth import credentials_for
from bulkmover.healthcare.client import DEFAULT_ENDPOINT, HealthcareClient
from bulkmover.healthcare.resources import StorePath
from bulkmover.healthcare.stats import Family
from bulkmover.outcomes.decisions import LogSettings, NarrowCosts
from bulkmover.outcomes.probe import HeaderProber
from bulkmover.outcomes.stage import OutcomeStage, StageSettings
from bulkmover.state.lock import writer_lock
from bulkmover.state.store import StateStore

log = structlog.get_logger("bulkmover.run")

#: Cloud Storage requests in flight for the per-file stage (header probes, STOW-RS reads).
STAGE_STORAGE_CONCURRENCY = 64


@dataclass(frozen=True)
class RunOptions:
    create_store: bool = False  # create the dataset/store when missing (the demo does)
    tick: float = 0.5


def limit_settings(config: Config) -> LimitSettings:
    rpm = float(config.run.requests_per_minute)
    return LimitSettings(
        max_concurrency=config.run.max_operations_in_flight,
        max_rates={
            Family.LRO_START.value: rpm,
            Family.OPERATIONS.value: rpm,
            # Logging's read quota is its own, and small (about 60 a minute per project).
            Family.LOGGING.value: float(config.run.log_reads_per_minute),
        },
        # The running-operation cap is a count, not a rate: running right at it costs nothing
        # (one more start is refused and retried), while 10% below it idles 10% of the slots
        # until recovery climbs back.
        concurrency_factor=1.0,
    )


def build_limits(config: Config, options: RunOptions) -> AdaptiveLimits:
    settings = limit_settings(config)
    probe = None
    if config.run.probe_throughput and settings.max_concurrency > 1:
        window = config.run.probe_window_seconds
        probe = ThroughputProbe(
            ProbeSettings(
                maximum=settings.max_concurrency,
                initial=max(1, min(settings.max_concurrency, 4)),
                window=window,
                settle=window / 6,
            )
        )
    return AdaptiveLimits(settings, probe=probe)


def has_plan(config: Config) -> bool:
    if not config.state.exists():
        return False
    with StateStore.open(config.state) as store:
        return store.latest_plan() is not None


async def execute(
    config: Config, board: BoardSink | None = None, options: RunOptions = RunOptions()
) -> RunResult:
    """Plan if needed, then run every pending shard; returns when all are terminal or stopped.

    The whole run holds the state file's writer lock: a second writer stops at once."""
    with writer_lock(config.state):
        return await _execute(config, board, options)


async def _execute(config: Config, board: BoardSink | None, options: RunOptions) -> RunResult:
    if not has_plan(config):
        from bulkmover.planning.plan import plan_async

        await plan_async(config)
    store = StateStore.open(config.state, create=False)
    try:
        limits = build_limits(config, options)
        pacer = StartPacer(limits.acquire_request, lanes=config.run.concurrent_starts)
        credentials = await credentials_for(config.credentials)
        client = HealthcareClient(
            endpoint=config.target.endpoint or DEFAULT_ENDPOINT,
            api_version=config.target.api_version,
            credentials=credentials,
            before_request=pacer.before_request,
        )
        target = config.target.store_path
        store.check_target(str(target), record=True)
        async with client, storage_client(config, STAGE_STORAGE_CONCURRENCY) as storage:
            await _preflight(client, target, options.create_store)
            stage = OutcomeStage(
                store.runs.files,
                client,
                target,
                stage_settings(config, options),
                storage=storage,
                prober=HeaderProber(storage, client, target),
                operation_seconds=store.runs.typical_operation_seconds,
            )
            executor = Executor(
                store.runs,
                client,
                limits,
                ImportKind(target, config.import_.storage_class),
                ExecutorSettings(
                    max_attempts=config.run.max_attempts,
                    tick=options.tick,
                    give_up_after=config.run.give_up_after_seconds,
                ),
                pacer=pacer,
                on_snapshot=board,
                hold=stage.busy,
                on_finished=stage.nudge,
                more_patience=[("Cloud Storage or the store (settling files)", stage.patience)],
            )
            stage.wake, stage.note = executor.wake, executor.note_error
            client.listeners.extend((pacer.on_response, executor.on_response))
            result = await _with_signals(executor, stage)
            # Cloud Storage reads of the per-file stage (header probes, STOW-RS downloads).
            result.api_calls["storage"] = storage.counters.requests
            return result
    finally:
        store.close()


def stage_settings(config: Config, options: RunOptions) -> StageSettings:
    run = config.run
    return StageSettings(
        log=LogSettings(
            settle=run.log_settle_seconds,
            deadline=run.log_deadline_seconds,
            resolve=run.resolve_failures,
        ),
        tick=options.tick,
        max_child_files=config.import_.max_objects_per_shard,
        costs=NarrowCosts(operations_in_flight=run.max_operations_in_flight),
        give_up_after=run.give_up_after_seconds,
    )


async def _preflight(client: HealthcareClient, target: StorePath, create: bool) -> None:
    """Fail fast, with one line, when the store is missing or not ours to write."""
    if create:
        await client.ensure_dicom_store(target)
        return
    try:
        await client.get_dicom_store(target)
    except ApiError as err:
        if err.status == 404:
            raise ApiError(
                f"DICOM store {target} not found; create it (`bulkmover run --create-store`, "
                f"or gcloud healthcare dicom-stores create) or fix `target:` in the config",
                status=404,
            ) from None
        raise


async def _with_signals(executor: Executor, stage: OutcomeStage) -> RunResult:
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    presses = 0

    def on_signal() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            log.info("stopping", reason="signal")
            executor.stop()
        elif main is not None:
            main.cancel()

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    try:
        return await _run_beside(executor, stage)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _run_beside(executor: Executor, stage: OutcomeStage) -> RunResult:
    """The executor and the per-file stage together; the executor ends the run (it waits for
    the stage while files are settling), a failure of either stops both."""
    try:
        async with asyncio.TaskGroup() as tasks:
            settling = tasks.create_task(stage.run())
            result = await executor.run()
            settling.cancel()
    except BaseExceptionGroup as group:
        raise first_user_error(group) from None
    return result


def run_sync(
    config: Config, *, interactive: bool | None = None, options: RunOptions = RunOptions()
) -> RunResult:
    """The blocking entry point used by the CLI."""
    logs.configure(logs.log_path_for(config.state))
    with BoardSink(interactive=interactive) as board:
        try:
            return asyncio.run(execute(config, board, options))
        except asyncio.CancelledError:
            raise KeyboardInterrupt from None


def result_json(result: RunResult) -> dict[str, Any]:
    t = result.totals
    return {
        "ok": result.ok,
        "interrupted": result.interrupted,
        "elapsed_seconds": round(result.elapsed, 3),
        "totals": t.as_dict(),
        "files": result.files.as_dict(),
        "coverage": result.coverage.as_dict(),
        "api_calls": result.api_calls,
        "throttled": result.throttled,
    }
