"""Notification channels and per-person notification rules, and turning a page into messages.

A **channel** is where a notification goes: e-mail, an apprise URL (Slack, Microsoft Teams,
Telegram, Discord, Mattermost and the rest apprise supports) or a generic webhook signed the
Standard Webhooks way. A person owns their channels (contact methods); a channel without an owner
is shared (a team's chat room). What identifies the destination (address, URL, signing secrets) is
kept encrypted; only a redacted ``display`` is ever shown.

A **rule** says: for incidents of this urgency (or any), notify me on this channel (or my account
e-mail) this many minutes after I am paged, unless the incident is acknowledged by then. A person
with no rule gets an e-mail at once. One page becomes one outbox message per matching rule; the
idempotency key is the page and the rule, so a retried escalation step sends nothing twice.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

import orjson
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsdesk.audit import service as audit
from opsdesk.auth.models import User
from opsdesk.core import crypto
from opsdesk.core.actor import Actor
from opsdesk.core.errors import conflict, forbidden, invalid, not_found
from opsdesk.core.schemas import DbId, In, Out, ShortName
from opsdesk.notify import links
from opsdesk.notify.models import ChannelKind, NotificationRule, NotifyChannel

URGENCIES = ("any", "high", "medium", "low")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class ChannelIn(In):
    name: ShortName
    kind: ChannelKind
    address: Annotated[str, Field(max_length=254)] | None = Field(None, description="e-mail: the address")
    url: Annotated[str, Field(max_length=2000)] | None = Field(
        None, description="apprise: the apprise URL (tgram://…, slack://…, msteams://…); webhook: http(s) URL"
    )
    secrets: list[Annotated[str, Field(min_length=8, max_length=200)]] | None = Field(
        None,
        max_length=5,
        description="webhook: signing secrets (whsec_…); several during a rotation; none: one is made",
    )
    rate_per_minute: int | None = Field(None, ge=1, le=100_000)
    enabled: bool = True


class ChannelUpdate(In):
    name: ShortName | None = None
    address: Annotated[str, Field(max_length=254)] | None = None
    url: Annotated[str, Field(max_length=2000)] | None = None
    secrets: list[Annotated[str, Field(min_length=8, max_length=200)]] | None = Field(None, max_length=5)
    rate_per_minute: int | None = Field(None, ge=1, le=100_000)
    enabled: bool | None = None


class ChannelOut(Out):
    id: int
    name: str
    kind: str
    user_id: int | None
    display: str
    rate_per_minute: int | None
    enabled: bool
    secrets: list[str] | None = Field(
        None, description="webhook signing secrets: shown only when made or set"
    )
    created_at: datetime
    updated_at: datetime


class RuleIn(In):
    urgency: str = Field("any", description="any, high, medium or low")
    delay_minutes: int = Field(0, ge=0, le=1440)
    channel_id: DbId | None = Field(None, description="one of your channels; none: your account e-mail")


class RuleOut(Out):
    id: int
    user_id: int
    urgency: str
    delay_minutes: int
    channel_id: int | None
    channel: str


# --- channels ------------------------------------------------------------------------------------


def _config(
    kind: str, address: str | None, url: str | None, sec: list[str] | None
) -> tuple[dict[str, Any], str]:
    """Checked settings of a channel, and what may be displayed of them."""
    if kind == ChannelKind.email:
        if not address or not _EMAIL.match(address.strip()):
            raise invalid("address", "an e-mail channel needs an e-mail address")
        addr = address.strip().lower()
        return {"address": addr}, addr
    if kind == ChannelKind.apprise:
        import apprise

        if not url:
            raise invalid("url", "an apprise channel needs an apprise URL (e.g. tgram://bottoken/ChatID)")
        if not apprise.Apprise().add(url):
            raise invalid("url", "apprise does not recognise this URL; see apprise's list of services")
        scheme = url.split("://", 1)[0] if "://" in url else "?"
        return {"url": url}, f"{scheme}://…"
    if not url:
        raise invalid("url", "a webhook channel needs a URL")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid("url", "must be an http:// or https:// URL")
    keys = sec or [new_secret()]
    for i, k in enumerate(keys):
        try:
            secret_bytes(k)
        except ValueError as exc:
            raise invalid(f"secrets.{i}", str(exc)) from None
    return {"url": url, "secrets": keys}, f"{parts.scheme}://{parts.netloc}{parts.path}"


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_bytes(secret: str) -> bytes:
    """The key of a Standard Webhooks secret: base64 after the ``whsec_`` prefix."""
    raw = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(raw, validate=True)
    except binascii.Error:
        raise ValueError("a signing secret is whsec_ followed by base64 (at least 16 bytes)") from None
    if len(key) < 16:
        raise ValueError("a signing secret must hold at least 16 bytes")
    return key


def config_of(ch: NotifyChannel) -> dict[str, Any]:
    out: dict[str, Any] = orjson.loads(crypto.decrypt(ch.config_secret))
    return out


def get_channel(s: Session, channel_id: int) -> NotifyChannel:
    ch = s.get(NotifyChannel, channel_id)
    if ch is None:
        raise not_found("channel", channel_id)
    return ch


def _may_edit(actor: Actor, ch: NotifyChannel) -> None:
    if ch.user_id is not None and ch.user_id == actor.id:
        return
    if not actor.can("manager"):
        raise forbidden("only the owner of a channel, or a manager, may change it")


def list_channels(s: Session, *, user_id: int | None = None, shared: bool = False) -> list[NotifyChannel]:
    q = select(NotifyChannel).order_by(NotifyChannel.id)
    if user_id is not None:
        q = q.where(NotifyChannel.user_id == user_id)
    elif shared:
        q = q.where(NotifyChannel.user_id.is_(None))
    return list(s.scalars(q))


def create_channel(
    s: Session, data: ChannelIn, *, owner_id: int | None, actor: Actor, now: datetime
) -> tuple[NotifyChannel, dict[str, Any]]:
    if owner_id is None and not actor.can("manager"):
        raise forbidden("shared channels are made by a manager; add your own under /api/v1/me/channels")
    if s.scalar(
        select(NotifyChannel).where(
            NotifyChannel.name == data.name,
            NotifyChannel.user_id.is_(None) if owner_id is None else NotifyChannel.user_id == owner_id,
        )
    ):
        raise conflict(f"a channel named {data.name!r} exists")
    cfg, display = _config(data.kind, data.address, data.url, data.secrets)
    ch = NotifyChannel(
        name=data.name,
        kind=data.kind.value,
        user_id=owner_id,
        config_secret=crypto.encrypt(orjson.dumps(cfg).decode()),
        display=display,
        rate_per_minute=data.rate_per_minute,
        enabled=data.enabled,
        created_at=now,
        updated_at=now,
    )
    s.add(ch)
    s.flush()
    audit.created(s, "channel", ch.id, _snap(ch), actor=actor, at=now)
    return ch, cfg


def update_channel(
    s: Session, channel_id: int, data: ChannelUpdate, *, actor: Actor, now: datetime
) -> tuple[NotifyChannel, dict[str, Any] | None]:
    ch = get_channel(s, channel_id)
    _may_edit(actor, ch)
    before = _snap(ch)
    fields = data.model_fields_set
    shown = None
    if fields & {"address", "url", "secrets"}:
        old = config_of(ch)
        cfg, ch.display = _config(
            ch.kind,
            data.address if "address" in fields else old.get("address"),
            data.url if "url" in fields else old.get("url"),
            data.secrets if "secrets" in fields else old.get("secrets"),
        )
        ch.config_secret = crypto.encrypt(orjson.dumps(cfg).decode())
        shown = cfg if "secrets" in fields else None
    if data.name is not None:
        ch.name = data.name
    if "rate_per_minute" in fields:
        ch.rate_per_minute = data.rate_per_minute
    if data.enabled is not None:
        ch.enabled = data.enabled
    ch.updated_at = now
    audit.updated(s, "channel", ch.id, before, _snap(ch), actor=actor, at=now)
    return ch, shown


def delete_channel(s: Session, channel_id: int, *, actor: Actor, now: datetime) -> None:
    ch = get_channel(s, channel_id)
    _may_edit(actor, ch)
    audit.deleted(s, "channel", ch.id, _snap(ch), actor=actor, at=now)
    s.delete(ch)


def _snap(ch: NotifyChannel) -> dict[str, Any]:
    return audit.snapshot(ch, ["name", "kind", "user_id", "display", "rate_per_minute", "enabled"])


def channel_dict(ch: NotifyChannel, cfg: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": ch.id,
        "name": ch.name,
        "kind": ch.kind,
        "user_id": ch.user_id,
        "display": ch.display,
        "rate_per_minute": ch.rate_per_minute,
        "enabled": ch.enabled,
        "secrets": list(cfg["secrets"]) if cfg and "secrets" in cfg else None,
        "created_at": ch.created_at,
        "updated_at": ch.updated_at,
    }


# --- rules ---------------------------------------------------------------------------------------


def list_rules(s: Session, user_id: int) -> list[NotificationRule]:
    return list(
        s.scalars(
            select(NotificationRule)
            .where(NotificationRule.user_id == user_id)
            .order_by(NotificationRule.delay_minutes, NotificationRule.id)
        )
    )


def add_rule(s: Session, user_id: int, data: RuleIn, *, actor: Actor, now: datetime) -> NotificationRule:
    if data.urgency not in URGENCIES:
        raise invalid("urgency", f"must be one of {', '.join(URGENCIES)}")
    if data.channel_id is not None:
        ch = s.get(NotifyChannel, data.channel_id)
        if ch is None or ch.user_id != user_id:
            raise invalid("channel_id", f"channel {data.channel_id} is not one of this person's channels")
    rule = NotificationRule(
        user_id=user_id,
        urgency=data.urgency,
        delay_minutes=data.delay_minutes,
        channel_id=data.channel_id,
        created_at=now,
    )
    s.add(rule)
    s.flush()
    audit.created(
        s,
        "notification_rule",
        rule.id,
        audit.snapshot(rule, ["user_id", "urgency", "delay_minutes", "channel_id"]),
        actor=actor,
        at=now,
    )
    return rule


def delete_rule(s: Session, user_id: int, rule_id: int, *, actor: Actor, now: datetime) -> None:
    rule = s.get(NotificationRule, rule_id)
    if rule is None or rule.user_id != user_id:
        raise not_found("notification rule", rule_id)
    audit.deleted(
        s,
        "notification_rule",
        rule.id,
        audit.snapshot(rule, ["user_id", "urgency", "delay_minutes", "channel_id"]),
        actor=actor,
        at=now,
    )
    s.delete(rule)


def rule_dict(s: Session, rule: NotificationRule) -> dict[str, Any]:
    ch = s.get(NotifyChannel, rule.channel_id) if rule.channel_id else None
    return {
        "id": rule.id,
        "user_id": rule.user_id,
        "urgency": rule.urgency,
        "delay_minutes": rule.delay_minutes,
        "channel_id": rule.channel_id,
        "channel": f"{ch.name} ({ch.kind} {ch.display})" if ch else "account e-mail",
    }


# --- pages ---------------------------------------------------------------------------------------


class PageNotifier:
    """Queues the notifications of pages by each person's rules, looking rules and channels up once.

    The pages are new rows (a step that was taken before pages nobody again), so their messages are
    new too: they are added without looking their idempotency keys up one by one, and written with
    the caller's next flush, in one batch."""

    def __init__(self, s: Session, *, now: datetime, base_url: str) -> None:
        self.s = s
        self.now = now
        self.base = base_url.rstrip("/")
        self.rules: dict[int, list[NotificationRule]] = {}
        self.channels: dict[int, NotifyChannel | None] = {}
        self.rows: list[dict[str, Any]] = []

    def write(self) -> None:
        """Insert the queued messages in one statement."""
        from sqlalchemy import insert

        from opsdesk.notify.models import OutboxMessage

        if self.rows:
            self.s.execute(insert(OutboxMessage), self.rows)
            self.rows = []

    def _rules(self, user_id: int) -> list[NotificationRule]:
        if user_id not in self.rules:
            self.rules[user_id] = list_rules(self.s, user_id)
        return self.rules[user_id]

    def _channel(self, channel_id: int) -> NotifyChannel | None:
        if channel_id not in self.channels:
            self.channels[channel_id] = self.s.get(NotifyChannel, channel_id)
        return self.channels[channel_id]

    def notify(self, page: Any, inc: Any, user: User) -> int:
        """Queue one page's notifications. Returns how many were queued."""
        from opsdesk.incidents.service import key_of
        from opsdesk.notify.models import OutboxStatus

        now, base = self.now, self.base
        matching = [r for r in self._rules(user.id) if r.urgency in ("any", inc.urgency)]
        plan: list[tuple[int, NotificationRule | None]] = [(r.delay_minutes, r) for r in matching] or [
            (0, None)
        ]
        ack = f"{base}/act/{links.make(inc.id, 'acknowledge', user.id, now=now)}"
        res = f"{base}/act/{links.make(inc.id, 'resolve', user.id, now=now)}"
        key = key_of(inc.id)
        subject = f"[opsdesk] {key} {inc.priority} {inc.severity.upper()}: {inc.title}"
        body = (
            f"You are paged for {key} ({page.via}; escalation level {page.level + 1}).\n\n"
            f"Title:    {inc.title}\n"
            f"Priority: {inc.priority} (urgency {inc.urgency})\n"
            f"Severity: {inc.severity}\n"
            f"Opened:   {inc.opened_at:%Y-%m-%d %H:%M} UTC\n\n"
            f"Acknowledge: {ack}\n"
            f"Resolve:     {res}\n"
            f"Open:        {base}/incidents/{inc.id}\n"
        )
        data = {
            "type": "incident.page",
            "incident": {
                "id": inc.id,
                "key": key,
                "title": inc.title,
                "status": inc.status,
                "severity": inc.severity,
                "priority": inc.priority,
                "urgency": inc.urgency,
                "url": f"{base}/incidents/{inc.id}",
            },
            "recipient": {"user_id": user.id, "name": user.name},
            "escalation": {"level": page.level + 1, "round": page.round + 1, "via": page.via},
            "actions": {"acknowledge": ack, "resolve": res},
        }
        queued = 0
        for delay, rule in plan:
            ch = self._channel(rule.channel_id) if rule is not None and rule.channel_id else None
            if ch is not None and not ch.enabled:
                continue
            self.rows.append(
                {
                    "idempotency_key": f"page:{page.id}:rule:{rule.id if rule else 0}",
                    "channel": ch.kind if ch else "email",
                    "recipient": ch.display if ch else user.email,
                    "subject": subject,
                    "body": body,
                    "data": data,
                    "incident_id": inc.id,
                    "status": OutboxStatus.pending.value,
                    "attempts": 0,
                    "next_attempt_at": now + timedelta(minutes=delay),
                    "last_error": "",
                    "created_at": now,
                    "user_id": user.id,
                    "channel_id": ch.id if ch else None,
                    "page_id": page.id,
                }
            )
            queued += 1
        return queued
