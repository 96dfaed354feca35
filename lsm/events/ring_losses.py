"""What the kernel's counter of events lost to a full ring buffer (LG_STAT_EVENTS_LOST, in the
pinned `lg_stats`) said when a daemon last reported it, kept for the next daemon.

The counter outlives daemons: losses while no daemon read the ring (stopped, restarting,
killed) are counted by the kernel all the same, and the next daemon reports them from where
the one before stopped. The record names the map by its id: a new load makes a new map, whose
counter starts at zero, and then everything it counted is unreported. Without a record (the
first daemon since boot, or since a version that kept none), the counter as found is where
reporting starts.
"""
from __future__ import annotations

import json
from pathlib import Path

from lsmguard.state.files import write_atomically

FILE = "ring-lost.json"


def reported(run_dir: Path, stats_map_id: int) -> int | None:
    """The counter's value the last daemon reported for the map `stats_map_id`; 0 if the record is
    of another map (everything this one counted is unreported); None without a record."""
    try:
        record = json.loads((run_dir / FILE).read_text())
        map_id, value = int(record["stats_map_id"]), int(record["reported"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if map_id == stats_map_id else 0


def save(run_dir: Path, stats_map_id: int, value: int) -> None:
    """Keep the counter's value as reported (after its events-lost record was written)."""
    write_atomically(run_dir / FILE, json.dumps({"stats_map_id": stats_map_id, "reported": value}))
