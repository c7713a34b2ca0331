"""Credentials for every API a job calls (Healthcare, Logging, Cloud Storage): one google-auth
credential from ADC or a service-account key file, optionally impersonating a service account
(``credentials.impersonate``), optionally billed to a quota project (``credentials.quota_project``,
sent as ``x-goog-user-project``); or none (``kind: anonymous``, the emulators).

One job, one credential: ``credentials_for(config.credentials)`` returns the same object to
every client built on one event loop (the Healthcare client and the Cloud Storage client share
its token, its refresh and its lock), and ``load_credentials`` registers what it builds there.

google-auth refreshes tokens with blocking HTTP, so refreshes run in a worker thread
(``asyncio.to_thread``) and the event loop keeps serving the other requests meanwhile. A token is
reused until ``refresh_margin`` seconds before it expires; one refresh at a time, shared by every
request waiting for it. Tokens and keys never appear in ``repr``/``str`` or in error messages.

>>> creds = anonymous()   # the emulator
>>> creds
AnonymousCredentials()
"""

from __future__ import annotations

import asyncio
import json
import weakref
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import google.auth
import google.auth.credentials
import google.auth.exceptions
import google.auth.impersonated_credentials
import google.auth.transport.requests
from google.oauth2 import service_account

from bulkmover.errors import ApiError, ConfigError, one_line

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
ADC_HINT = (
    "run `gcloud auth application-default login`, set GOOGLE_APPLICATION_CREDENTIALS to a"
    " service-account key file, or name a key file in the config"
)
QUOTA_PROJECT_HEADER = "x-goog-user-project"
IMPERSONATION_LIFETIME = 3600
"""Seconds an impersonated token lives (the IAM Credentials API's default and maximum)."""


class Credentials(Protocol):
    """What the client needs: request headers, and a way to drop a token the server refused."""

    async def headers(self) -> dict[str, str]: ...

    def invalidate(self) -> None: ...

    @property
    def anonymous(self) -> bool: ...

    @property
    def quota_project(self) -> str | None: ...


class CredentialSettings(Protocol):
    """What a job's config says about credentials (``bulkmover.config.CredentialsConfig``)."""

    @property
    def kind(self) -> str: ...

    @property
    def key_file(self) -> Path | None: ...

    @property
    def impersonate(self) -> str | None: ...

    @property
    def quota_project(self) -> str | None: ...


class AnonymousCredentials:
    """No Authorization header (the local emulator)."""

    anonymous = True
    quota_project = None

    async def headers(self) -> dict[str, str]:
        return {}

    def invalidate(self) -> None:
        pass

    def __repr__(self) -> str:
        return "AnonymousCredentials()"


class GoogleCredentials:
    """google-auth credentials behind an async, cached, off-loop refresh.

    ``description`` names the identity for messages (an account e-mail, "application default
    credentials"), never the secret. ``quota_project`` is sent as ``x-goog-user-project`` on
    every request (it wins over a quota project in the ADC file). ``refused_hint`` is the fix a
    refused refresh suggests.
    """

    anonymous = False

    def __init__(
        self,
        credentials: google.auth.credentials.Credentials,
        *,
        description: str,
        refresh_margin: float = 300.0,
        quota_project: str | None = None,
        refused_hint: str = ADC_HINT,
    ) -> None:
        self._credentials = credentials
        self._description = description
        self._margin = timedelta(seconds=refresh_margin)
        self._lock = asyncio.Lock()
        self._refreshes = 0
        self._quota_project = quota_project
        self._refused_hint = refused_hint

    @property
    def description(self) -> str:
        return self._description

    @property
    def quota_project(self) -> str | None:
        """The project sent as ``x-goog-user-project``: the config's, else the credentials' own
        (``gcloud auth application-default set-quota-project``), else None."""
        own = getattr(self._credentials, "quota_project_id", None)
        return self._quota_project or (own if isinstance(own, str) and own else None)

    @property
    def google(self) -> google.auth.credentials.Credentials:
        """The google-auth object underneath (tests, and callers that need its type)."""
        return self._credentials

    @property
    def refreshes(self) -> int:
        """How many tokens were fetched (tests and the board)."""
        return self._refreshes

    def _fresh(self) -> bool:
        creds = self._credentials
        if not creds.token:
            return False
        expiry = creds.expiry  # naive UTC, or None for tokens that do not expire
        if expiry is None:
            return True
        now = datetime.now(UTC).replace(tzinfo=None)
        return bool(expiry - now > self._margin)

    async def headers(self) -> dict[str, str]:
        if not self._fresh():
            async with self._lock:
                if not self._fresh():  # another task may have refreshed while we waited
                    await asyncio.to_thread(self._refresh_blocking)
        headers: dict[str, str] = {}
        # Authorization, plus x-goog-user-project when the credentials name a quota project.
        self._credentials.apply(headers)  # type: ignore[no-untyped-call]
        if self._quota_project:
            headers[QUOTA_PROJECT_HEADER] = self._quota_project
        return headers

    def invalidate(self) -> None:
        """Forget the token (after a 401) so the next request fetches a new one."""
        self._credentials.token = None

    def _refresh_blocking(self) -> None:
        request = google.auth.transport.requests.Request()
        try:
            self._credentials.refresh(request)  # type: ignore[no-untyped-call]
        except google.auth.exceptions.TransportError as err:
            raise ApiError(
                f"cannot reach Google's token endpoint to authenticate {self._description}"
                f" ({type(err).__name__}); check the network and proxy settings",
                retriable=True,
            ) from None
        except google.auth.exceptions.RefreshError as err:
            raise ApiError(
                f"Google refused the credentials of {self._description}: {_reason(err)};"
                f" {self._refused_hint}",
                status=401,
                reason="UNAUTHENTICATED",
            ) from None
        self._refreshes += 1

    def __repr__(self) -> str:
        return f"GoogleCredentials({self._description})"


def _reason(err: Exception) -> str:
    """google-auth's own words (its first argument), on one line and short."""
    return one_line(str(err.args[0] if err.args else type(err).__name__), 200)


def anonymous() -> AnonymousCredentials:
    return AnonymousCredentials()


KEY_FILE_LIMIT = 1 << 20
"""A service-account key is about 2.3 KB: a larger ``key_file`` is the wrong file."""
KEY_HINT = "create a key with `gcloud iam service-accounts keys create`"


def service_account_key(path: str | Path) -> dict[str, Any]:
    """The parsed service-account key at ``path`` (``credentials.key_file``), checked before
    any client opens a session; ConfigError naming the file and what is wrong with it.

    Messages never quote the file: it holds a private key (a parser's message may quote it).
    """
    path = Path(path).expanduser()
    try:
        with path.open("rb") as f:
            raw = f.read(KEY_FILE_LIMIT + 1)
    except FileNotFoundError:
        raise ConfigError(
            f"service-account key file {path} not found; fix credentials.key_file in the"
            f" config, or {KEY_HINT}"
        ) from None
    except OSError as err:
        raise ConfigError(
            f"cannot read service-account key file {path} ({err.strerror or type(err).__name__});"
            " fix credentials.key_file in the config or the file's permissions"
        ) from None
    problem = _key_problem(raw)
    if problem is not None:
        raise ConfigError(
            f"{path} is not a usable service-account key file ({problem}); fix"
            f" credentials.key_file in the config, or {KEY_HINT}"
        )
    info: dict[str, Any] = json.loads(raw)
    return info


def _key_problem(raw: bytes) -> str | None:
    """What is wrong with a key file's bytes, in words that quote none of them."""
    if len(raw) > KEY_FILE_LIMIT:
        return "over 1 MiB, a key is about 2 KB"
    try:
        info = json.loads(raw)
    except ValueError:
        return "not JSON"
    if not isinstance(info, dict):
        return "not a JSON object"
    if info.get("type") != "service_account":
        return (
            'its "type" is not "service_account": for a `gcloud auth application-default'
            " login` file use credentials kind adc"
        )
    missing = [k for k in ("client_email", "private_key", "token_uri") if not info.get(k)]
    if missing:
        return f"no {', '.join(missing)}"
    try:
        service_account.Credentials.from_service_account_info(info)  # type: ignore[no-untyped-call]
    except (ValueError, KeyError, TypeError, IndexError):
        return "its private_key is not a PEM private key"
    return None


def service_account_file(
    path: str | Path, *, refresh_margin: float = 300.0, quota_project: str | None = None
) -> GoogleCredentials:
    """Credentials from a service-account JSON key file (ConfigError if missing or malformed)."""
    info = service_account_key(path)
    creds = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        info, scopes=SCOPES
    )
    return GoogleCredentials(
        creds,
        description=f"service account {creds.service_account_email}",
        refresh_margin=refresh_margin,
        quota_project=quota_project,
    )


async def application_default(
    *, refresh_margin: float = 300.0, quota_project: str | None = None
) -> GoogleCredentials:
    """Application Default Credentials (may probe the metadata server, hence off the loop)."""
    try:
        creds, project = await asyncio.to_thread(google.auth.default, scopes=SCOPES)
    except google.auth.exceptions.DefaultCredentialsError as err:
        raise ConfigError(f"no Google credentials found ({_reason(err)}); {ADC_HINT}") from None
    account = getattr(creds, "service_account_email", None)
    who = f"service account {account}" if account else "application default credentials"
    return GoogleCredentials(
        creds, description=who, refresh_margin=refresh_margin, quota_project=quota_project
    )


def impersonating(
    source: GoogleCredentials,
    target: str,
    *,
    quota_project: str | None = None,
    iam_endpoint: str | None = None,
    refresh_margin: float = 300.0,
) -> GoogleCredentials:
    """``source`` acting as the service account ``target`` (``credentials.impersonate``): its
    tokens come from the IAM Credentials API's ``generateAccessToken``, which needs the source
    identity to hold roles/iam.serviceAccountTokenCreator on ``target``. ``iam_endpoint`` is the
    full ``generateAccessToken`` URL (tests; regional endpoints)."""
    account = getattr(source.google, "service_account_email", None)
    member = f"serviceAccount:{account}" if isinstance(account, str) else "user:YOUR_EMAIL"
    creds = google.auth.impersonated_credentials.Credentials(  # type: ignore[no-untyped-call]
        source_credentials=source.google,
        target_principal=target,
        target_scopes=list(SCOPES),
        lifetime=IMPERSONATION_LIFETIME,
        iam_endpoint_override=iam_endpoint,
    )
    return GoogleCredentials(
        creds,
        description=f"service account {target} (impersonated by {source.description})",
        refresh_margin=refresh_margin,
        quota_project=quota_project,
        refused_hint=(
            f"grant {source.description} roles/iam.serviceAccountTokenCreator on {target}"
            f" (`gcloud iam service-accounts add-iam-policy-binding {target}"
            f" --member={member} --role=roles/iam.serviceAccountTokenCreator`), enable the IAM"
            " Service Account Credentials API, or fix credentials.impersonate"
        ),
    )


async def load_credentials(
    kind: str | CredentialSettings,
    key_file: str | Path | None = None,
    *,
    impersonate: str | None = None,
    quota_project: str | None = None,
) -> Credentials:
    """A new credential, registered as this event loop's for its settings (``credentials_for``).

    ``kind`` is ``"adc"``, ``"service_account"`` (needs ``key_file``) or ``"anonymous"``, or a
    whole ``credentials:`` section (``load_credentials(config.credentials)``)."""
    if not isinstance(kind, str):
        settings = kind
        kind, key_file = settings.kind, settings.key_file
        impersonate, quota_project = settings.impersonate, settings.quota_project
    creds = await _build(kind, key_file, impersonate, quota_project)
    _registry()[_key(kind, key_file, impersonate, quota_project)] = creds
    return creds


async def credentials_for(settings: CredentialSettings) -> Credentials:
    """The job's one credential on this event loop: the one ``load_credentials`` built for the
    same settings, else a new one (then shared). Every client of a job asks here, so the
    Healthcare and Cloud Storage requests carry the same token from the same refresh."""
    key = _key(settings.kind, settings.key_file, settings.impersonate, settings.quota_project)
    found = _registry().get(key)
    if found is not None:
        return found
    return await load_credentials(settings)


async def _build(
    kind: str, key_file: str | Path | None, impersonate: str | None, quota_project: str | None
) -> Credentials:
    if kind == "anonymous":
        if impersonate or quota_project:
            raise ConfigError(
                "credentials: impersonate and quota_project need Google credentials; set kind"
                " adc or service_account, or remove them"
            )
        return anonymous()
    if kind == "service_account":
        if not key_file:
            raise ConfigError("credentials: service_account needs key_file (path to a JSON key)")
        # With impersonation the quota project goes with the impersonated identity's requests.
        creds = service_account_file(key_file, quota_project=None if impersonate else quota_project)
    elif kind == "adc":
        creds = await application_default(quota_project=None if impersonate else quota_project)
    else:
        raise ConfigError(
            f"credentials: unknown kind {kind!r}; use adc, service_account (with key_file) or"
            " anonymous"
        )
    if impersonate:
        return impersonating(creds, impersonate, quota_project=quota_project)
    return creds


_Key = tuple[str, str | None, str | None, str | None]
_REGISTRIES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[_Key, Credentials]] = (
    weakref.WeakKeyDictionary()
)


def _registry() -> dict[_Key, Credentials]:
    """This event loop's credentials (a credential's refresh lock belongs to one loop)."""
    return _REGISTRIES.setdefault(asyncio.get_running_loop(), {})


def _key(
    kind: str, key_file: str | Path | None, impersonate: str | None, quota_project: str | None
) -> _Key:
    path = str(Path(key_file).expanduser().absolute()) if key_file else None
    return (kind, path, impersonate or None, quota_project or None)
