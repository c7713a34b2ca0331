"""present_sop_uids against the Healthcare emulator: one QIDO per study, pages included."""

from __future__ import annotations

import io
import uuid

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from bulkmover.emulator.processes import RunningServer
from bulkmover.errors import ApiError
from bulkmover.healthcare import HealthcareClient, RequestEvent, StorePath
from bulkmover.inspection import Header, present_sop_uids


def instance(header: Header) -> bytes:
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    ds = pydicom.dcmread(path)
    ds.StudyInstanceUID = header.study_uid
    ds.SeriesInstanceUID = header.series_uid
    ds.SOPInstanceUID = header.sop_uid
    ds.file_meta.MediaStorageSOPInstanceUID = header.sop_uid
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def headers_of(studies: int, per_study: int) -> list[Header]:
    found = []
    for s in range(studies):
        study, series = generate_uid(), generate_uid()
        found += [Header(f"s{s}/{i}.dcm", study, series, generate_uid()) for i in range(per_study)]
    return found


async def test_present_sop_uids_one_search_per_study(healthcare_emulator: RunningServer) -> None:
    store = StorePath("presence", "l", f"ds-{uuid.uuid4().hex[:8]}", "s")
    headers = headers_of(studies=5, per_study=4)
    stored = [h for i, h in enumerate(headers) if i % 3 != 0]
    absent_study = headers_of(studies=1, per_study=2)  # a study the store never saw
    async with HealthcareClient(endpoint=healthcare_emulator.url) as client:
        await client.ensure_dicom_store(store)
        for header in stored:
            assert (await client.store_instance(store, instance(header))).outcome == "stored"

        searches: list[RequestEvent] = []
        client.listeners.append(
            lambda e: searches.append(e) if e.method.endswith("searchForInstances") else None
        )
        progress: list[int] = []
        present = await present_sop_uids(
            client, store, headers + absent_study, concurrency=3, on_study=progress.append
        )
        assert present == {h.sop_uid for h in stored}
        assert len(searches) == 6  # one per study, the absent one included
        assert sorted(progress) == [2, 4, 4, 4, 4, 4]

        assert await present_sop_uids(client, store, []) == set()

        missing = StorePath("presence", "l", f"ds-{uuid.uuid4().hex[:8]}", "s")
        with pytest.raises(ApiError, match="not found"):
            await present_sop_uids(client, missing, headers)
