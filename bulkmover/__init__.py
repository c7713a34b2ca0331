"""bulkmover: controlled, observable, resumable DICOM migrations into the Cloud Healthcare API."""

__version__ = "0.1.0"
