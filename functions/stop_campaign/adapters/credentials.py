"""API credentials from Secrets Manager (cached through Powertools parameters) and the JWT minted from them."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from aws_lambda_powertools.utilities.parameters import SecretsProvider

from stop_campaign.domain.models import RequestRejected


class CredentialsUnavailable(RequestRejected):
    """The secret has no usable credentials for a stream (outcome ``rejected``: no call is made)."""


@dataclass(slots=True)
class StreamCredentials:
    client_id: str
    client_secret: str = field(repr=False)  # never in a repr, a log line or an error
    account_id: str
    iid: str
    generation: int  # which read of the secret these came from (see CredentialStore.refresh)


class CredentialStore:
    """Reads the credentials secret at most once per ``max_age`` per container, shared by all threads."""

    def __init__(self, secret_id: str, max_age: int, provider: SecretsProvider | None = None) -> None:
        self._secret_id = secret_id
        self._max_age = max_age
        self._provider = provider or SecretsProvider()
        # Without the lock, every thread of a cold batch would miss the cache and read the secret.
        self._lock = threading.Lock()
        self._generation = 0
        self._force_next = False
        self._last_read: object = None

    def for_stream(self, stream_id: str, requested_account_id: str | None = None) -> StreamCredentials:
        with self._lock:
            secret, generation = self._read_locked()
        return _credentials_for(secret, stream_id, requested_account_id, generation)

    def refresh(self, stale: StreamCredentials) -> None:
        """Re-read the secret after a 401 (rotation): once, however many threads saw the same 401."""
        with self._lock:
            if self._generation == stale.generation:
                self._force_next = True
                self._read_locked()

    def _read_locked(self) -> tuple[dict[str, Any], int]:
        force, self._force_next = self._force_next, False
        try:
            secret = self._provider.get(self._secret_id, max_age=self._max_age, transform="json", force_fetch=force)
        except Exception as error:  # the provider wraps every AWS error (and bad JSON) in its own types
            # One rule for every configuration document (this secret, the alarm map): content that is wrong
            # is permanent until someone fixes it; a document that cannot be read is worth another attempt.
            if "Transform" in type(error).__name__:
                raise CredentialsUnavailable(
                    "invalid_credentials", "the credentials secret is not valid JSON"
                ) from None
            raise SecretUnreadable(f"credentials secret could not be read: {type(error).__name__}") from None
        if secret is not self._last_read:  # a cache hit returns the very same object
            self._last_read = secret
            self._generation += 1
        if not isinstance(secret, dict):
            raise CredentialsUnavailable("invalid_credentials", "the credentials secret is not a JSON object")
        return secret, self._generation


class SecretUnreadable(Exception):
    """Secrets Manager could not be read (throttled, unreachable, access denied): worth retrying later."""


def _credentials_for(
    secret: dict[str, Any], stream_id: str, requested_account_id: str | None, generation: int
) -> StreamCredentials:
    streams = secret.get("streams")
    override = streams.get(stream_id) if isinstance(streams, dict) else None
    merged = {**secret, **override} if isinstance(override, dict) else secret
    values = {name: merged.get(name) for name in ("clientId", "clientSecret", "accountId")}
    missing = [name for name, value in values.items() if not isinstance(value, str) or not value]
    client_id, client_secret, account_id = (str(value) for value in values.values())
    if missing:
        raise CredentialsUnavailable(
            "missing_credentials", f"no {', '.join(missing)} in the credentials secret for stream {stream_id}"
        )
    if requested_account_id is not None and requested_account_id != account_id:
        raise CredentialsUnavailable(
            "account_mismatch", f"accountId does not match the account configured for stream {stream_id}"
        )
    iid = merged.get("iid") if isinstance(override, dict) else None
    return StreamCredentials(
        client_id=client_id,
        client_secret=client_secret,
        account_id=account_id,
        iid=iid if isinstance(iid, str) and iid else stream_id,
        generation=generation,
    )


def mint_token(credentials: StreamCredentials, ttl_seconds: int, now: float | None = None) -> str:
    """HS256 JWT, fresh ``jti`` per call: accepted by apps with and without "Enforce JTI"."""
    issued_at = int(now if now is not None else time.time())
    claims = {
        "appId": credentials.client_id,
        "sub": credentials.client_id,
        "iat": issued_at,
        "exp": issued_at + min(ttl_seconds, 3600),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, credentials.client_secret, algorithm="HS256")


def auth_headers(credentials: StreamCredentials, ttl_seconds: int) -> dict[str, str]:
    return {
        "auth": mint_token(credentials, ttl_seconds),
        "iid": credentials.iid,
        "accountId": credentials.account_id,
    }
