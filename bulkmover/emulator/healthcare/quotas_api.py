"""Service Usage's ``consumerQuotaMetrics`` for the Healthcare API, from the emulator's knobs.

``bulkmover doctor`` reads the LRO quota (``dicom_store_lro_ops``, starts of imports and
exports per minute per region) to tell whether a plan's shards can start in a sane time. The
emulator serves the one method it needs, on its own port, with the per-family limit it
enforces (``requests_per_minute``); ``serviceusage.quotas.get`` can be denied like any
permission.
"""

from __future__ import annotations

from aiohttp import web

from bulkmover.emulator.healthcare import iam
from bulkmover.emulator.healthcare.requests import json_response
from bulkmover.emulator.healthcare.rpc import ApiFailure, Code
from bulkmover.emulator.healthcare.service import service_of

SERVICE = "healthcare.googleapis.com"
METRICS = (
    "/v1beta1/projects/{project:[^/]+}/services/healthcare.googleapis.com/consumerQuotaMetrics"
)
PER_MINUTE = "1/min/{project}/{region}"
# Metric, display name and the emulator's family whose quota it is.
_METRICS = (
    ("dicom_store_lro_ops", "DICOM store long-running operation requests"),
    ("dicom_store_ops", "DICOM store operation requests"),
    ("dicomweb_ops", "DICOMweb requests"),
)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get(METRICS, consumer_quota_metrics)


async def consumer_quota_metrics(request: web.Request) -> web.Response:
    svc = service_of(request)
    project = request.match_info["project"]
    if "serviceusage.quotas.get" in iam.denied(svc.knobs):
        raise ApiFailure(
            Code.PERMISSION_DENIED,
            f"Permission 'serviceusage.quotas.get' denied on resource 'projects/{project}'",
        )
    limit = str(svc.knobs.requests_per_minute)
    metrics = []
    for metric, display in _METRICS:
        full = f"{SERVICE}/{metric}"
        base = f"projects/{project}/services/{SERVICE}/consumerQuotaMetrics/{full}"
        metrics.append(
            {
                "name": base,
                "displayName": display,
                "metric": full,
                "unit": PER_MINUTE,
                "consumerQuotaLimits": [
                    {
                        "name": f"{base}/limits/{PER_MINUTE}",
                        "unit": PER_MINUTE,
                        "metric": full,
                        "quotaBuckets": [{"effectiveLimit": limit, "defaultLimit": limit}],
                    }
                ],
            }
        )
    return json_response({"metrics": metrics})
