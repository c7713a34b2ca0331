"""Which instances are in a DICOM store: one QIDO-RS search per study, several at once.

The API has no "do these SOP Instance UIDs exist" call, and a search per instance would cost one
request per file. Files of one study are asked about together: one search of the study's
instances (every page), returning only their SOP Instance UIDs (``includefield=00080018``).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable

from bulkmover.errors import first_user_error
from bulkmover.healthcare.client import HealthcareClient
from bulkmover.healthcare.dicomweb import SOP_INSTANCE_UID, sop_uid_of
from bulkmover.healthcare.resources import StorePath
from bulkmover.inspection.headers import Header


async def present_sop_uids(
    client: HealthcareClient,
    store: StorePath,
    headers: Iterable[Header],
    *,
    concurrency: int = 8,
    on_study: Callable[[int], None] | None = None,
) -> set[str]:
    """The SOP Instance UIDs of ``headers`` that the store holds (under the header's study).

    ``concurrency`` studies are searched at once; ``on_study(n)`` is called after each study
    with the number of headers it answered for (progress). API errors raise ``ApiError``.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    wanted: dict[str, set[str]] = defaultdict(set)
    for header in headers:
        wanted[header.study_uid].add(header.sop_uid)
    studies = iter(wanted.items())
    present: set[str] = set()

    async def worker() -> None:
        for study, sops in studies:
            results = await client.search_instances(
                store, study, params={"includefield": SOP_INSTANCE_UID}
            )
            found = {sop_uid_of(result) for result in results}
            present.update(sops.intersection(found))
            if on_study is not None:
                on_study(len(sops))

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(concurrency, len(wanted))):
                group.create_task(worker())
    except BaseExceptionGroup as err:
        raise first_user_error(err) from None
    return present
