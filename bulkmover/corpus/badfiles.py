"""Files with a ``.dcm`` name that are not valid DICOM, as a real PACS dump has a few of.

Each must fail ``pydicom.dcmread`` (or be empty), so an import counts it as a failure:

- text: an export log, an HL7 message or a CSV listing saved with a ``.dcm`` name;
- truncated: a real instance cut inside the length field of its Pixel Data element header
  (pydicom 3 silently accepts a cut inside a value, so the cut goes where reading must fail);
- empty: zero bytes;
- random: random bytes (never with ``DICM`` at offset 128).
"""

from __future__ import annotations

import random

from bulkmover.corpus.spec import FileKind
from bulkmover.corpus.templates import Template

#: Kinds in the order bad files cycle through, so any four consecutive ones cover all kinds.
BAD_KINDS = (FileKind.TEXT, FileKind.TRUNCATED, FileKind.EMPTY, FileKind.RANDOM)


def text_file(rng: random.Random) -> bytes:
    """A small text file of one of a few shapes a PACS export leaves behind."""
    n = rng.randrange(10**6)
    choice = rng.randrange(3)
    if choice == 0:
        lines = [f"2024-01-{d:02d} export job {n + d} finished with 0 errors" for d in range(1, 6)]
        return ("\n".join(lines) + "\n").encode()
    if choice == 1:
        return (
            f"MSH|^~\\&|RIS|HOSP|PACS|HOSP|20240101120000||ORM^O01|{n}|P|2.3\r"
            f"PID|1||MRN{n:09d}||DOE^JANE||19700101|F\r"
            f"OBR|1|{n}||CT CHEST\r"
        ).encode()
    rows = "".join(
        f"{n + i},2.25.{rng.randrange(10**20)},OK\n" for i in range(rng.randrange(1, 20))
    )
    return f"accession,study_uid,status\n{rows}".encode()


def truncated_file(rng: random.Random, instance: bytes, template: Template) -> bytes:
    """``instance`` (rendered from ``template``) cut inside its Pixel Data length field."""
    return instance[: template.pixel_length_offset + rng.randrange(4)]


def random_file(rng: random.Random) -> bytes:
    data = bytearray(rng.randbytes(rng.randrange(16, 4096)))
    if data[128:132] == b"DICM":
        data[128] = 0
    return bytes(data)


def bad_file(kind: FileKind, rng: random.Random, instance: bytes, template: Template) -> bytes:
    """Content of a bad file of ``kind``; ``instance`` is a valid rendering to truncate."""
    if kind is FileKind.TEXT:
        return text_file(rng)
    if kind is FileKind.TRUNCATED:
        return truncated_file(rng, instance, template)
    if kind is FileKind.EMPTY:
        return b""
    if kind is FileKind.RANDOM:
        return random_file(rng)
    raise ValueError(f"{kind} is not a bad-file kind")
