"""The sandbox HubSpot portal's Leads object (`leads`, type id `0-136`) and its lead pipeline.

Every row of the logical `leads` table is a lead (the same rows are also the portal's contacts, so
lead N and contact N share a number: HS_OFFSET["leads"] + N and HS_OFFSET["contacts"] + N). The
stage follows the row's status; `hs_date_entered_qualified_stage` is when a converted lead was
qualified. `lead_source`, `company`, `country` and `email` are the portal's custom properties (leads
have no such HubSpot-defined ones). Associations: leads -> companies (account_id) and leads ->
contacts (the contact with the same number), in hubspot_search.ASSOCIATION_LINKS.
"""

from __future__ import annotations

from typing import Any

from connectors.sandbox.hubspot_objects import (
    ObjectType,
    PropertyDef,
    lead_source_prop,
    owner_prop,
    pipeline_json,
    pipelines_of,
    stage_json,
    system_properties,
)
from connectors.sandbox.ids import HS_OFFSET

LEAD_TYPE_ID = "0-136"
LEAD_PIPELINE_ID, LEAD_PIPELINE_LABEL = "lead-pipeline-id", "Lead pipeline"
# The leads table's status -> (stage id, label, leadState) of the lead pipeline, in pipeline order.
LEAD_STAGES = {
    "Open - Not Contacted": ("new-stage-id", "New", "OPEN"),
    "Working - Contacted": ("attempting-stage-id", "Attempting", "OPEN"),
    "Closed - Converted": ("qualified-stage-id", "Qualified", "CLOSED"),
    "Closed - Not Converted": ("unqualified-stage-id", "Disqualified", "CLOSED"),
}
QUALIFIED_STAGE_ID = LEAD_STAGES["Closed - Converted"][0]
GROUP = "leadinformation"


def _lead_props() -> list[PropertyDef]:
    arms = " ".join(f"WHEN '{status}' THEN '{stage}'" for status, (stage, _label, _state) in LEAD_STAGES.items())
    return [
        PropertyDef("hs_lead_name", "Lead name", sql="trim(coalesce(first_name, '') || ' ' || coalesce(last_name, ''))",
                    group=GROUP),
        PropertyDef("hs_pipeline", "Pipeline", "enumeration", "select", f"'{LEAD_PIPELINE_ID}'",
                    options=((LEAD_PIPELINE_ID, LEAD_PIPELINE_LABEL),), group=GROUP),
        PropertyDef("hs_pipeline_stage", "Lead status", "enumeration", "select", f"CASE status {arms} END",
                    options=tuple((stage, label) for stage, label, _state in LEAD_STAGES.values()), group=GROUP),
        PropertyDef("hs_date_entered_qualified_stage", "Date entered 'Qualified (Lead pipeline)'", "datetime",
                    "date", "converted_ms", group=GROUP),
        lead_source_prop(GROUP),
        PropertyDef("company", "Company", sql="company", hubspot_defined=False, group=GROUP),
        PropertyDef("country", "Country", sql="country", hubspot_defined=False, group=GROUP),
        PropertyDef("email", "Email", sql="email", hubspot_defined=False, group=GROUP),
        owner_prop(),
        *system_properties(HS_OFFSET["leads"], "created_ms", "modified_ms", created_name="hs_createdate"),
    ]


def lead_type() -> ObjectType:
    """The Leads object over the leads table (every row; deleted rows are archived leads)."""
    props = _lead_props()
    return ObjectType("leads", LEAD_TYPE_ID, "leads", "deleted = 0", (), HS_OFFSET["leads"], "created_ms",
                      "modified_ms", {prop.name: prop for prop in props},
                      ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"), ("hs_lead_name",))


def lead_pipelines() -> list[dict[str, Any]]:
    """GET /crm/v3/pipelines/leads: the one lead pipeline; only the qualified stage has isQualified."""
    stages = []
    for order, (stage, label, state) in enumerate(LEAD_STAGES.values()):
        metadata = {"leadState": state}
        if stage == QUALIFIED_STAGE_ID:
            metadata["isQualified"] = "true"
        stages.append(stage_json(stage, label, order, metadata))
    return [pipeline_json(LEAD_PIPELINE_ID, LEAD_PIPELINE_LABEL, stages)]


def portal_pipelines(object_name: str) -> list[dict[str, Any]]:
    """The pipelines of any object type: deals' "default", tickets' "0", leads' "lead-pipeline-id"."""
    return lead_pipelines() if object_name == "leads" else pipelines_of(object_name)
