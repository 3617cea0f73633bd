from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column

from opsdesk.core.db import Base


class CIClass(StrEnum):
    server = "server"
    vm = "vm"
    container = "container"
    network_device = "network_device"
    database = "database"
    application = "application"
    storage = "storage"
    load_balancer = "load_balancer"
    other = "other"


class RelationType(StrEnum):
    depends_on = "depends_on"
    runs_on = "runs_on"
    connects_to = "connects_to"


class Service(Base):
    __tablename__ = "services"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(String(2000), default="")
    owner_team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="RESTRICT"), index=True)
    # Who is paged for this service's incidents (none: the owner team is e-mailed).
    escalation_policy_id: Mapped[int | None] = mapped_column(
        ForeignKey("escalation_policies.id", ondelete="RESTRICT"), index=True
    )
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Opt-in: shown on the public status page (no login).
    public_status: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ConfigItem(Base):
    __tablename__ = "cis"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    ci_class: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(String(2000), default="")
    owner_team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="RESTRICT"), index=True)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Relationship(Base):
    """A directed edge ``source --type--> target`` between services and CIs.

    Exactly one of the two source columns and one of the two target columns is set, so both ends
    keep real foreign keys.
    """

    __tablename__ = "relationships"
    __table_args__ = (
        CheckConstraint("(source_service_id IS NULL) <> (source_ci_id IS NULL)", name="one_source"),
        CheckConstraint("(target_service_id IS NULL) <> (target_ci_id IS NULL)", name="one_target"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(20))
    source_service_id: Mapped[int | None] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    source_ci_id: Mapped[int | None] = mapped_column(ForeignKey("cis.id", ondelete="CASCADE"), index=True)
    target_service_id: Mapped[int | None] = mapped_column(
        ForeignKey("services.id", ondelete="CASCADE"), index=True
    )
    target_ci_id: Mapped[int | None] = mapped_column(ForeignKey("cis.id", ondelete="CASCADE"), index=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime]
