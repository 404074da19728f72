"""XML Schema ``dateTimeStamp`` text <-> UTC-aware ``datetime``.

Verifiable Credentials write ``validFrom``, ``validUntil`` and ``created`` as dateTimeStamp:
ISO 8601 with a mandatory time zone. A timestamp without a zone is ambiguous and refused.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from consent.errors import MalformedCredential

_DATETIME_STAMP = re.compile(
    r"(?P<base>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d{1,9}))?(?P<zone>Z|[+-]\d{2}:\d{2})\Z"
)


def format_timestamp(moment: datetime) -> str:
    """``2026-11-30T10:00:00Z`` (fractional seconds only when present)."""
    _require_aware(moment)
    utc = moment.astimezone(timezone.utc)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_timestamp(value: object, *, field: str) -> datetime:
    """A UTC-aware datetime from dateTimeStamp text; ``MalformedCredential`` naming ``field``."""
    if not isinstance(value, str):
        raise MalformedCredential(f"{field} must be a date-time string")
    match = _DATETIME_STAMP.match(value)
    if match is None:
        raise MalformedCredential(f"{field} is not a date-time with a time zone (e.g. 2026-12-01T00:00:00Z)")
    frac = (match["frac"] or "")[:6]  # datetime holds microseconds; nanoseconds are dropped
    zone = "+00:00" if match["zone"] == "Z" else match["zone"]
    text = match["base"] + (f".{frac.ljust(6, '0')}" if frac else "") + zone
    try:
        return datetime.fromisoformat(text).astimezone(timezone.utc)
    except ValueError:
        raise MalformedCredential(f"{field} is not a valid date-time") from None


def _require_aware(moment: datetime) -> None:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError("times must be timezone-aware datetimes (use datetime.now(timezone.utc))")
