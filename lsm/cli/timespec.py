"""Times as journalctl reads them (systemd.time(7)), for `--since` and `--until`.

"2026-11-21 10:00[:00]", "2026-11-21", "10:00" (today), "@1732183200" (seconds
since the epoch), "now", "today", "yesterday", "tomorrow", each of those three
followed by a time of day ("yesterday 10:00"), relative spans ("-10m",
"+1h", "2h 30min ago", "-1d12h"), an optional weekday in front ("Sat
2026-11-21 10:00") and "UTC" (or "Z") at the end for universal time; local
time otherwise.
"""
from __future__ import annotations

import datetime as dt
import re

from lsmguard.errors import UsageError

_UNITS = {
    "us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3,
    "s": 1, "sec": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 7 * 86400, "week": 7 * 86400, "weeks": 7 * 86400,
    "M": 2629800, "month": 2629800, "months": 2629800,       # systemd's 30.44 days
    "y": 31557600, "year": 31557600, "years": 31557600,      # and 365.25 days
}
_SPAN_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]+)")
_SPAN = re.compile(r"^(?:\d+(?:\.\d+)?\s*[a-zA-Z]+\s*)+$")
_TIME_OF_DAY = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?$")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun", "monday", "tuesday", "wednesday", "thursday",
             "friday", "saturday", "sunday")
HELP = ("use 2026-11-21 10:00[:00], 10:00, @EPOCH, now, today, yesterday [10:00], tomorrow, -10m, +1h, "
        "2h ago, with UTC at the end for universal time")


class TimeError(UsageError):
    pass


def _span_seconds(text: str) -> float | None:
    if not _SPAN.match(text):
        return None
    total = 0.0
    for number, unit in _SPAN_PART.findall(text):
        factor = _UNITS.get(unit) or _UNITS.get(unit.lower())
        if factor is None:
            return None
        total += float(number) * factor
    return total


def parse_time(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """An aware datetime for `text`; TimeError saying what is accepted otherwise."""
    words = text.strip()
    tz: dt.tzinfo | None = None
    for suffix in (" UTC", " utc", "Z"):
        if words.endswith(suffix) and len(words) > len(suffix):
            words, tz = words[: -len(suffix)].rstrip(), dt.UTC
            break
    now = (now or dt.datetime.now().astimezone()).astimezone(tz)
    when = _parse(words, now, tz)
    if when is None:
        raise TimeError(f"{text!r} is not a time: {HELP}")
    return when if when.tzinfo else when.replace(tzinfo=tz) if tz else when.astimezone()


def _parse(words: str, now: dt.datetime, tz: dt.tzinfo | None) -> dt.datetime | None:
    lower = words.lower()
    if lower.startswith("@"):
        try:
            return dt.datetime.fromtimestamp(float(lower[1:]), dt.UTC)
        except (ValueError, OverflowError, OSError):
            return None
    if lower == "now":
        return now
    relative = _relative(words, now)
    if relative is not None:
        return relative
    first, _, rest = lower.partition(" ")
    if first in _WEEKDAYS and rest:           # "Sat 2026-11-21 10:00": the weekday is only a check
        words, lower = words.split(" ", 1)[1].strip(), rest.strip()
        first, _, rest = lower.partition(" ")
    days = {"today": 0, "yesterday": -1, "tomorrow": 1}.get(first)
    if days is not None:
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + dt.timedelta(days=days)
        return _at(midnight, rest.strip()) if rest.strip() else midnight
    if _TIME_OF_DAY.match(lower):
        return _at(now.replace(hour=0, minute=0, second=0, microsecond=0), lower)
    try:
        when = dt.datetime.fromisoformat(words)
    except ValueError:
        return None
    return when.replace(tzinfo=tz) if tz and not when.tzinfo else when


def _relative(words: str, now: dt.datetime) -> dt.datetime | None:
    text, sign = words, -1
    if text.endswith(" ago"):
        text = text[:-4].strip()
    elif text.startswith("+"):
        text, sign = text[1:].strip(), 1
    elif text.startswith("-"):
        text = text[1:].strip()
    seconds = _span_seconds(text)
    if seconds is None:
        return None
    return now + dt.timedelta(seconds=sign * seconds)


def _at(day: dt.datetime, clock: str) -> dt.datetime | None:
    m = _TIME_OF_DAY.match(clock)
    if not m:
        return None
    hour, minute, second = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    micro = int((m.group(4) or "0").ljust(6, "0"))
    if hour > 23 or minute > 59 or second > 59:
        return None
    return day.replace(hour=hour, minute=minute, second=second, microsecond=micro)


# Options whose value may start with "-" ("--since -10m", "-b -1"): argparse would take it
# for an option, so the command line is rewritten to "--since=-10m" before parsing.
DASHED_VALUE_OPTIONS = ("--since", "--until", "-S", "-U")


def join_dashed_values(argv: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return out + argv[i:]
        if arg in DASHED_VALUE_OPTIONS and i + 1 < len(argv) and argv[i + 1].startswith("-") \
                and argv[i + 1] != "--" and _looks_like_time(argv[i + 1]):
            out.append(f"{arg}={argv[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def _looks_like_time(value: str) -> bool:
    return _span_seconds(value[1:].strip()) is not None
