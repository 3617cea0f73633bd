from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from opsdesk.core.db import Base


class MaintenanceWindow(Base):
    """Planned work on a service or a CI: alerts on it are muted (kept, recorded, not paged) while
    a window is in progress.

    One-off: ``starts_at``..``ends_at``. Recurring: ``rrule`` (RFC 5545, e.g.
    ``FREQ=WEEKLY;BYDAY=SU``) repeats the first occurrence ``starts_at``..``ends_at`` in ``timezone``
    (so a 02:00 window stays at 02:00 local across daylight-saving changes).
    """

    __tablename__ = "maintenance_windows"
    __table_args__ = (
        CheckConstraint("(service_id IS NOT NULL) OR (ci_id IS NOT NULL)", name="has_target"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    service_id: Mapped[int | None] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"), index=True)
    ci_id: Mapped[int | None] = mapped_column(ForeignKey("cis.id", ondelete="CASCADE"), index=True)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    rrule: Mapped[str | None] = mapped_column(String(500))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    created_by: Mapped[str] = mapped_column(String(254))
    comment: Mapped[str] = mapped_column(String(2000), default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
