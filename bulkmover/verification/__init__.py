"""``bulkmover verify``: the DICOM store checked against the files the state file calls imported
(instance counts always; with a sample or all files, each file's instance looked up)."""

from bulkmover.verification.check import Missing, Unreadable, VerifyReport, verify

__all__ = ["Missing", "Unreadable", "VerifyReport", "verify"]
