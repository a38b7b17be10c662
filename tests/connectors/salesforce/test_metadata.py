"""The shipped DX metadata, the sandbox's describe and the connector's field list agree."""

from __future__ import annotations

import gc
import json
from pathlib import Path
from xml.etree import ElementTree

from connectors.salesforce import SalesforceSource
from connectors.salesforce.settings import KR_EXTERNAL_ID, KR_FIELDS, KR_OBJECT, KR_TEXT_LENGTHS
from connectors.sandbox.server import SandboxServer

METADATA = Path(__file__).parents[3] / "connectors" / "salesforce" / "metadata"
OBJECT_DIR = METADATA / "objects" / KR_OBJECT
NS = {"md": "http://soap.sforce.com/2006/04/metadata"}
DESCRIBE_TYPE = {"Text": "string", "Number": "double", "DateTime": "datetime"}


def field_files() -> dict[str, ElementTree.Element]:
    return {path.name.removesuffix(".field-meta.xml"): ElementTree.parse(path).getroot()
            for path in (OBJECT_DIR / "fields").glob("*.field-meta.xml")}


def text(element: ElementTree.Element, tag: str) -> str | None:
    found = element.find(f"md:{tag}", NS)
    return None if found is None else found.text


def test_metadata_matches_the_sandbox_describe_and_the_settings(sandbox: SandboxServer) -> None:
    with SalesforceSource.from_env(sandbox.connection_env()) as source:
        describe = source.client.restful(f"sobjects/{KR_OBJECT}/describe")
    gc.collect()
    custom = {field["name"]: field for field in describe["fields"] if field["custom"]}
    text_lengths = {name: int(text(element, "length") or 0) for name, element in field_files().items()
                    if text(element, "type") == "Text"}
    name_field = [field for field in describe["fields"] if field["name"] == "Name"]
    text_lengths["Name"] = name_field[0]["length"]  # the standard name field: Text(80) in every org
    assert text_lengths == KR_TEXT_LENGTHS  # the lengths the connector cuts text to
    files = field_files()
    assert set(files) == set(custom)
    for name, element in files.items():
        assert text(element, "fullName") == name
        assert DESCRIBE_TYPE[text(element, "type") or ""] == custom[name]["type"], name
        assert (text(element, "externalId") == "true") == custom[name]["externalId"], name
        assert (text(element, "unique") == "true") == custom[name]["unique"], name
        if text(element, "type") == "Text":
            assert int(text(element, "length") or 0) == custom[name]["length"], name
    assert {"Name", *files} == set(KR_FIELDS) | {"Name"}


def test_object_file_and_project_are_deployable_shapes() -> None:
    root = ElementTree.parse(OBJECT_DIR / f"{KR_OBJECT}.object-meta.xml").getroot()
    assert root.tag == "{http://soap.sforce.com/2006/04/metadata}CustomObject"
    assert text(root, "deploymentStatus") == "Deployed" and text(root, "sharingModel")
    name_field = root.find("md:nameField", NS)
    assert name_field is not None and text(name_field, "type") == "Text"
    key = field_files()[KR_EXTERNAL_ID]
    assert (text(key, "externalId"), text(key, "unique"), text(key, "length")) == ("true", "true", "255")
    project = json.loads((METADATA / "sfdx-project.json").read_text())
    assert [entry["path"] for entry in project["packageDirectories"]] == ["objects"]
    assert "sf project deploy start --source-dir objects" in (METADATA / "README.md").read_text()
