"""Looking at files and the store without importing: DICOM headers read from Cloud Storage by
ranged reads, and which of their instances a DICOM store holds (QIDO-RS per study).

Used by ``bulkmover verify`` and by the failure-resolution stage of ``run``.
"""

from bulkmover.inspection.headers import Header, parse_header, read_header, read_headers
from bulkmover.inspection.presence import present_sop_uids

__all__ = ["Header", "parse_header", "present_sop_uids", "read_header", "read_headers"]
