"""Over 10,000 HubSpot deals sharing one hs_lastmodifieddate, at the real search cap.

HubSpot's search refuses to page past 10,000 results, and windowing by the timestamp alone loops
forever when more records than that share one timestamp. A mass update (a territory realignment,
an import) does exactly that. The connector's keyset pager walks (timestamp, id), so a full sync and
an incremental sync after such an update both end with the store equal to the org, within the page
bound. Real client over HTTPS; the sandbox keeps its production cap of 10,000.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from connectors.hubspot import HubSpotSource, settings
from connectors.sandbox.hubspot_api import SEARCH_CAP
from connectors.sandbox.server import SandboxServer
from connectors.store import make_engine
from tests.conftest import private_sandbox
from tests.connectors.stream_oracle import differences, expected_rows, stored_rows
from tests.stores import store_url

pytestmark = pytest.mark.integration
DEALS = 10_400


@pytest.fixture(scope="module")
def org(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    with private_sandbox(tmp_path_factory, "ten-thousand-ties", seed=29, deals=DEALS, owners=6, accounts=40,
                         calls_per_deal=0.0, emails_per_deal=0.0, meetings_per_deal=0.0, leads_per_deal=0.0,
                         cases_per_account=0.0, campaigns=0, products=5) as server:
        yield server


def _deals(rows: dict) -> dict:
    return {key: value for key, value in rows.items() if key[0] == "deal"}


def test_a_mass_update_of_over_ten_thousand_deals_is_synced_exactly(
        org: SandboxServer, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "SEARCH_RATE_LIMIT", 1000)  # the sandbox does not enforce it; keep the test fast
    assert org.counters["hubspot"].app.state.search_cap == SEARCH_CAP == 10_000
    engine = make_engine(store_url(tmp_path))
    with HubSpotSource.from_env(org.connection_env()) as source:
        source.extract(engine, "owners")
        source.extract(engine, "deals")
        assert not differences(_deals(stored_rows(engine, "hubspot")), _deals(expected_rows(org.state, "hubspot")))

        stamp = org.state.next_modstamp_ms()
        with org.state.transaction() as conn:  # one mass update: every live deal, one timestamp, new amounts
            conn.execute("UPDATE deals SET modified_ms = ?, amount = amount + 100 WHERE deleted = 0", (stamp,))
        tied = int(org.state.query("SELECT COUNT(*) FROM deals WHERE modified_ms = ?", (stamp,))[0][0])
        assert tied > 10_000

        before = source.api_calls
        result = source.extract(engine, "deals")
        calls = source.api_calls - before
    assert result.records == tied
    assert not differences(_deals(stored_rows(engine, "hubspot")), _deals(expected_rows(org.state, "hubspot")))
    # searches of 200, association reads of 1,000, one archive page; ~2% for the pager's tie steps
    minimum = math.ceil(tied / 200) + math.ceil(tied / 1000) + 1
    assert calls <= 1.05 * minimum, (calls, minimum)
