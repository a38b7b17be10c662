"""Logging in and watching the org's API allocation: credentials from the environment, the
refresh-token grant, and the response hooks that count calls and read Sforce-Limit-Info.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from connectors.errors import ConnectorConfigError, ConnectorError
from connectors.ratelimit import CallCount
from connectors.salesforce.helpers import parse_limit_info, redact, transport_error, validate_min_quota_share
from connectors.salesforce.settings import MIN_QUOTA_SHARE_ENV

# Each way to authenticate, with the variables it needs (checked in this order).
CREDENTIAL_SETS = {
    "session": ("SALESFORCE_INSTANCE_URL", "SALESFORCE_ACCESS_TOKEN"),
    "password": ("SALESFORCE_USERNAME", "SALESFORCE_PASSWORD", "SALESFORCE_SECURITY_TOKEN"),
    "refresh_token": ("SALESFORCE_CLIENT_ID", "SALESFORCE_CLIENT_SECRET", "SALESFORCE_REFRESH_TOKEN"),
    "client_credentials": ("SALESFORCE_CLIENT_ID", "SALESFORCE_CLIENT_SECRET"),
}
SECRET_VARIABLES = ("SALESFORCE_ACCESS_TOKEN", "SALESFORCE_PASSWORD", "SALESFORCE_SECURITY_TOKEN",
                    "SALESFORCE_CLIENT_SECRET", "SALESFORCE_REFRESH_TOKEN")


class CallCounter(CallCount):
    """A requests response hook counting every HTTP call this source makes (login included); the hook
    runs in the thread that sent the request, so a stream extracted in a thread counts its own calls."""

    def __call__(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> requests.Response:
        self.add()
        return response


class QuotaReserveReached(ConnectorError):
    """The org's daily API allocation is down to the reserve okr-sync leaves alone: stopped cleanly."""


class QuotaGuard:
    """A response hook reading `Sforce-Limit-Info: api-usage=USED/MAX`; check() refuses the next
    request once MAX - USED is below `share` of MAX. Before the first response nothing is known,
    so the first request always goes out."""

    def __init__(self, share: float) -> None:
        self.share = validate_min_quota_share(share)
        self.used: int | None = None
        self.maximum: int | None = None

    def __call__(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> requests.Response:
        usage = parse_limit_info(response.headers.get("Sforce-Limit-Info"))
        if usage is not None:
            self.used, self.maximum = usage
        return response

    @property
    def remaining(self) -> int | None:
        if self.used is None or self.maximum is None:
            return None
        return max(self.maximum - self.used, 0)

    def check(self, operation: str) -> None:
        remaining = self.remaining
        if remaining is None or not self.maximum or remaining >= self.share * self.maximum:
            return
        raise QuotaReserveReached(
            f"Salesforce {operation} stopped before its next request: only {remaining} of the org's "
            f"{self.maximum} daily API requests are left ({remaining / self.maximum:.1%}), below the "
            f"{self.share:.0%} reserve okr-sync leaves for others ({MIN_QUOTA_SHARE_ENV}). Everything "
            "stored so far is kept: the next run resumes from the last committed page once the rolling "
            "24-hour allocation has room again.")


class RefreshTokenLogin:
    """OAuth 2.0 refresh-token grant: POST {domain}/services/oauth2/token for an access token.

    Holds the client secret and refresh token; neither ever appears in a message or repr.
    """

    def __init__(self, session: requests.Session, domain: str, client_id: str, client_secret: str,
                 refresh_token: str) -> None:
        self._session = session
        self.token_url = f"https://{domain}.salesforce.com/services/oauth2/token"
        self._form = {"grant_type": "refresh_token", "client_id": client_id, "client_secret": client_secret,
                      "refresh_token": refresh_token}
        self.secrets = (client_secret, refresh_token)

    def __repr__(self) -> str:
        return f"RefreshTokenLogin({self.token_url!r})"

    def __call__(self) -> tuple[str, str]:
        """(access token, instance URL), or a ConnectorError without any secret."""
        try:
            response = self._session.post(self.token_url, data=self._form,
                                          headers={"Accept": "application/json"})
        except requests.RequestException as error:
            raise transport_error(error, "refresh-token login", self.secrets) from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        token, instance_url = body.get("access_token"), body.get("instance_url")
        if response.status_code != 200 or not token or not instance_url:
            code = body.get("error") or f"HTTP {response.status_code}"
            detail = body.get("error_description") or "no access token in the answer"
            raise ConnectorError(redact(
                f"Salesforce login failed ({code}): {detail} (refresh-token grant at {self.token_url}; "
                "check SALESFORCE_CLIENT_ID, SALESFORCE_CLIENT_SECRET and SALESFORCE_REFRESH_TOKEN)",
                self.secrets))
        return str(token), str(instance_url)


def credential_method(values: Mapping[str, str]) -> str:
    """The first complete set of credentials, or a ConnectorConfigError naming what is missing."""
    for method, names in CREDENTIAL_SETS.items():
        if all(values[name] for name in names):
            return method
    partial = [(method, [name for name in names if not values[name]])
               for method, names in CREDENTIAL_SETS.items() if any(values[name] for name in names)]
    if partial:
        details = "; ".join(f"for the {method.replace('_', ' ')} login also set {', '.join(missing)}"
                            for method, missing in partial)
        raise ConnectorConfigError(f"Salesforce credentials are incomplete: {details}.")
    options = " or ".join("(" + " + ".join(names) + ")" for names in CREDENTIAL_SETS.values())
    raise ConnectorConfigError(f"No Salesforce credentials in the environment: set {options}.")
