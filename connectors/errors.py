"""Shared connector exceptions (imported by every CRM connector)."""


class ConnectorError(Exception):
    """Base class for connector failures the flow can report cleanly."""


class ConnectorConfigError(ConnectorError):
    """Missing or invalid configuration (e.g. credentials env variables)."""
