"""Cloud Healthcare API emulator: DICOM stores, import/export operations, DICOMweb, Logging.

Run it with ``python -m bulkmover.emulator.healthcare --port 0 --data-dir DIR --gcs-endpoint URL``
(it prints ``READY healthcare http://127.0.0.1:PORT``). The modules, by concern:

- ``app`` routes (v1 and v1beta1) and the server's lifecycle; ``middleware`` auth, quotas, faults;
- ``resources``, ``operations_api``, ``dicomweb``, ``logging_api``: the handlers;
- ``operations`` the import/export engine; ``db`` the SQLite index; ``dicomfiles`` pydicom work
  (run by ``cpu`` in worker processes); ``gcsclient`` the Cloud Storage JSON API client;
- ``wildcard``, ``filters``, ``formats``, ``names``, ``qido``: the API's rules, as pure functions;
- ``realism`` the knobs (:class:`HealthcareRealism`).

In-process use (tests, tools): ``create_app(ServerConfig(...))`` from ``app`` and ``service``;
this package itself imports only the knobs, so the launcher stays light.
"""

from bulkmover.emulator.healthcare.realism import HealthcareRealism

__all__ = ["HealthcareRealism"]
