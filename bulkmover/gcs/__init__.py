"""Cloud Storage for the planner: ``gs://`` URIs, the import wildcard semantics, listing."""

from bulkmover.gcs.uri import GcsUri, InvalidUriError, parse_gcs_uri
from bulkmover.gcs.wildcard import Kind, Wildcard, has_wildcard, parse_wildcard

__all__ = [
    "GcsUri",
    "InvalidUriError",
    "Kind",
    "Wildcard",
    "has_wildcard",
    "parse_gcs_uri",
    "parse_wildcard",
]
