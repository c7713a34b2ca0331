"""Preflight: ``bulkmover doctor`` and ``run``'s checks before anything is submitted.

``checks`` (results), ``decisions`` (pure: which permissions, what a policy grants, the fix
commands), ``http`` (one short-retrying JSON call), ``probes`` (the calls), ``command``.
"""

from bulkmover.preflight.checks import Check, PreflightError, Report

__all__ = ["Check", "PreflightError", "Report"]
