"""Persistence: the SQL schema, the database connection and the call record."""

from frontdesk.store.db import DEFAULT_DATABASE_URL, Database, database_url_from_env
from frontdesk.store.models import (
    Appointment,
    Base,
    Call,
    Contact,
    ToolCallRecord,
    Turn,
    normalize_phone,
    utc_now,
)
from frontdesk.store.records import OUTCOME_RANK, CallStore, UnknownCallError

__all__ = [
    "DEFAULT_DATABASE_URL",
    "OUTCOME_RANK",
    "Appointment",
    "Base",
    "Call",
    "CallStore",
    "Contact",
    "Database",
    "ToolCallRecord",
    "Turn",
    "UnknownCallError",
    "database_url_from_env",
    "normalize_phone",
    "utc_now",
]
