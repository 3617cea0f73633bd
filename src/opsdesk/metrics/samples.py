"""The unit of the metrics store: one value of one series at one instant."""

from __future__ import annotations

from typing import NamedTuple

Labels = tuple[tuple[str, str], ...]  # sorted by label name; never contains "__name__"


class Sample(NamedTuple):
    name: str
    labels: Labels
    ts_ms: int  # milliseconds since the Unix epoch, UTC
    value: float


def labels_of(d: dict[str, str]) -> Labels:
    """The canonical (sorted) form of a label set."""
    return tuple(sorted(d.items()))
