"""Credentials and tokens: what the secret says per stream, how often it is read, and the JWT's claims."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import jwt
import pytest
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from stop_campaign.adapters.credentials import (
    CredentialStore,
    CredentialsUnavailable,
    SecretUnreadable,
    StreamCredentials,
    auth_headers,
    mint_token,
)

SECRET = {
    "clientId": "cs-top",
    "clientSecret": "top-secret-value-0123456789abcdef0123",
    "accountId": "acc-top",
    "streams": {"st-2": {"clientId": "cs-two", "clientSecret": "two-secret-0123456789abcdef0123456", "iid": "iid-2"}},
}


class CountingSecrets(SecretsProvider):
    """A Powertools provider whose backend is a dict: ``_get`` is the provider's extension point."""

    def __init__(self, value: Any) -> None:
        super().__init__(boto3_client=object())  # never called: _get is overridden
        self.value = value
        self.reads = 0
        self.fail = False

    def _get(self, name: str, **_: Any) -> str:
        import json

        time.sleep(0.01)  # a real read takes time; lets concurrent callers pile up
        self.reads += 1
        if self.fail:
            raise GetParameterError("ThrottlingException")
        return json.dumps(self.value)


def test_top_level_credentials_serve_every_stream_and_iid_defaults_to_the_stream():
    store = CredentialStore("secret", 300, CountingSecrets(SECRET))
    credentials = store.for_stream("st-1")
    assert (credentials.client_id, credentials.account_id, credentials.iid) == ("cs-top", "acc-top", "st-1")


def test_a_stream_entry_overrides_the_top_level():
    credentials = CredentialStore("secret", 300, CountingSecrets(SECRET)).for_stream("st-2")
    assert (credentials.client_id, credentials.account_id, credentials.iid) == ("cs-two", "acc-top", "iid-2")


def test_a_request_account_must_match():
    store = CredentialStore("secret", 300, CountingSecrets(SECRET))
    assert store.for_stream("st-1", "acc-top").account_id == "acc-top"
    with pytest.raises(CredentialsUnavailable) as raised:
        store.for_stream("st-1", "acc-other")
    assert raised.value.code == "account_mismatch"


def test_missing_credentials_name_what_is_missing_and_never_the_values():
    store = CredentialStore("secret", 300, CountingSecrets({"clientId": "cs-1", "clientSecret": "s3cr3t-value"}))
    with pytest.raises(CredentialsUnavailable, match="no accountId") as raised:
        store.for_stream("st-1")
    assert "s3cr3t-value" not in str(raised.value)


def test_the_secret_is_read_once_for_a_whole_cold_batch():
    provider = CountingSecrets(SECRET)
    store = CredentialStore("secret", 300, provider)
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda _: store.for_stream("st-1"), range(20)))
    assert provider.reads == 1


def test_a_401_forces_exactly_one_re_read_however_many_threads_saw_it():
    provider = CountingSecrets(SECRET)
    store = CredentialStore("secret", 300, provider)
    stale = store.for_stream("st-1")
    provider.value = {**SECRET, "clientSecret": "rotated-secret-0123456789abcdef012"}
    barrier = threading.Barrier(8)

    def saw_401(_: int) -> StreamCredentials:
        barrier.wait()
        store.refresh(stale)
        return store.for_stream("st-1")

    with ThreadPoolExecutor(8) as pool:
        fresh = list(pool.map(saw_401, range(8)))
    assert provider.reads == 2
    assert {credentials.client_secret for credentials in fresh} == {"rotated-secret-0123456789abcdef012"}


def test_an_unreadable_secret_is_retryable_and_says_why_without_values():
    provider = CountingSecrets(SECRET)
    provider.fail = True
    with pytest.raises(SecretUnreadable, match="GetParameterError"):
        CredentialStore("secret", 300, provider).for_stream("st-1")


class RawSecrets(CountingSecrets):
    def _get(self, name: str, **_: Any) -> str:
        return str(self.value)


@pytest.mark.parametrize("raw", ["not json {", "[1, 2]", '"a string"'])
def test_a_secret_whose_content_is_wrong_is_rejected_like_a_broken_alarm_map(raw):
    """Content that is wrong stays wrong until fixed: rejected (dead letter, redrive later), not retried."""
    with pytest.raises(CredentialsUnavailable, match="credentials secret is not") as raised:
        CredentialStore("secret", 300, RawSecrets(raw)).for_stream("st-1")
    assert raised.value.code == "invalid_credentials"


def test_credentials_never_show_the_secret_in_their_repr():
    credentials = CredentialStore("secret", 300, CountingSecrets(SECRET)).for_stream("st-1")
    assert SECRET["clientSecret"] not in repr(credentials)


CREDENTIALS = StreamCredentials("cs-app", "app-secret-0123456789abcdef0123456789", "acc-1", "st-1", 1)


def test_token_is_hs256_signed_with_the_client_secret_and_has_the_claims_kore_reads():
    token = mint_token(CREDENTIALS, ttl_seconds=300, now=1_795_860_000)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, CREDENTIALS.client_secret, algorithms=["HS256"], options={"verify_exp": False})
    assert claims["appId"] == claims["sub"] == "cs-app"
    assert (claims["iat"], claims["exp"]) == (1_795_860_000, 1_795_860_300)
    assert len(claims["jti"]) == 32


def test_every_token_has_a_fresh_jti_and_never_lives_over_an_hour():
    tokens = [mint_token(CREDENTIALS, ttl_seconds=86_400) for _ in range(50)]
    claims = [jwt.decode(t, CREDENTIALS.client_secret, algorithms=["HS256"]) for t in tokens]
    assert len({c["jti"] for c in claims}) == 50
    assert all(c["exp"] - c["iat"] <= 3600 for c in claims)


def test_auth_headers():
    headers = auth_headers(CREDENTIALS, 300)
    assert set(headers) == {"auth", "iid", "accountId"}
    assert (headers["iid"], headers["accountId"]) == ("st-1", "acc-1")
