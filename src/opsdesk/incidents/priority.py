"""Priority P1..P5 from impact x urgency, the ITIL matrix most service desks use.

=========  ======  ======  ======
impact \\ urgency high    medium  low
=========  ======  ======  ======
high       P1      P2      P3
medium     P2      P3      P4
low        P3      P4      P5
=========  ======  ======  ======
"""

from __future__ import annotations

LEVELS = ("high", "medium", "low")
PRIORITIES = ("P1", "P2", "P3", "P4", "P5")

# An alert's severity sets the impact and urgency of the incident it opens; people change them.
FROM_SEVERITY: dict[str, tuple[str, str]] = {
    "critical": ("high", "high"),
    "error": ("high", "medium"),
    "warning": ("medium", "medium"),
    "info": ("low", "low"),
}


def priority_of(impact: str, urgency: str) -> str:
    """``priority_of("high", "medium") == "P2"``; unknown levels count as medium."""
    i = LEVELS.index(impact) if impact in LEVELS else 1
    u = LEVELS.index(urgency) if urgency in LEVELS else 1
    return PRIORITIES[i + u]


def from_severity(severity: str) -> tuple[str, str, str]:
    """(impact, urgency, priority) for an incident opened by an alert of this severity."""
    impact, urgency = FROM_SEVERITY.get(severity, ("medium", "medium"))
    return impact, urgency, priority_of(impact, urgency)
