"""Is the org ready for writeback? One describe per OKR object, compared with settings.OKR_OBJECT_SPECS.

The messages are for the admin who deploys connectors/salesforce/metadata: each names the object,
the field, the type okr-sync needs and the type the org has ("OKR_Check_In__c.Forecast__c is
missing: Number(18, 4)"), so a wrong deployment is fixed without reading code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError, SalesforceResourceNotFound

from connectors.errors import ConnectorError
from connectors.okr_records import OKR_OBJECTS
from connectors.salesforce.settings import (
    EXTERNAL_ID,
    NUMBER_DIGITS,
    OKR_OBJECT_SPECS,
    SYNCED_FIELD,
    OkrField,
    OkrObjectSpec,
)

DEPLOY_HINT = "deploy connectors/salesforce/metadata (see its README.md)"
_SYNCED = OkrField(SYNCED_FIELD, "", "DateTime")
_DESCRIBE_TYPES = {"date": "Date", "datetime": "DateTime", "boolean": "Checkbox", "picklist": "Picklist",
                   "textarea": "Text Area", "email": "Email", "url": "URL", "phone": "Phone"}


def expected_fields(spec: OkrObjectSpec) -> dict[str, OkrField]:
    """Every field okr-sync writes into `spec`'s object, by API name (Name, OwnerId, Last_Synced__c too)."""
    return {**{field.name: field for field in spec.fields}, SYNCED_FIELD: _SYNCED}


def describe_text(field: Mapping[str, Any]) -> str:
    """A describe field's type as Setup shows it: Text(255), Number(18, 4), Lookup(User)..."""
    kind = field.get("type")
    if kind == "string":
        return "Auto Number" if field.get("autoNumber") else f"Text({field.get('length')})"
    if kind in ("double", "currency", "percent"):
        label = {"double": "Number", "currency": "Currency", "percent": "Percent"}[kind]
        return f"{label}({field.get('precision')}, {field.get('scale')})"
    if kind == "reference":
        return "Lookup(" + ", ".join(field.get("referenceTo") or []) + ")"
    return _DESCRIBE_TYPES.get(str(kind), str(kind))


def _fits(want: OkrField, have: Mapping[str, Any]) -> bool:
    """Whether the org's field takes every value okr-sync sends (a longer text or more digits is fine)."""
    kind = have.get("type")
    if want.type == "Text":
        return kind == "string" and not have.get("autoNumber") and int(have.get("length") or 0) >= want.length
    if want.type == "Number":
        precision, scale = int(have.get("precision") or 0), int(have.get("scale") or 0)
        digits, decimals = NUMBER_DIGITS
        return kind == "double" and scale >= decimals and precision - scale >= digits - decimals
    if want.type in ("Lookup", "Owner"):
        return kind == "reference" and want.reference_to in (have.get("referenceTo") or [])
    if want.type == "Checkbox":
        return kind == "boolean"
    return kind == want.type.lower()  # Date -> date, DateTime -> datetime


def object_problems(spec: OkrObjectSpec, describe: Mapping[str, Any],
                    names: Iterable[str] | None = None) -> list[str]:
    """What is wrong with `spec`'s object for writing `names` (default: every field okr-sync writes)."""
    have = {field["name"]: field for field in describe.get("fields") or []}
    wanted = expected_fields(spec)
    problems = []
    for name in wanted if names is None else dict.fromkeys(names):
        want, field = wanted[name], have.get(name)
        label = f"{spec.name}.{name}"
        if field is None:
            problems.append(f"{label} is missing: {want.describe_text()}")
        elif not _fits(want, field):
            problems.append(f"{label} must be a {want.describe_text()}, is {describe_text(field)}")
        elif not (field.get("createable") and field.get("updateable")):
            problems.append(f"{label} is not writable by this user: give the integration user edit access "
                            "to it (field-level security, e.g. a permission set)")
    key = have.get(EXTERNAL_ID)
    if key is not None and not (key.get("externalId") and key.get("unique")):
        problems.append(f"{spec.name}.{EXTERNAL_ID} must be an External ID marked Unique")
    return problems


class SetupChecker:
    """Mixed into SalesforceSource, which provides the client, the call layer and the describe cache."""

    client: Salesforce
    _described: dict[str, dict[str, Any]]
    _call: Callable[..., Any]
    _failure: Callable[[SalesforceError, str], ConnectorError]
    _transport_failure: Callable[[requests.RequestException, str], ConnectorError]

    def check_setup(self) -> list[str]:
        """Every problem of the org's OKR objects, readable by an admin; [] when writeback can run.

        Costs one describe call per object (three), fresh each time: an admin runs it after a deploy.
        """
        problems = []
        for kind in OKR_OBJECTS:
            spec = OKR_OBJECT_SPECS[kind]
            describe = self._describe_okr_object(spec.name, fresh=True)
            if describe is None:
                problems.append(f"{spec.name} is missing: {DEPLOY_HINT}")
            else:
                problems.extend(object_problems(spec, describe))
        return problems

    def _describe_okr_object(self, name: str, fresh: bool = False) -> dict[str, Any] | None:
        """The object's describe (cached per source unless `fresh`); None when the org lacks it."""
        if fresh or name not in self._described:
            operation = f"describe of {name}"
            try:
                self._described[name] = self._call(operation, self.client.restful,
                                                   f"sobjects/{name}/describe") or {}
            except SalesforceResourceNotFound:
                return None
            except SalesforceError as error:
                raise self._failure(error, operation) from None
            except requests.RequestException as error:
                raise self._transport_failure(error, operation) from None
        return self._described[name]

    def _ensure_writable(self, spec: OkrObjectSpec, names: Iterable[str] | None = None) -> None:
        """Stop before the first write when the object or one of the fields to write is not ready."""
        describe = self._describe_okr_object(spec.name)
        if describe is None:
            raise ConnectorError(f"Salesforce object {spec.name} does not exist in this org: {DEPLOY_HINT} "
                                 "before writing OKRs.")
        problems = object_problems(spec, describe, names)
        if problems:
            raise ConnectorError(f"Salesforce object {spec.name} is not ready for writeback: "
                                 + "; ".join(problems) + f"; {DEPLOY_HINT}.")
