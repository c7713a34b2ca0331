"""Where files go: the directory tree of a PACS dump.

``SITE/YYYY/MM/STUDYUID/SERIESUID/SOPUID.dcm``, with YYYY/MM from the StudyDate. Names are
relative to the destination prefix.
"""

from __future__ import annotations

import re

#: The layout as a pattern (tests and tools check names against it).
NAME_PATTERN = re.compile(
    r"(?P<site>site-[a-z]+)/(?P<year>\d{4})/(?P<month>\d{2})/"
    r"(?P<study>[0-9.]+)/(?P<series>[0-9.]+)/(?P<file>[0-9.]+)\.dcm"
)


def series_dir(site: str, study_date: str, study_uid: str, series_uid: str) -> str:
    """The directory (no trailing slash) holding one series."""
    return f"{site}/{study_date[:4]}/{study_date[4:6]}/{study_uid}/{series_uid}"


def file_name(directory: str, uid: str) -> str:
    return f"{directory}/{uid}.dcm"
