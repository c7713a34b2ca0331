"""Credentials for the Healthcare and Logging APIs: ADC, a service-account key file, or none.

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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import google.auth
import google.auth.credentials
import google.auth.exceptions
import google.auth.transport.requests
from google.oauth2 import service_account

from bulkmover.errors import ApiError, ConfigError, one_line

SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
ADC_HINT = (
    "run `gcloud auth application-default login`, set GOOGLE_APPLICATION_CREDENTIALS to a"
    " service-account key file, or name a key file in the config"
)


class Credentials(Protocol):
    """What the client needs: request headers, and a way to drop a token the server refused."""

    async def headers(self) -> dict[str, str]: ...

    def invalidate(self) -> None: ...

    @property
    def anonymous(self) -> bool: ...


class AnonymousCredentials:
    """No Authorization header (the local emulator)."""

    anonymous = True

    async def headers(self) -> dict[str, str]:
        return {}

    def invalidate(self) -> None:
        pass

    def __repr__(self) -> str:
        return "AnonymousCredentials()"


class GoogleCredentials:
    """google-auth credentials behind an async, cached, off-loop refresh.

    ``description`` names the identity for messages (an account e-mail, "application default
    credentials"), never the secret.
    """

    anonymous = False

    def __init__(
        self,
        credentials: google.auth.credentials.Credentials,
        *,
        description: str,
        refresh_margin: float = 300.0,
    ) -> None:
        self._credentials = credentials
        self._description = description
        self._margin = timedelta(seconds=refresh_margin)
        self._lock = asyncio.Lock()
        self._refreshes = 0

    @property
    def description(self) -> str:
        return self._description

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
                f" {ADC_HINT}",
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


def service_account_file(path: str | Path, *, refresh_margin: float = 300.0) -> GoogleCredentials:
    """Credentials from a service-account JSON key file (ConfigError if missing or malformed)."""
    info = service_account_key(path)
    creds = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        info, scopes=SCOPES
    )
    return GoogleCredentials(
        creds,
        description=f"service account {creds.service_account_email}",
        refresh_margin=refresh_margin,
    )


async def application_default(*, refresh_margin: float = 300.0) -> GoogleCredentials:
    """Application Default Credentials (may probe the metadata server, hence off the loop)."""
    try:
        creds, project = await asyncio.to_thread(google.auth.default, scopes=SCOPES)
    except google.auth.exceptions.DefaultCredentialsError as err:
        raise ConfigError(f"no Google credentials found ({_reason(err)}); {ADC_HINT}") from None
    account = getattr(creds, "service_account_email", None)
    who = f"service account {account}" if account else "application default credentials"
    return GoogleCredentials(creds, description=who, refresh_margin=refresh_margin)


async def load_credentials(kind: str, key_file: str | Path | None = None) -> Credentials:
    """``kind`` is ``"adc"``, ``"service_account"`` (needs ``key_file``) or ``"anonymous"``."""
    if kind == "anonymous":
        return anonymous()
    if kind == "service_account":
        if not key_file:
            raise ConfigError("credentials: service_account needs key_file (path to a JSON key)")
        return service_account_file(key_file)
    if kind == "adc":
        return await application_default()
    raise ConfigError(
        f"credentials: unknown kind {kind!r}; use adc, service_account (with key_file) or anonymous"
    )
