"""Cursor pagination helpers: the cursor is the last id of the page, opaque to clients."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opsdesk.core.errors import invalid
from opsdesk.core.schemas import ID_MAX


def parse_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    if not (cursor.isascii() and cursor.isdigit()) or int(cursor) > ID_MAX:
        raise invalid("cursor", "not a cursor returned by this API")
    return int(cursor)


def next_cursor(rows: Sequence[Any], limit: int) -> str | None:
    return str(rows[-1].id) if len(rows) == limit and rows else None
