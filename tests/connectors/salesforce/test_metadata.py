"""The shipped DX metadata, the sandbox's describe and the connector's field tables agree."""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from connectors.salesforce import SalesforceSource
from connectors.salesforce.settings import (
    EXTERNAL_ID,
    KR_FIELDS,
    KR_OBJECT,
    KR_TEXT_LENGTHS,
    NAME_LENGTH,
    NUMBER_DIGITS,
    OKR_OBJECT_SPECS,
    SYNCED_FIELD,
)
from connectors.salesforce.setup_check import expected_fields, object_problems
from connectors.sandbox.server import SandboxServer

METADATA = Path(__file__).parents[3] / "connectors" / "salesforce" / "metadata"
NS = {"md": "http://soap.sforce.com/2006/04/metadata"}
DESCRIBE_TYPE = {"Text": "string", "Number": "double", "DateTime": "datetime", "Date": "date",
                 "Lookup": "reference", "Checkbox": "boolean"}
SPECS = list(OKR_OBJECT_SPECS.values())


def field_files(sobject: str) -> dict[str, ElementTree.Element]:
    return {path.name.removesuffix(".field-meta.xml"): ElementTree.parse(path).getroot()
            for path in (METADATA / "objects" / sobject / "fields").glob("*.field-meta.xml")}


def text(element: ElementTree.Element, tag: str) -> str | None:
    found = element.find(f"md:{tag}", NS)
    return None if found is None else found.text


@pytest.fixture(scope="module")
def describes(sandbox: SandboxServer) -> dict[str, dict[str, Any]]:
    with SalesforceSource.from_env(sandbox.connection_env()) as source:
        found = {spec.name: source.client.restful(f"sobjects/{spec.name}/describe") for spec in SPECS}
    gc.collect()
    return found


def test_the_three_objects_are_shipped_and_nothing_else() -> None:
    # besides them, Activity holds the alert key field of tasks (tests/connectors/test_alerts.py checks it)
    assert sorted(path.name for path in (METADATA / "objects").iterdir()) == sorted(
        [*(spec.name for spec in SPECS), "Activity"])


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_metadata_files_are_the_settings_fields_with_their_types(spec: Any) -> None:
    files = field_files(spec.name)
    assert set(files) == set(spec.custom_fields)  # Name and OwnerId are standard: no file
    wanted = expected_fields(spec)
    for name, element in files.items():
        want = wanted[name]
        assert text(element, "fullName") == name
        assert text(element, "type") == {"Owner": "Lookup"}.get(want.type, want.type), name
        if want.type == "Text":
            assert int(text(element, "length") or 0) == want.length, name
        if want.type == "Number":
            assert (int(text(element, "precision") or 0), int(text(element, "scale") or 0)) == NUMBER_DIGITS, name
        if want.type == "Lookup":
            assert text(element, "referenceTo") == want.reference_to, name
            assert text(element, "deleteConstraint") == "SetNull", name  # deleting a parent keeps the children
        assert (text(element, "externalId") == "true") == (name == EXTERNAL_ID), name
        assert (text(element, "unique") == "true") == (name == EXTERNAL_ID), name
    key = files[EXTERNAL_ID]
    assert (text(key, "externalId"), text(key, "unique"), text(key, "caseSensitive")) == ("true", "true", "true")
    assert SYNCED_FIELD in files and text(files[SYNCED_FIELD], "type") == "DateTime"


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_the_sandbox_describe_is_the_metadata(spec: Any, describes: dict[str, dict[str, Any]]) -> None:
    describe = describes[spec.name]
    custom = {field["name"]: field for field in describe["fields"] if field["custom"]}
    files = field_files(spec.name)
    assert set(files) == set(custom)
    for name, element in files.items():
        field = custom[name]
        assert DESCRIBE_TYPE[text(element, "type") or ""] == field["type"], name
        assert (text(element, "externalId") == "true") == field["externalId"], name
        assert (text(element, "unique") == "true") == field["unique"], name
        if text(element, "type") == "Text":
            assert int(text(element, "length") or 0) == field["length"], name
        if text(element, "type") == "Lookup":
            assert field["referenceTo"] == [text(element, "referenceTo")]
            assert field["relationshipName"] == name.removesuffix("__c") + "__r"
    standard = {field["name"]: field for field in describe["fields"] if not field["custom"]}
    assert standard["Name"]["length"] == NAME_LENGTH and standard["Name"]["updateable"]
    assert standard["OwnerId"]["referenceTo"] == ["User"] and standard["OwnerId"]["updateable"]
    assert object_problems(spec, describe) == []  # what check_setup says of a correct deployment


def test_key_result_text_lengths_are_the_connectors() -> None:
    """The lengths the connector cuts KR text to are those of the shipped fields."""
    text_lengths = {name: int(text(element, "length") or 0) for name, element in field_files(KR_OBJECT).items()
                    if text(element, "type") == "Text"}
    text_lengths["Name"] = NAME_LENGTH
    assert text_lengths == KR_TEXT_LENGTHS
    assert set(KR_FIELDS) == {"Name", *field_files(KR_OBJECT)}


@pytest.mark.parametrize("spec", SPECS, ids=lambda spec: spec.name)
def test_object_files_and_project_are_deployable_shapes(spec: Any) -> None:
    root = ElementTree.parse(METADATA / "objects" / spec.name / f"{spec.name}.object-meta.xml").getroot()
    assert root.tag == "{http://soap.sforce.com/2006/04/metadata}CustomObject"
    assert text(root, "deploymentStatus") == "Deployed" and text(root, "sharingModel") == "ReadWrite"
    assert text(root, "label") and text(root, "pluralLabel")
    name_field = root.find("md:nameField", NS)
    assert name_field is not None and text(name_field, "type") == "Text"
    project = json.loads((METADATA / "sfdx-project.json").read_text())
    assert [entry["path"] for entry in project["packageDirectories"]] == ["objects"]
    readme = (METADATA / "README.md").read_text()
    assert "sf project deploy start --source-dir objects" in readme and spec.name in readme
