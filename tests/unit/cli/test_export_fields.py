"""The export's field list (docs/fleet.md) cannot drift from the code: every LSMGUARD_* field
the code writes is in `export.FIELDS`, every field there is written somewhere, the document
shows the table as rendered, and `audit --json` types each field as the table says."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from lsmguard.cli import export

REPO = Path(__file__).resolve().parents[3]
# names read from the environment, not journal fields
ENVIRONMENT = {"LSMGUARD_RUN_DIR", "LSMGUARD_PIN_ROOT", "LSMGUARD_METRICS_DIR",
               "LSMGUARD_SCHEMA", "LSMGUARD_BPF_OBJECT", "LSMGUARD_LOCK_OBJECT", "LSMGUARD_PROBE_OBJECT"}
NAME = re.compile(r"LSMGUARD_[A-Z0-9_]+")


def written_by_the_code() -> set[str]:
    names: set[str] = set()
    for source in (REPO / "lsm").rglob("*.py"):
        if source.parts[-2] == "cli" and source.name == "export.py":
            continue                                  # the table itself
        names |= set(NAME.findall(source.read_text()))
    return names - ENVIRONMENT


def test_every_field_the_code_names_is_in_the_table_and_back() -> None:
    named = written_by_the_code()
    prefixes = {n for n in named if n.endswith("_")}   # f"LSMGUARD_WRITER_{name}"...
    missing = {n for n in named - prefixes if n not in export.FIELDS}
    assert not missing, f"fields the code writes that docs/fleet.md does not list: {sorted(missing)}"
    for prefix in prefixes:
        assert any(f.startswith(prefix) for f in export.FIELDS), prefix
    unused = {f for f in export.FIELDS if f not in named and not any(f.startswith(p) for p in prefixes)}
    assert not unused, f"listed but written nowhere: {sorted(unused)}"


def test_the_document_shows_the_table() -> None:
    assert export.fields_markdown() in (REPO / "docs" / "fleet.md").read_text(), \
        "regenerate docs/fleet.md's field list from lsmguard.cli.export.fields_markdown()"


def test_json_types_are_the_table_s() -> None:
    entry: dict[str, object] = {"__REALTIME_TIMESTAMP": dt.datetime(2026, 11, 29, 12, 0), "MESSAGE": "m",
                                "MESSAGE_ID": "4e2bc71174d046159fecdeb24e23cf9a", "PRIORITY": "4"}
    samples = {"number": "12", "boolean": "1", "string": "text", "list": '[{"pid": 1}]'}
    for field, (kind, _) in export.FIELDS.items():
        entry[field] = samples[kind]
    out = export.as_json(entry)
    python = {"number": int, "boolean": bool, "string": str, "list": list}
    for field, (kind, _) in export.FIELDS.items():
        key = "lineage_detail" if field == "LSMGUARD_LINEAGE_JSON" else export.json_key(field)
        assert type(out[key]) is python[kind], (field, out[key])
