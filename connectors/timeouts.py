"""How long a connector waits for a CRM: $OKR_SYNC_HTTP_TIMEOUT_SECONDS, the read timeout of every request.

A request whose answer does not come within the read timeout fails as a transient error (retried
like a dropped connection, then resumed by the next run): without one, a CRM that never answers
would hold the nightly run forever. Each connector has its own default (settings.REQUEST_TIMEOUT);
the variable sets the read timeout of both, and the connect timeout to the smaller of it and 10 s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from connectors.errors import ConnectorConfigError

TIMEOUT_ENV = "OKR_SYNC_HTTP_TIMEOUT_SECONDS"
CONNECT_SECONDS = 10.0

Timeout = tuple[float, float]  # (connect, read) seconds, as requests and urllib3 take it


def timeout_from_env(env: Mapping[str, str], default: Timeout) -> Timeout:
    """(connect, read) seconds from $OKR_SYNC_HTTP_TIMEOUT_SECONDS; unset or empty gives `default`."""
    text = (env.get(TIMEOUT_ENV) or "").strip()
    if not text:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConnectorConfigError(f"{TIMEOUT_ENV} must be a positive number of seconds (e.g. 60), got {text!r}")
    return (min(CONNECT_SECONDS, seconds), seconds)
