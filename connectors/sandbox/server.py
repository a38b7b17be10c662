"""Serve the sandbox org as a Salesforce and a HubSpot API over HTTPS on 127.0.0.1.

Each CRM face gets its own port, as two real systems would. The CA and server certificate
are generated once (trustme) and kept in the data directory, so a client configured with
the CA bundle keeps working across restarts of `okr-sync sandbox serve`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from connectors.sandbox.bad_data import BadDataKind, BadDataMiddleware, BadDataRule
from connectors.sandbox.faults import FaultMiddleware, FaultPlan
from connectors.sandbox.generator import OrgSpec
from connectors.sandbox.holds import Hold, HoldMiddleware, Predicate, ServedRecords
from connectors.sandbox.rejections import RejectionKind, RejectionRule
from connectors.sandbox.request_log import RequestLog
from connectors.sandbox.state import SandboxState, open_sandbox

HOST = "127.0.0.1"
CRMS = ("salesforce", "hubspot")


class CallCounter:
    """ASGI middleware counting every API request by (method, path) so tests can count calls.

    `app` is the CRM face itself (tests reach its `.state`); requests go through `inner` when given
    (the fault middleware wrapped around the face), so faulted requests are counted too.
    """

    def __init__(self, app: ASGIApp, inner: ASGIApp | None = None) -> None:
        self.app = app
        self._next = inner or app
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            with self._lock:
                self.counts[f"{scope['method']} {scope['path']}"] += 1
        await self._next(scope, receive, send)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()


@dataclass(frozen=True)
class Certificates:
    ca_path: Path
    cert_path: Path
    key_path: Path


def ensure_certificates(data_dir: Path) -> Certificates:
    """Create (once) a local CA and a certificate for 127.0.0.1 / localhost signed by it."""
    tls_dir = data_dir / "tls"
    certs = Certificates(tls_dir / "ca.pem", tls_dir / "server.pem", tls_dir / "server-key.pem")
    if all(path.exists() for path in (certs.ca_path, certs.cert_path, certs.key_path)):
        return certs
    tls_dir.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="okr-sync sandbox CA")
    leaf = ca.issue_cert(HOST, "localhost")
    ca.cert_pem.write_to_path(str(certs.ca_path))
    leaf.private_key_pem.write_to_path(str(certs.key_path))
    with certs.cert_path.open("wb") as handle:
        for blob in leaf.cert_chain_pems:
            handle.write(blob.bytes())
    certs.key_path.chmod(0o600)
    return certs


class _ThreadedServer:
    """One uvicorn server on an already-bound socket, run in a daemon thread."""

    def __init__(self, app: ASGIApp, certs: Certificates, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((HOST, port))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, ssl_certfile=str(certs.cert_path), ssl_keyfile=str(certs.key_path),
                                log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name=f"sandbox-{self.port}", daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox server on port {self.port} failed to start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.force_exit = True  # do not wait for idle keep-alive clients
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


class SandboxServer:
    """Both CRM faces of one sandbox org. Use as a context manager or call start()/stop()."""

    def __init__(self, data_dir: Path, spec: OrgSpec | None = None,
                 salesforce_port: int = 0, hubspot_port: int = 0, time_zone: str | None = None,
                 *, hubspot_objects: bool = True, token: str | None = None) -> None:
        """`spec`: the org to generate on first use; `time_zone`: the org's (see open_sandbox);
        `hubspot_objects`: the HubSpot portal has okr-sync's custom objects from the start (False:
        a bare portal, to test `okr-sync setup hubspot`); `token`: the access token both faces hand
        out and accept from now on (default: the org's own random one), e.g. a known secret."""
        from connectors.sandbox import hubspot_api, salesforce_activities, salesforce_api

        self.data_dir = Path(data_dir)
        self.state: SandboxState = open_sandbox(self.data_dir, spec, time_zone)
        if token is not None:
            self.state.set_meta("token", token)
        self.certs = ensure_certificates(self.data_dir)
        apps = {"salesforce": salesforce_api.create_app(self.state),
                "hubspot": hubspot_api.create_app(self.state, hubspot_objects)}
        salesforce_activities.register(apps["salesforce"], self.state)  # tasks and posts (okr-sync's alerts)
        self.bad_data = {crm: BadDataMiddleware(app, crm) for crm, app in apps.items()}  # bad_data.py
        self.faults = {crm: FaultMiddleware(self.bad_data[crm], crm) for crm in apps}
        self.holds = {crm: HoldMiddleware(self.faults[crm]) for crm in apps}  # connectors.sandbox.holds
        self.counters = {crm: CallCounter(app, self.holds[crm]) for crm, app in apps.items()}
        self.request_log = RequestLog()  # records what clients sent while started (request_log.py)
        self._servers = {
            crm: _ThreadedServer(self.request_log.middleware(crm, self.counters[crm]), self.certs, port)
            for crm, port in (("salesforce", salesforce_port), ("hubspot", hubspot_port))
        }

    @property
    def token(self) -> str:
        return self.state.token

    @property
    def ca_path(self) -> Path:
        return self.certs.ca_path

    @property
    def salesforce_url(self) -> str:
        return f"https://{HOST}:{self._servers['salesforce'].port}"

    @property
    def hubspot_url(self) -> str:
        return f"https://{HOST}:{self._servers['hubspot'].port}"

    def calls(self, crm: str) -> int:
        """API requests served by one CRM face since start (or the last reset)."""
        return self.counters[crm].total

    def reject(self, crm: str, obj: str, key_pattern: str, kind: RejectionKind = "validation",
               message: str = "Rejected by a validation rule") -> None:
        """Refuse writes of the records of `obj` whose unique key matches `key_pattern` (fnmatch),
        as that CRM refuses single records (connectors.sandbox.rejections); `clear_rejections` ends it."""
        self.state.rejections.add(RejectionRule(crm, obj, key_pattern, kind, message))

    def clear_rejections(self, crm: str | None = None) -> None:
        self.state.rejections.clear(crm)

    def set_faults(self, crm: str, plan: FaultPlan | None) -> None:
        """Install a fault plan on one CRM face (see connectors.sandbox.faults); None: clean service."""
        if crm not in self.faults:
            raise ValueError(f"unknown CRM face: {crm} (expected one of {', '.join(CRMS)})")
        self.faults[crm].set_plan(plan)

    def hold(self, crm: str, after_requests: int = 0, on: Predicate | None = None) -> Hold:
        """Keep the request after the next `after_requests` ones (of those matching `on`) unanswered until
        the returned hold is released: a test stops its client there (connectors.sandbox.holds)."""
        return self.holds[crm].hold(after_requests, on)

    def count_served(self, crm: str) -> ServedRecords:
        """Tally, from now on, the records each read of `crm` answers with (connectors.sandbox.holds)."""
        return self.holds[crm].count_served()

    def serve_bad_data(self, crm: str, record_id: str, kind: BadDataKind, field: str | None = None,
                       value: Any = None) -> None:
        """Serve the record `record_id` of `crm` wrong in every answer holding it (connectors.sandbox.bad_data):
        "malformed" (the answer is not JSON), "value" (`field` served as `value`), "missing" (no `field`)."""
        self.bad_data[crm].add(BadDataRule(crm, record_id, kind, field, value))

    def clear_bad_data(self, crm: str | None = None) -> None:
        """Serve the records right again (the data was fixed in the CRM)."""
        for name in (crm,) if crm else CRMS:
            self.bad_data[name].clear()

    def reset_calls(self) -> None:
        for counter in self.counters.values():
            counter.reset()

    def connection_env(self) -> dict[str, str]:
        """The environment variables that point okr-sync's connectors at this sandbox."""
        return {
            "SALESFORCE_INSTANCE_URL": self.salesforce_url,
            "SALESFORCE_ACCESS_TOKEN": self.token,
            "HUBSPOT_HOST": self.hubspot_url,
            "HUBSPOT_ACCESS_TOKEN": self.token,
            "OKR_SYNC_CA_BUNDLE": str(self.ca_path),
        }

    def start(self) -> SandboxServer:
        for server in self._servers.values():
            server.start()
        return self

    def stop(self) -> None:
        for holds in self.holds.values():
            holds.release_all()
        for server in self._servers.values():
            server.stop()
        self.state.close()

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
