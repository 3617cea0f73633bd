"""HTML pages for escalation policies, the notification outbox, and contact methods.

- ``/escalation-policies``: every policy with its levels in one line, its repeats and the services
  that use it; managers create one there. ``/escalation-policies/{id}``: the levels and their
  targets; managers edit (levels typed one per line, see :mod:`opsdesk.oncall.escalation_text`)
  and delete (refused while a service uses it).
- ``/notifications``: the outbox newest first, filtered by status, with the counts per status;
  dead letters can be retried (responders one at a time, managers all at once).
- ``/me/notifications``: the signed-in person's contact methods and notification rules.
- ``/channels``: shared channels (managers).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from opsdesk.auth import service as auth
from opsdesk.core.actor import Role
from opsdesk.core.errors import OpsdeskError, not_found
from opsdesk.notify import outbox_read, rules
from opsdesk.notify import service as outbox
from opsdesk.notify.models import ChannelKind
from opsdesk.notify.rules import ChannelIn, RuleIn
from opsdesk.oncall import escalation, escalation_text
from opsdesk.oncall import service as schedules
from opsdesk.oncall.schemas import PolicyIn, PolicyUpdate
from opsdesk.web.deps import Ctx, PathId, page
from opsdesk.web.render import back, render

router = APIRouter()

Errors = dict[str, str]
FormText = Annotated[str, Form(max_length=5000)]
FormLine = Annotated[str, Form(max_length=2000)]
ViewerCtx = Annotated[Ctx, Depends(page())]
ResponderCtx = Annotated[Ctx, Depends(page(Role.responder))]
ManagerCtx = Annotated[Ctx, Depends(page(Role.manager))]

POLICY_FIELDS = {"name", "description", "repeat", "levels"}
CHANNEL_FIELDS = {"name", "kind", "address", "url", "secret"}
RULE_FIELDS = {"urgency", "delay_minutes", "channel_id"}
KINDS = [k.value for k in ChannelKind]
OUTBOX_LIMIT = 200


def _put(errors: Errors, fields: set[str], name: str, msg: str) -> None:
    if name.startswith("levels.") and "levels" in fields:
        errors.setdefault("levels", f"{escalation_text.level_where(name)}: {msg}")
    elif name.startswith("secrets") and "secret" in fields:
        errors.setdefault("secret", msg)
    elif name in fields:
        errors.setdefault(name, msg)
    else:
        errors["form"] = f"{errors['form']}; {name}: {msg}" if "form" in errors else f"{name}: {msg}"


def _collect(exc: ValidationError | OpsdeskError, errors: Errors, fields: set[str]) -> int:
    """Put the messages of ``exc`` under the form's field names; the status to answer with. Other
    errors (a 404, a 403) are raised again."""
    if isinstance(exc, ValidationError):
        for e in exc.errors():
            loc = [str(x) for x in e["loc"]]
            _put(errors, fields, ".".join(loc) or "form", str(e["msg"]).removeprefix("Value error, "))
        return 422
    if exc.status not in (409, 422):
        raise exc
    if exc.errors:
        for fe in exc.errors:
            _put(errors, fields, fe.field, fe.message)
    elif exc.status == 409 and "name" in fields and "named" in exc.detail:
        errors["name"] = exc.detail
    else:
        errors["form"] = exc.detail
    return exc.status


# --- escalation policies -------------------------------------------------------------------------


def _targets(s: Session) -> dict[str, list[str]]:
    """What a level may page, for the form's help."""
    return {
        "schedule": [x.name for x in schedules.list_schedules(s)],
        "user": sorted(p.email for p in schedules.people(s)),
        "team": [t.name for t in auth.list_teams(s, limit=1000)],
    }


def _policy_view(s: Session, p: Any) -> dict[str, Any]:
    d = escalation.as_dict(s, p)
    d["summary"] = escalation_text.summary(d["levels"])
    d["text"] = escalation_text.levels_text(d["levels"])
    return d


def _policy_input(form: dict[str, str], errors: Errors) -> dict[str, Any]:
    """The form's fields for PolicyIn/PolicyUpdate; what cannot be read goes in ``errors``."""
    data: dict[str, Any] = {"name": form["name"], "description": form["description"]}
    repeat = form["repeat"].strip() or "0"
    if repeat.isdigit():
        data["repeat"] = int(repeat)
    else:
        errors["repeat"] = "a whole number from 0 to 9"
    try:
        data["levels"] = escalation_text.parse_levels(form["levels"])
    except (escalation_text.LevelError, ValidationError) as exc:
        msg = str(exc) if isinstance(exc, escalation_text.LevelError) else exc.errors()[0]["msg"]
        errors["levels"] = str(msg).removeprefix("Value error, ")
    return data


def _list_page(
    request: Request,
    ctx: Ctx,
    *,
    form: dict[str, str] | None = None,
    errors: Errors | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    with ctx.session() as s:
        policies = [_policy_view(s, p) for p in escalation.list_policies(s)]
        targets = _targets(s) if ctx.actor.can(Role.manager) else {}
    return render(
        request,
        ctx,
        "escalation/policies.html",
        status_code=status_code,
        nav="escalation",
        policies=policies,
        form=form or {"repeat": "0", "levels": ""},
        errors=errors or {},
        targets=targets,
        help=escalation_text.HELP,
    )


@router.get("/escalation-policies", response_class=HTMLResponse)
def policy_list(request: Request, ctx: ViewerCtx) -> HTMLResponse:
    return _list_page(request, ctx)


@router.post("/escalation-policies", response_model=None)
def policy_create(
    request: Request,
    ctx: ManagerCtx,
    name: FormLine = "",
    description: FormText = "",
    repeat: FormLine = "0",
    levels: FormText = "",
) -> Response:
    form = {"name": name, "description": description, "repeat": repeat, "levels": levels}
    errors: Errors = {}
    data = _policy_input(form, errors)
    status = 422
    if not errors:
        try:
            body = PolicyIn.model_validate(data)
            with ctx.session() as s:
                p = escalation.create(s, body, actor=ctx.actor, now=ctx.now())
                pid, label = p.id, p.name
            return back(
                f"/escalation-policies/{pid}",
                f"Escalation policy {label} created: choose it on a service to page its levels",
            )
        except (ValidationError, OpsdeskError) as exc:
            status = _collect(exc, errors, POLICY_FIELDS)
    return _list_page(request, ctx, form=form, errors=errors, status_code=status)


def _detail_page(
    request: Request,
    ctx: Ctx,
    policy_id: int,
    *,
    form: dict[str, str] | None = None,
    errors: Errors | None = None,
    failed: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    with ctx.session() as s:
        policy = _policy_view(s, escalation.get(s, policy_id))
        targets = _targets(s) if ctx.actor.can(Role.manager) else {}
    default = {
        "name": policy["name"],
        "description": policy["description"],
        "repeat": str(policy["repeat"]),
        "levels": policy["text"],
    }
    return render(
        request,
        ctx,
        "escalation/policy.html",
        status_code=status_code,
        nav="escalation",
        policy=policy,
        form=form if failed == "edit" and form is not None else default,
        errors=errors or {},
        failed=failed,
        targets=targets,
        help=escalation_text.HELP,
    )


@router.get("/escalation-policies/{policy_id}", response_class=HTMLResponse)
def policy_detail(request: Request, policy_id: PathId, ctx: ViewerCtx) -> HTMLResponse:
    return _detail_page(request, ctx, policy_id)


@router.post("/escalation-policies/{policy_id}", response_model=None)
def policy_update(
    request: Request,
    policy_id: PathId,
    ctx: ManagerCtx,
    name: FormLine = "",
    description: FormText = "",
    repeat: FormLine = "0",
    levels: FormText = "",
) -> Response:
    with ctx.session() as s:
        escalation.get(s, policy_id)  # a missing policy is a 404, not a form error
    form = {"name": name, "description": description, "repeat": repeat, "levels": levels}
    errors: Errors = {}
    data = _policy_input(form, errors)
    status = 422
    if not errors:
        try:
            body = PolicyUpdate.model_validate(data)
            with ctx.session() as s:
                label = escalation.update_policy(s, policy_id, body, actor=ctx.actor, now=ctx.now()).name
            return back(f"/escalation-policies/{policy_id}", f"Escalation policy {label} saved")
        except (ValidationError, OpsdeskError) as exc:
            status = _collect(exc, errors, POLICY_FIELDS)
    return _detail_page(request, ctx, policy_id, form=form, errors=errors, failed="edit", status_code=status)


@router.post("/escalation-policies/{policy_id}/delete", response_model=None)
def policy_delete(request: Request, policy_id: PathId, ctx: ManagerCtx) -> Response:
    errors: Errors = {}
    try:
        with ctx.session() as s:
            label = escalation.get(s, policy_id).name
            escalation.delete(s, policy_id, actor=ctx.actor, now=ctx.now())
        return back("/escalation-policies", f"Escalation policy {label} deleted")
    except OpsdeskError as exc:
        status = _collect(exc, errors, set())
    return _detail_page(request, ctx, policy_id, errors=errors, failed="delete", status_code=status)


# --- the outbox ----------------------------------------------------------------------------------


@router.get("/notifications", response_class=HTMLResponse)
def notifications(request: Request, ctx: ViewerCtx, status: str = "") -> HTMLResponse:
    status = status.strip()[:20]
    notice = None
    if status and status not in outbox_read.STATUSES:
        notice = f"status: {status!r} is not one of {', '.join(outbox_read.STATUSES)}; showing all"
        status = ""
    with ctx.session() as s:
        counts = outbox_read.counts(s)
        names: dict[int, str] = {}
        rows = [
            outbox_read.message_dict(s, m, names)
            for m in outbox_read.messages(s, status=status or None, limit=OUTBOX_LIMIT)
        ]
    return render(
        request,
        ctx,
        "escalation/notifications.html",
        nav="notifications",
        rows=rows,
        counts=counts,
        total=sum(counts.values()),
        status=status,
        statuses=outbox_read.STATUSES,
        notice=notice,
        limit=OUTBOX_LIMIT,
    )


def _back_to_outbox(status: str) -> str:
    return f"/notifications?status={status}" if status in outbox_read.STATUSES else "/notifications"


@router.post("/notifications/{message_id}/retry")
def notification_retry(message_id: PathId, ctx: ResponderCtx, status: FormLine = "") -> Response:
    try:
        with ctx.session() as s:
            m = outbox.retry(s, message_id, now=ctx.now())
            who = m.recipient
    except OpsdeskError as exc:
        if exc.status != 409:
            raise
        return back(_back_to_outbox(status), exc.detail, kind="bad")
    return back(_back_to_outbox(status), f"Message {message_id} to {who} is queued again")


@router.post("/notifications/retry-dead")
def notification_retry_dead(ctx: ManagerCtx, status: FormLine = "") -> Response:
    with ctx.session() as s:
        ids = outbox_read.dead_ids(s)
        for mid in ids:
            outbox.retry(s, mid, now=ctx.now())
    if not ids:
        return back(_back_to_outbox(status), "No dead messages to retry", kind="warn")
    return back(_back_to_outbox(status), f"{len(ids)} dead message(s) queued again")


# --- channels and rules --------------------------------------------------------------------------


def _channel_input(form: dict[str, str]) -> ChannelIn:
    kind = form["kind"]
    return ChannelIn.model_validate(
        {
            "name": form["name"],
            "kind": kind,
            "address": form["address"].strip() or None if kind == "email" else None,
            "url": form["url"].strip() or None if kind in ("apprise", "webhook") else None,
            "secrets": [form["secret"].strip()] if kind == "webhook" and form["secret"].strip() else None,
        }
    )


def _channel_form(
    name: FormLine = "",
    kind: FormLine = "email",
    address: FormLine = "",
    url: FormLine = "",
    secret: FormLine = "",
) -> dict[str, str]:
    return {"name": name, "kind": kind, "address": address, "url": url, "secret": secret}


ChannelForm = Annotated[dict[str, str], Depends(_channel_form)]
EMPTY_CHANNEL = {"name": "", "kind": "email", "address": "", "url": "", "secret": ""}
EMPTY_RULE = {"urgency": "any", "delay_minutes": "0", "channel_id": ""}


def _me(ctx: Ctx) -> int:
    if ctx.actor.id is None:
        raise OpsdeskError(detail="only a person has contact methods", status=403, title="Forbidden")
    return ctx.actor.id


def _me_page(
    request: Request,
    ctx: Ctx,
    *,
    channel_form: dict[str, str] | None = None,
    rule_form: dict[str, str] | None = None,
    errors: Errors | None = None,
    failed: str = "",
    created: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    me = _me(ctx)
    with ctx.session() as s:
        channels = [rules.channel_dict(c) for c in rules.list_channels(s, user_id=me)]
        my_rules = [rules.rule_dict(s, r) for r in rules.list_rules(s, me)]
        user = auth.get_user(s, me)
        email = user.email
    return render(
        request,
        ctx,
        "escalation/me.html",
        status_code=status_code,
        nav="me",
        channels=channels,
        rules=my_rules,
        email=email,
        channel_form=channel_form or EMPTY_CHANNEL,
        rule_form=rule_form or EMPTY_RULE,
        errors=errors or {},
        failed=failed,
        created=created,
        kinds=KINDS,
        urgencies=rules.URGENCIES,
    )


@router.get("/me/notifications", response_class=HTMLResponse)
def my_notifications(request: Request, ctx: ViewerCtx) -> HTMLResponse:
    return _me_page(request, ctx)


def _created(ch: Any, cfg: dict[str, Any]) -> dict[str, Any]:
    return {"name": ch.name, "kind": ch.kind, "secrets": list(cfg.get("secrets") or [])}


@router.post("/me/channels", response_model=None)
def my_channel_add(request: Request, ctx: ViewerCtx, form: ChannelForm) -> Response:
    me = _me(ctx)
    errors: Errors = {}
    try:
        data = _channel_input(form)
        with ctx.session() as s:
            ch, cfg = rules.create_channel(s, data, owner_id=me, actor=ctx.actor, now=ctx.now())
            made = _created(ch, cfg)
        if made["secrets"]:
            # The signing secret is shown in this answer only: no redirect that would lose it.
            return _me_page(request, ctx, created=made)
        return back("/me/notifications", f"Contact method {made['name']} added")
    except (ValidationError, OpsdeskError) as exc:
        status = _collect(exc, errors, CHANNEL_FIELDS)
    return _me_page(request, ctx, channel_form=form, errors=errors, failed="channel", status_code=status)


@router.post("/me/channels/{channel_id}/delete")
def my_channel_delete(channel_id: PathId, ctx: ViewerCtx) -> Response:
    me = _me(ctx)
    with ctx.session() as s:
        ch = rules.get_channel(s, channel_id)
        if ch.user_id != me:
            raise not_found("channel", channel_id)
        label = ch.name
        rules.delete_channel(s, channel_id, actor=ctx.actor, now=ctx.now())
    return back("/me/notifications", f"Contact method {label} deleted (and the rules that used it)")


@router.post("/me/rules", response_model=None)
def my_rule_add(
    request: Request,
    ctx: ViewerCtx,
    urgency: FormLine = "any",
    delay_minutes: FormLine = "0",
    channel_id: FormLine = "",
) -> Response:
    me = _me(ctx)
    form = {"urgency": urgency, "delay_minutes": delay_minutes, "channel_id": channel_id}
    errors: Errors = {}
    try:
        data = RuleIn.model_validate(
            {
                "urgency": urgency,
                "delay_minutes": delay_minutes.strip() or "0",
                "channel_id": channel_id.strip() or None,
            }
        )
        with ctx.session() as s:
            rule = rules.rule_dict(s, rules.add_rule(s, me, data, actor=ctx.actor, now=ctx.now()))
        when = "at once" if not rule["delay_minutes"] else f"after {rule['delay_minutes']} min"
        return back("/me/notifications", f"Rule added: {rule['urgency']} urgency, {rule['channel']}, {when}")
    except (ValidationError, OpsdeskError) as exc:
        status = _collect(exc, errors, RULE_FIELDS)
    return _me_page(request, ctx, rule_form=form, errors=errors, failed="rule", status_code=status)


@router.post("/me/rules/{rule_id}/delete")
def my_rule_delete(rule_id: PathId, ctx: ViewerCtx) -> Response:
    me = _me(ctx)
    with ctx.session() as s:
        rules.delete_rule(s, me, rule_id, actor=ctx.actor, now=ctx.now())
    return back("/me/notifications", "Rule deleted")


def _channels_page(
    request: Request,
    ctx: Ctx,
    *,
    form: dict[str, str] | None = None,
    errors: Errors | None = None,
    created: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    with ctx.session() as s:
        channels = [rules.channel_dict(c) for c in rules.list_channels(s, shared=True)]
    return render(
        request,
        ctx,
        "escalation/channels.html",
        status_code=status_code,
        nav="notifications",
        channels=channels,
        channel_form=form or EMPTY_CHANNEL,
        errors=errors or {},
        created=created,
        kinds=KINDS,
    )


@router.get("/channels", response_class=HTMLResponse)
def shared_channels(request: Request, ctx: ManagerCtx) -> HTMLResponse:
    return _channels_page(request, ctx)


@router.post("/channels", response_model=None)
def shared_channel_add(request: Request, ctx: ManagerCtx, form: ChannelForm) -> Response:
    errors: Errors = {}
    try:
        data = _channel_input(form)
        with ctx.session() as s:
            ch, cfg = rules.create_channel(s, data, owner_id=None, actor=ctx.actor, now=ctx.now())
            made = _created(ch, cfg)
        if made["secrets"]:
            return _channels_page(request, ctx, created=made)
        return back("/channels", f"Shared channel {made['name']} added")
    except (ValidationError, OpsdeskError) as exc:
        status = _collect(exc, errors, CHANNEL_FIELDS)
    return _channels_page(request, ctx, form=form, errors=errors, status_code=status)


@router.post("/channels/{channel_id}/delete")
def shared_channel_delete(channel_id: PathId, ctx: ManagerCtx) -> Response:
    with ctx.session() as s:
        ch = rules.get_channel(s, channel_id)
        if ch.user_id is not None:
            raise not_found("shared channel", channel_id)
        label = ch.name
        rules.delete_channel(s, channel_id, actor=ctx.actor, now=ctx.now())
    return back("/channels", f"Shared channel {label} deleted")
