"""QIDO-RS search over the index: attribute matching, paging and DICOM JSON results.

Matching follows DICOM PS3.18 as the API applies it: UID lists, ``*``/``?`` wildcards on strings
(case-insensitive for person names), date ranges (``20200101-20201231``, ``-20201231``,
``20200101-``) and ``ModalitiesInStudy`` (a study with a series of one of the modalities).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from multidict import MultiMapping
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from bulkmover.emulator.healthcare.db import Database
from bulkmover.emulator.healthcare.dicomfiles import QIDO_ATTRIBUTES
from bulkmover.emulator.healthcare.rpc import invalid

Level = Literal["study", "series", "instance"]
LEVEL_RANK = {"study": 0, "series": 1, "instance": 2}
DEFAULT_LIMIT = 100
MAX_LIMIT: dict[str, int] = {"study": 5000, "series": 5000, "instance": 50000}

UID_COLUMNS = {
    "StudyInstanceUID": ("study", "study"),
    "SeriesInstanceUID": ("series", "series"),
    "SOPInstanceUID": ("sop", "instance"),
    "SOPClassUID": ("sop_class", "instance"),
}
DATE_KEYS = {"StudyDate", "PatientBirthDate"}
COMPUTED = {
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
    "NumberOfSeriesRelatedInstances",
}
INDEXED = {*QIDO_ATTRIBUTES, *UID_COLUMNS, *COMPUTED, "SpecificCharacterSet"}
RESERVED = {"limit", "offset", "includefield", "fuzzymatching"}
# Google's standard query parameters, accepted by every method of the API (the discovery
# client always sends ``alt=json``); they are never search keys.
SYSTEM_PARAMETERS = {
    "$.xgafv",
    "access_token",
    "alt",
    "callback",
    "fields",
    "key",
    "oauth_token",
    "prettyPrint",
    "quotaUser",
    "upload_protocol",
    "uploadType",
}


@dataclass(frozen=True)
class Query:
    level: Level
    where: str
    params: list[Any]
    limit: int
    offset: int
    in_study: bool = False  # the search is within one study
    include: frozenset[str] = frozenset()  # includefield keywords beyond the level's defaults
    include_all: bool = False  # includefield=all: every attribute the index keeps

    @property
    def from_files(self) -> frozenset[str]:
        """includefield keywords the index does not keep: read from the instances' files."""
        return frozenset(k for k in self.include if k not in INDEXED)


def _keyword(key: str) -> str:
    """A search key as keyword: ``PatientID`` or ``00100020`` -> ``PatientID``."""
    if len(key) == 8 and all(c in "0123456789abcdefABCDEF" for c in key):
        return keyword_for_tag(int(key, 16)) or key
    return key


def _values(raw: str) -> list[str]:
    return [v for v in raw.replace("\\", ",").split(",") if v]


def _glob(value: str, fold: bool) -> tuple[str, str]:
    """A DICOM wildcard as a SQL condition on ``?`` (GLOB, or LIKE when case-insensitive)."""
    if fold:
        escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return "LIKE ? ESCAPE '\\'", escaped.replace("*", "%").replace("?", "_")
    escaped = "".join(f"[{c}]" if c in "[]" else c for c in value)
    return "GLOB ?", escaped


def build_query(
    level: Level, study: str | None, series: str | None, query: MultiMapping[str]
) -> Query:
    where = ["store_id = ?"]
    params: list[Any] = []
    if study is not None:
        where.append("study = ?")
        params.append(study)
    if series is not None:
        where.append("series = ?")
        params.append(series)
    for key, raw in query.items():
        if key in RESERVED or key in SYSTEM_PARAMETERS:
            continue
        keyword = _keyword(key)
        if keyword in UID_COLUMNS:
            column, key_level = UID_COLUMNS[keyword]
            _check_level(keyword, key_level, level)
            uids = _values(raw)
            where.append(f"{column} IN ({','.join('?' * len(uids))})")
            params += uids
        elif keyword == "ModalitiesInStudy":
            _check_level(keyword, "study", level)
            mods = _values(raw)
            where.append(
                "study IN (SELECT study FROM instances WHERE store_id = i.store_id AND "
                f"json_extract(attrs, '$.Modality') IN ({','.join('?' * len(mods))}))"
            )
            params += mods
        elif keyword in QIDO_ATTRIBUTES:
            _check_level(keyword, QIDO_ATTRIBUTES[keyword], level)
            column = f"json_extract(attrs, '$.{keyword}')"
            if keyword in DATE_KEYS and "-" in raw:
                low, _, high = raw.partition("-")
                if low:
                    where.append(f"{column} >= ?")
                    params.append(low)
                if high:
                    where.append(f"{column} <= ?")
                    params.append(high)
            elif "*" in raw or "?" in raw:
                op, pattern = _glob(raw, fold=keyword.endswith("Name"))
                where.append(f"{column} {op}")
                params.append(pattern)
            elif keyword.endswith("Name"):
                where.append(f"lower({column}) = lower(?)")
                params.append(raw)
            else:
                where.append(f"{column} = ?")
                params.append(raw)
        else:
            raise invalid(
                f"unsupported QIDO search parameter {key!r}: match on UIDs, "
                + ", ".join(sorted(QIDO_ATTRIBUTES))
                + " or ModalitiesInStudy"
            )
    limit = _int_param(query, "limit", DEFAULT_LIMIT)
    offset = _int_param(query, "offset", 0)
    if limit == 0 or limit > MAX_LIMIT[level]:
        limit = MAX_LIMIT[level] if limit else DEFAULT_LIMIT
    include = _include_fields(query.getall("includefield", []))
    return Query(
        level,
        " AND ".join(where),
        params,
        limit,
        offset,
        in_study=study is not None,
        include=frozenset(include - {"all"}),
        include_all="all" in include,
    )


def _include_fields(raw_values: list[str]) -> set[str]:
    """The keywords ``includefield`` names (by keyword or tag, repeated or comma-separated)."""
    keywords: set[str] = set()
    for raw in raw_values:
        for item in raw.split(","):
            item = item.strip()
            if not item:
                continue
            if item.lower() == "all":
                keywords.add("all")
                continue
            keyword = _keyword(item)
            if tag_for_keyword(keyword) is None:
                raise invalid(
                    f"invalid includefield {item!r}: give a DICOM keyword (PatientName), a tag "
                    "(00100010) or all"
                )
            keywords.add(keyword)
    return keywords


def _check_level(keyword: str, key_level: str, level: Level) -> None:
    if LEVEL_RANK[key_level] > LEVEL_RANK[level]:
        raise invalid(
            f"{keyword} is a {key_level}-level attribute; it cannot filter {level} search"
        )


def _int_param(query: MultiMapping[str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise invalid(f"invalid {name} {raw!r}: give a non-negative integer")
    return int(raw)


def run_query(
    db: Database, store_id: int, q: Query
) -> tuple[list[dict[str, Any]], bool, list[str]]:
    """DICOM JSON results of a page, whether more results follow, and the blob (path under the
    data dir) of each result's first instance, where attributes outside the index are read."""
    # Within one study, its index finds the rows (the planner would walk the whole store's seq
    # index to avoid a sort of a few rows).
    hint = " INDEXED BY instances_by_study" if q.in_study else ""
    base = f"FROM instances i{hint} WHERE {q.where}"
    params = [store_id, *q.params]
    if q.level == "study":
        sql = (
            "SELECT study, MIN(seq) AS first, COUNT(DISTINCT series) AS n_series, "
            "COUNT(*) AS n_instances, GROUP_CONCAT(DISTINCT json_extract(attrs, '$.Modality')) "
            f"AS modalities {base} GROUP BY study ORDER BY first LIMIT ? OFFSET ?"
        )
    elif q.level == "series":
        sql = (
            "SELECT study, series, MIN(seq) AS first, COUNT(*) AS n_instances "
            f"{base} GROUP BY study, series ORDER BY first LIMIT ? OFFSET ?"
        )
    else:
        sql = f"SELECT *, seq AS first {base} ORDER BY seq LIMIT ? OFFSET ?"
    rows = db.query(sql, [*params, q.limit + 1, q.offset])
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    if not rows:
        return [], more, []
    firsts = {r["first"]: r for r in rows}
    marks = ",".join("?" * len(firsts))
    details = {
        d["seq"]: d
        for d in db.query(
            f"SELECT * FROM instances WHERE store_id = ? AND seq IN ({marks})",
            [store_id, *firsts],
        )
    }
    results: list[dict[str, Any]] = []
    blobs: list[str] = []
    for row in rows:
        inst = details[row["first"]]
        blobs.append(inst["blob"])
        attrs: dict[str, Any] = json.loads(inst["attrs"])
        attrs["StudyInstanceUID"] = inst["study"]
        if q.level == "study":
            result = _dicom_json(attrs, "study")
            result |= _dicom_json(
                {
                    "ModalitiesInStudy": (row["modalities"] or "").replace(",", "\\"),
                    "NumberOfStudyRelatedSeries": row["n_series"],
                    "NumberOfStudyRelatedInstances": row["n_instances"],
                },
                "study",
            )
        elif q.level == "series":
            attrs["SeriesInstanceUID"] = inst["series"]
            result = _dicom_json(attrs, "series")
            result |= _dicom_json({"NumberOfSeriesRelatedInstances": row["n_instances"]}, "series")
        else:
            attrs |= {
                "SeriesInstanceUID": inst["series"],
                "SOPInstanceUID": inst["sop"],
                "SOPClassUID": inst["sop_class"],
            }
            result = _dicom_json(attrs, "instance")
        result |= _included(attrs, q)
        results.append(dict(sorted(result.items())))
    return results, more, blobs


def _dicom_json(attrs: dict[str, Any], level: Level) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for keyword, value in attrs.items():
        key_level = QIDO_ATTRIBUTES.get(keyword) or _level_of(keyword)
        if LEVEL_RANK[key_level] > LEVEL_RANK[level]:
            continue
        element = dicom_json_element(keyword, value)
        if element is not None:
            out[f"{tag_for_keyword(keyword):08X}"] = element
    return out


def _included(attrs: dict[str, Any], q: Query) -> dict[str, Any]:
    """The attributes ``includefield`` adds: those the index keeps for the (first) instance.

    An attribute the index does not keep is left out, as the API leaves out one an instance
    lacks.
    """
    out: dict[str, Any] = {}
    for keyword, value in attrs.items():
        if keyword in UID_COLUMNS and keyword != "StudyInstanceUID":
            continue  # lower-level UIDs stay out of higher-level results
        if q.include_all or keyword in q.include:
            element = dicom_json_element(keyword, value)
            if element is not None:
                out[f"{tag_for_keyword(keyword):08X}"] = element
    return out


def _level_of(keyword: str) -> str:
    if keyword in UID_COLUMNS:
        return UID_COLUMNS[keyword][1]
    return "study"


def dicom_json_element(keyword: str, value: Any) -> dict[str, Any] | None:
    """One DICOM JSON element (``{"vr": ..., "Value": [...]}``) from a stored text value."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        return None
    vr = dictionary_VR(tag)
    if value is None or value == "":
        return {"vr": vr}
    parts = str(value).split("\\")
    converted: list[Any]
    if vr in ("IS", "US", "UL", "SS", "SL"):
        converted = [int(float(p)) for p in parts if p.strip()]
    elif vr in ("DS", "FL", "FD"):
        converted = [float(p) for p in parts if p.strip()]
    elif vr == "PN":
        converted = [{"Alphabetic": p} for p in parts]
    else:
        converted = parts
    return {"vr": vr, "Value": converted}
