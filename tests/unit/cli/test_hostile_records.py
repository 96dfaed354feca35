"""Records anyone may have written (a root process, another host's journal in a collector's
directory), read back by `lsmguard audit`, `test` and `suggest`: shown escaped, never a
traceback (review 38b F8, F9)."""
from __future__ import annotations

import datetime as dt

from lsmguard.cli.audit import row
from lsmguard.cli.export import as_json
from lsmguard.cli.journal_query import _texts
from lsmguard.events.journal import MessageId
from lsmguard.events.untrusted import lineage_list
from lsmguard.learn.observed import process_of

WHEN = dt.datetime(2026, 12, 2, tzinfo=dt.timezone.utc)


def test_an_events_lost_row_shows_no_control_character() -> None:
    entry = {"__REALTIME_TIMESTAMP": WHEN, "MESSAGE_ID": MessageId.EVENTS_LOST.hex,
             "LSMGUARD_LOST": "3\x1b]0;owned\x07\x1b[2K\rFAKE: 0"}
    shown = " ".join(row(entry))
    assert "\x1b" not in shown and "\r" not in shown and "\x07" not in shown
    assert "3\\x1b]0;owned" in shown


def test_a_value_that_is_not_utf8_is_escaped_text_not_a_bytes_repr() -> None:
    entry = _texts({"LSMGUARD_TARGET": b"/tmp/\xff\xfe", "MESSAGE": "deny open"})
    assert entry == {"LSMGUARD_TARGET": "/tmp/\\xff\\xfe", "MESSAGE": "deny open"}


def test_a_lineage_that_is_not_a_list_of_ancestors_is_none() -> None:
    assert lineage_list("[" * 100_000) is None            # RecursionError, not a ValueError
    assert lineage_list('{"a": 1}') is None and lineage_list("[1, 2]") is None and lineage_list("x") is None
    assert lineage_list('[{"pid": 1, "exe": "/sbin/init"}]') == [{"pid": 1, "exe": "/sbin/init"}]


def test_hostile_lineages_are_read_without_a_traceback() -> None:
    for lineage in ("[" * 100_000, '{"a": 1}', "7"):
        entry = {"__REALTIME_TIMESTAMP": WHEN, "MESSAGE_ID": MessageId.DENY.hex, "LSMGUARD_OPERATION": "open",
                 "LSMGUARD_EXE": "/usr/bin/x", "LSMGUARD_LINEAGE_JSON": lineage}
        assert "lineage_detail" not in as_json(entry)
        assert process_of(entry).ancestry == ()
