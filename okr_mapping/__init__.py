"""okr_mapping: the OKR domain — config rules, periods, metrics compiled to SQL, and scoring.

Pure and fast to test: it reads the canonical store through SQLAlchemy Core and never talks
to a CRM. Flows call `load_config` then `compute_key_results`.
"""

from okr_mapping.compute import KrResult, compute_key_results, slugify
from okr_mapping.config import OkrConfig
from okr_mapping.errors import ConfigError, Issue
from okr_mapping.loader import check_file, load_config, parse_config
from okr_mapping.periods import FiscalCalendar, Period
from okr_mapping.rollup import ObjectiveResult, rollup_objectives

__all__ = [
    "ConfigError",
    "FiscalCalendar",
    "Issue",
    "KrResult",
    "ObjectiveResult",
    "OkrConfig",
    "Period",
    "check_file",
    "compute_key_results",
    "load_config",
    "parse_config",
    "rollup_objectives",
    "slugify",
]
