"""Each stream's mapper from documented HubSpot record shapes (all-string properties; no network)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from hubspot.crm.pipelines import PipelineStage
from hubspot.crm.properties import ModelProperty, Option

from connectors.hubspot import mappers, settings
from connectors.hubspot.mappers import Labels
from connectors.store import RECORD_MODELS

OWNER = "70000003"
UTC_ZONE = ZoneInfo("UTC")


def test_every_search_stream_has_a_mapper_into_a_canonical_table() -> None:
    assert set(mappers.MAPPERS) == set(settings.SEARCH_STREAMS)
    assert ("owners", *settings.SEARCH_STREAMS, "campaigns") == settings.STREAMS
    for stream, spec in settings.SEARCH_STREAMS.items():
        columns = set(RECORD_MODELS[spec.entity].__table__.columns.keys())  # type: ignore[attr-defined]
        row = mappers.MAPPERS[stream]({}, Labels())
        link = {spec.association[1]} if spec.association else set()
        common = {"source", "source_id", "modified_at", "is_deleted", "custom"}
        assert set(row) | link | common == columns, stream
        expected = "lastmodifieddate" if stream == "contacts" else "hs_lastmodifieddate"
        assert spec.cursor_property == expected
        assert spec.cursor_property in spec.read_properties() and "hs_object_id" in spec.read_properties()


def _property(name: str, *options: tuple[str, str]) -> ModelProperty:
    return ModelProperty(name=name, label=name, type="enumeration", field_type="select", group_name="g",
                    options=[Option(value=value, label=label, display_order=index, hidden=False)
                             for index, (value, label) in enumerate(options)])


def test_option_labels_come_from_the_properties_api() -> None:
    listing = [_property("type", ("PROSPECT", "Prospect"), ("CUSTOMER", "Customer")), _property("industry")]
    labels = Labels(options=mappers.options_of(listing, ("type",)))
    assert labels.option("type", "CUSTOMER") == "Customer"
    assert labels.option("type", "PARTNER") == "PARTNER"  # unknown to the portal: the value itself
    assert labels.option("type", "") is None and labels.option("industry", "X") == "X"


def test_company() -> None:
    labels = Labels(options={"type": {"CUSTOMER": "Customer", "PROSPECT": "Prospect"}})
    row = mappers.account_row({"name": "Acme", "country": "Germany", "industry": "Retail", "type": "CUSTOMER",
                               "hubspot_owner_id": OWNER, "createdate": "2025-03-01T23:30:00.000Z"}, labels)
    assert row == {"name": "Acme", "owner_id": OWNER, "country": "Germany", "industry": "Retail",
                   "account_type": "Customer", "created_date": date(2025, 3, 1)}


def test_deal_maps_stage_and_type_labels_and_percent_probability() -> None:
    won = mappers.stage_from_pipeline(PipelineStage(label="Closed Won", metadata={"isClosed": "true",
                                                                                  "probability": "1.0"}))
    labels = Labels({"closedwon": won}, {"dealtype": {"renewal": "Renewal"}, "lead_source": {"Web": "Web"}})
    row = mappers.deal_row({
        "dealname": "Renewal - account 3 #7", "amount": "12300.0", "dealstage": "closedwon", "dealtype": "renewal",
        "hs_deal_stage_probability": "0.2", "closedate": "2026-09-30T00:00:00.000Z",
        "createdate": "2026-08-01T23:59:59.000Z", "hubspot_owner_id": OWNER, "lead_source": "Web"}, labels)
    assert (row["stage"], row["deal_type"], row["lead_source"]) == ("Closed Won", "Renewal", "Web")
    assert row["is_closed"] and row["is_won"]
    assert row["probability"] == 20.0 and row["amount"] == 12300.0
    assert (row["created_date"], row["close_date"]) == (date(2026, 8, 1), date(2026, 9, 30))
    assert row["owner_id"] == OWNER


def test_line_item() -> None:
    row = mappers.line_item_row({"name": "Platform Pro", "hs_product_id": "5000003", "quantity": "3",
                                 "price": "1200.50", "amount": "3601.5", "createdate": "2026-01-02T00:00:00Z"},
                                Labels())
    assert row == {"product_id": "5000003", "product_name": "Platform Pro", "product_family": None,
                   "quantity": 3.0, "unit_price": 1200.5, "total_price": 3601.5, "created_date": date(2026, 1, 2)}


def test_call_duration_is_whole_seconds_and_direction_lower_case() -> None:
    row = mappers.call_row({"hs_call_duration": "1272999", "hs_timestamp": "2026-07-09T03:05:57.000Z",
                            "hs_call_title": "Call", "hs_call_disposition": "Connected",
                            "hs_call_direction": "INBOUND"}, Labels())
    assert (row["duration_seconds"], row["activity_date"]) == (1272, date(2026, 7, 9))
    assert (row["outcome"], row["kind"], row["direction"]) == ("Connected", "call", "inbound")


def test_email_direction_from_hs_email_direction() -> None:
    def direction(value: str | None) -> str | None:
        return mappers.email_row({"hs_email_direction": value}, Labels())["direction"]

    assert [direction(v) for v in ("EMAIL", "INCOMING_EMAIL", "FORWARDED_EMAIL", None)] == [
        "outbound", "inbound", "outbound", None]
    row = mappers.email_row({"hs_email_subject": "Re: pricing", "hs_timestamp": "1792703003456",
                             "hubspot_owner_id": OWNER}, Labels())
    assert row["kind"] == "email" and row["subject"] == "Re: pricing" and row["activity_date"] == date(2026, 10, 22)
    assert row["duration_seconds"] is None and row["outcome"] is None


def test_meeting_duration_from_start_and_end_and_outcome_label() -> None:
    labels = Labels(options={"hs_meeting_outcome": {"NO_SHOW": "No show"}})
    row = mappers.meeting_row({"hs_meeting_title": "Demo", "hs_timestamp": "2026-05-04T23:30:00.000Z",
                               "hs_meeting_start_time": "2026-05-04T23:30:00.000Z",
                               "hs_meeting_end_time": "2026-05-05T00:15:00.000Z", "hs_meeting_outcome": "NO_SHOW",
                               "hubspot_owner_id": OWNER}, labels)
    assert row == {"kind": "meeting", "subject": "Demo", "owner_id": OWNER, "activity_date": date(2026, 5, 4),
                   "duration_seconds": 45 * 60, "outcome": "No show", "direction": None}
    assert mappers.meeting_row({"hs_timestamp": "2026-05-04T10:00:00Z"}, labels)["duration_seconds"] is None


def test_contact_name_and_lifecycle_label() -> None:
    labels = Labels(options={"lifecyclestage": {"customer": "Customer"}})
    row = mappers.contact_row({"firstname": "Ada", "lastname": "Lovelace", "email": "ada@example.com",
                               "lifecyclestage": "customer", "lead_source": "Web", "hubspot_owner_id": OWNER,
                               "createdate": "2025-12-31T23:59:59.999Z"}, labels)
    assert row == {"name": "Ada Lovelace", "email": "ada@example.com", "owner_id": OWNER, "lead_source": "Web",
                   "lifecycle_stage": "Customer", "created_date": date(2025, 12, 31)}
    assert mappers.contact_row({"lastname": "Solo"}, labels)["name"] == "Solo"


def test_ticket_status_and_closed_from_the_pipeline_stage() -> None:
    stages = {stage_id: mappers.stage_from_pipeline(PipelineStage(label=label, metadata={"ticketState": state}))
              for stage_id, label, state in (("1", "New", "OPEN"), ("4", "Closed", "CLOSED"))}
    labels = Labels(stages, {"hs_ticket_priority": {"HIGH": "High"}, "source_type": {"FORM": "Web form"}})
    row = mappers.case_row({"subject": "Login fails", "hs_pipeline": "0", "hs_pipeline_stage": "4",
                            "hs_ticket_priority": "HIGH", "source_type": "FORM", "hubspot_owner_id": OWNER,
                            "createdate": "2026-03-01T08:00:00.000Z", "closed_date": "2026-03-02T07:59:00.000Z"},
                           labels)
    assert row == {"subject": "Login fails", "owner_id": OWNER, "status": "Closed", "priority": "High",
                   "origin": "Web form", "is_closed": True, "created_at": datetime(2026, 3, 1, 8, tzinfo=UTC),
                   "closed_at": datetime(2026, 3, 2, 7, 59, tzinfo=UTC),
                   "created_date": date(2026, 3, 1), "closed_date": date(2026, 3, 2)}
    open_row = mappers.case_row({"hs_pipeline_stage": "1", "createdate": "2026-03-01T08:00:00Z"}, labels)
    assert (open_row["status"], open_row["is_closed"], open_row["closed_at"]) == ("New", False, None)


LEAD_STAGES = {  # GET /crm/v3/pipelines/leads: stage id -> (label, metadata)
    "new-stage-id": ("New", {"leadState": "OPEN"}), "attempting-stage-id": ("Attempting", {"leadState": "OPEN"}),
    "qualified-stage-id": ("Qualified", {"leadState": "CLOSED", "isQualified": "true"}),
    "unqualified-stage-id": ("Disqualified", {"leadState": "CLOSED"}),
}


def _lead_labels() -> Labels:
    stages = {stage_id: mappers.stage_from_pipeline(PipelineStage(label=label, metadata=metadata))
              for stage_id, (label, metadata) in LEAD_STAGES.items()}
    return Labels(stages, {"lead_source": {"Web": "Web", "Partner Referral": "Partner Referral"}})


def test_lead_status_is_the_stage_label_and_converted_the_qualified_stage() -> None:
    labels = _lead_labels()
    assert [(s.label, s.is_closed, s.is_qualified) for s in labels.stages.values()] == [
        ("New", False, False), ("Attempting", False, False), ("Qualified", True, True), ("Disqualified", True, False)]
    row = mappers.lead_row({
        "hs_lead_name": "Ada Lovelace", "email": "ada@example.com", "company": "Acme", "country": "Germany",
        "hs_pipeline": "lead-pipeline-id", "hs_pipeline_stage": "qualified-stage-id", "lead_source": "Web",
        "hs_date_entered_qualified_stage": "1792703003456", "hubspot_owner_id": OWNER,
        "hs_createdate": "2026-01-31T23:59:59.999Z"}, labels)
    assert row == {"name": "Ada Lovelace", "email": "ada@example.com", "company": "Acme", "country": "Germany",
                   "owner_id": OWNER, "lead_source": "Web", "status": "Qualified", "is_converted": True,
                   "converted_date": date(2026, 10, 22), "converted_contact_id": None,
                   "created_date": date(2026, 1, 31)}
    open_lead = mappers.lead_row({"hs_lead_name": "Bo", "hs_pipeline_stage": "attempting-stage-id", "email": "",
                                  "hs_date_entered_qualified_stage": "", "hs_createdate": "1792703003456"}, labels)
    assert (open_lead["status"], open_lead["is_converted"], open_lead["converted_date"]) == ("Attempting", False, None)
    assert (open_lead["email"], open_lead["created_date"]) == (None, date(2026, 10, 22))
    lost = mappers.lead_row({"hs_pipeline_stage": "unqualified-stage-id"}, labels)
    assert (lost["status"], lost["is_converted"]) == ("Disqualified", False)


def test_campaign_from_the_marketing_api_json() -> None:
    record = {"id": "6f1c2a1e-5a4b-5c3d-9e8f-0123456789ab", "createdAt": "2026-02-28T23:30:00.000Z",
              "updatedAt": "2026-03-05T10:00:00.123Z", "properties": {
                  "hs_name": "Spring webinar", "hs_start_date": "2026-03-01", "hs_end_date": "2026-03-31",
                  "hs_campaign_status": "in_progress", "hs_budget_items_sum_amount": "5000",
                  "hs_spend_items_sum_amount": "4200.5", "hs_owner": OWNER, "campaign_type": "Webinar",
                  "expected_revenue": "60000"}}
    assert mappers.campaign_row(record, UTC_ZONE) == {
        "source": "hubspot", "source_id": record["id"], "name": "Spring webinar", "campaign_type": "Webinar",
        "status": "In Progress", "is_active": True, "owner_id": OWNER, "start_date": date(2026, 3, 1),
        "end_date": date(2026, 3, 31), "budgeted_cost": 5000.0, "actual_cost": 4200.5, "expected_revenue": 60000.0,
        "created_date": date(2026, 2, 28), "modified_at": datetime(2026, 3, 5, 10, 0, 0, 123000, tzinfo=UTC),
        "is_deleted": False}
    tokyo = mappers.campaign_row(record, ZoneInfo("Asia/Tokyo"))  # created 08:30 on 1 March there
    assert (tokyo["created_date"], tokyo["start_date"]) == (date(2026, 3, 1), date(2026, 3, 1))
    statuses = {value: mappers.campaign_row({"id": "x", "properties": {"hs_campaign_status": value}}, UTC_ZONE)
                for value in ("planned", "in_progress", "completed", "paused", "", "archived_someday")}
    assert {value: (row["status"], row["is_active"]) for value, row in statuses.items()} == {
        "planned": ("Planned", True), "in_progress": ("In Progress", True), "completed": ("Completed", False),
        "paused": ("Paused", False), "": (None, False), "archived_someday": ("archived_someday", False)}
    empty = mappers.campaign_row({"id": "y", "properties": {"hs_start_date": "", "expected_revenue": ""}}, UTC_ZONE)
    assert (empty["start_date"], empty["expected_revenue"], empty["created_date"]) == (None, None, None)
    columns = set(RECORD_MODELS["campaign"].__table__.columns.keys())  # type: ignore[attr-defined]
    assert set(mappers.campaign_row(record, UTC_ZONE)) | {"custom"} == columns


def test_custom_values_are_the_property_strings() -> None:
    props = {"region": "EMEA", "tier": "", "other": "x"}
    assert mappers.custom_values(props, {"region": "region", "tier": "tier", "gone": "gone"}) == {
        "region": "EMEA", "tier": None, "gone": None}
