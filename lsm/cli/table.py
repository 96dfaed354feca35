"""Plain-text tables, as `lsmguard list` and `lsmguard audit` print them."""
from __future__ import annotations

from collections.abc import Sequence


def line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=False)).rstrip()


def render(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The header and the rows, each column as wide as its widest cell."""
    widths = [max([len(title)] + [len(row[i]) for row in rows]) for i, title in enumerate(header)]
    return [line(header, widths)] + [line(row, widths) for row in rows]
