"""Replay fixtures: the connectors point at the ports the cassettes were recorded on; nothing listens there."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.connectors.recorded.record import REPLAY_ENV


@pytest.fixture
def replay_env(tmp_path: Path) -> dict[str, str]:
    """The recording's URLs, a dummy token and a dummy CA bundle (HubSpotSource checks it is a file;
    vcrpy answers before any TLS handshake, so its content never matters)."""
    ca_bundle = tmp_path / "dummy-ca.pem"
    ca_bundle.write_text("not a certificate: replay opens no socket\n")
    return {**REPLAY_ENV, "OKR_SYNC_CA_BUNDLE": str(ca_bundle)}
