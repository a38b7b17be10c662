"""Which certificate authorities a connector trusts: $OKR_SYNC_CA_BUNDLE, read the same way by both.

A company proxy that re-signs TLS (or the bundled sandbox) needs its CA trusted. A path that is not
a file is refused before any call, naming the variable, rather than surfacing later as a TLS error
on the first request.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from connectors.errors import ConnectorConfigError

CA_BUNDLE_ENV = "OKR_SYNC_CA_BUNDLE"


def ca_bundle_from_env(env: Mapping[str, str]) -> str | None:
    """The CA bundle file named by $OKR_SYNC_CA_BUNDLE (None when unset or empty: the system's CAs)."""
    path = (env.get(CA_BUNDLE_ENV) or "").strip() or None
    if path and not Path(path).is_file():
        raise ConnectorConfigError(f"{CA_BUNDLE_ENV} points to {path!r}, which is not a file")
    return path
