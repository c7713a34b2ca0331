"""Fresh, valid DICOM UIDs under the ``2.25.`` root (ISO/IEC 9834-8: a UUID as a decimal integer).

Every UID has exactly 44 characters (``2.25.`` and 39 digits, no leading zero), so templates can
hold it in a fixed-width slot and need no re-encoding. 39-digit integers below 2**128 are UUIDs,
so the UIDs stay within the root's rules; drawing them from a seeded RNG makes them reproducible.
"""

from __future__ import annotations

import random
import re

UID_ROOT = "2.25."
UID_LENGTH = 44
_LOW = 10**38  # smallest 39-digit integer
_HIGH = 2**128  # UUIDs are 128-bit
_UID_RE = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+")


def new_uid(rng: random.Random) -> str:
    """A 44-character ``2.25.`` UID drawn from ``rng``."""
    return f"{UID_ROOT}{rng.randrange(_LOW, _HIGH)}"


def is_valid_uid(uid: str) -> bool:
    """True for a DICOM UID: dot-separated numbers without leading zeros, at most 64 chars."""
    return len(uid) <= 64 and _UID_RE.fullmatch(uid) is not None
