"""Cloud Healthcare API emulator (DICOM stores, import/export operations, DICOMweb, Logging).

Run it with ``python -m bulkmover.emulator.healthcare --port 0 --data-dir DIR --gcs-endpoint URL``.
"""

from bulkmover.emulator.healthcare.realism import HealthcareRealism

__all__ = ["HealthcareRealism"]
