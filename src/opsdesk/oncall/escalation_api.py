"""``/api/v1/escalation-policies``, an incident's escalation, notification channels and rules, and
the signed acknowledge/resolve links (``/act/<token>``, no login)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from opsdesk.core.actor import Role
from opsdesk.core.errors import invalid, not_found
from opsdesk.notify import links, rules
from opsdesk.notify.rules import ChannelIn, ChannelOut, ChannelUpdate, RuleIn, RuleOut
from opsdesk.oncall import escalation
from opsdesk.oncall.schemas import EscalationOut, PolicyIn, PolicyOut, PolicyUpdate
from opsdesk.web.deps import Ctx, PathId, api

router = APIRouter(tags=["on-call"])
actions = APIRouter(include_in_schema=False)


@router.get("/escalation-policies", response_model=list[PolicyOut])
def list_policies(ctx: Ctx = Depends(api())) -> object:
    with ctx.session() as s:
        return [escalation.as_dict(s, p) for p in escalation.list_policies(s)]


@router.post("/escalation-policies", response_model=PolicyOut, status_code=201)
def create_policy(data: PolicyIn, ctx: Ctx = Depends(api(Role.manager))) -> object:
    """Levels in order, each with targets (``{"type": "schedule", "ref": "Primary"}``, a user by
    e-mail, a team by name, or any of them by ``id``) and the minutes to wait before the next."""
    with ctx.session() as s:
        return escalation.as_dict(s, escalation.create(s, data, actor=ctx.actor, now=ctx.now()))


@router.get("/escalation-policies/{policy_id}", response_model=PolicyOut)
def get_policy(policy_id: PathId, ctx: Ctx = Depends(api())) -> object:
    with ctx.session() as s:
        return escalation.as_dict(s, escalation.get(s, policy_id))


@router.patch("/escalation-policies/{policy_id}", response_model=PolicyOut)
def update_policy(policy_id: PathId, data: PolicyUpdate, ctx: Ctx = Depends(api(Role.manager))) -> object:
    """Change fields; ``levels``, when given, replaces every level (running escalations use the new
    levels from their next step)."""
    with ctx.session() as s:
        p = escalation.update_policy(s, policy_id, data, actor=ctx.actor, now=ctx.now())
        return escalation.as_dict(s, p)


@router.delete("/escalation-policies/{policy_id}", status_code=204)
def delete_policy(policy_id: PathId, ctx: Ctx = Depends(api(Role.manager))) -> Response:
    with ctx.session() as s:
        escalation.delete(s, policy_id, actor=ctx.actor, now=ctx.now())
    return Response(status_code=204)


@router.get("/incidents/{incident_id}/escalation", response_model=EscalationOut)
def incident_escalation(incident_id: PathId, ctx: Ctx = Depends(api())) -> object:
    """Where the incident is in its escalation policy (404 when its service has none)."""
    with ctx.session() as s:
        esc = escalation.escalation_of(s, incident_id)
        if esc is None:
            raise not_found("escalation of incident", incident_id)
        return escalation.escalation_dict(s, esc)


# --- channels and rules --------------------------------------------------------------------------


@router.get("/channels", response_model=list[ChannelOut])
def list_shared_channels(ctx: Ctx = Depends(api())) -> object:
    """Shared channels (a team's chat room, a generic webhook)."""
    with ctx.session() as s:
        return [rules.channel_dict(c) for c in rules.list_channels(s, shared=True)]


@router.post("/channels", response_model=ChannelOut, status_code=201)
def create_shared_channel(data: ChannelIn, ctx: Ctx = Depends(api(Role.manager))) -> object:
    """A webhook made without ``secrets`` gets one; it is shown in this answer only."""
    with ctx.session() as s:
        ch, cfg = rules.create_channel(s, data, owner_id=None, actor=ctx.actor, now=ctx.now())
        return rules.channel_dict(ch, cfg)


@router.patch("/channels/{channel_id}", response_model=ChannelOut)
def update_channel(channel_id: PathId, data: ChannelUpdate, ctx: Ctx = Depends(api())) -> object:
    """Its owner or a manager. Setting ``secrets`` replaces them (list the new one first and keep the
    old one while receivers move: each is signed with)."""
    with ctx.session() as s:
        ch, cfg = rules.update_channel(s, channel_id, data, actor=ctx.actor, now=ctx.now())
        return rules.channel_dict(ch, cfg)


@router.delete("/channels/{channel_id}", status_code=204)
def delete_channel(channel_id: PathId, ctx: Ctx = Depends(api())) -> Response:
    with ctx.session() as s:
        rules.delete_channel(s, channel_id, actor=ctx.actor, now=ctx.now())
    return Response(status_code=204)


def _me(ctx: Ctx) -> int:
    if ctx.actor.id is None:
        raise invalid("user", "call this as a user")
    return ctx.actor.id


@router.get("/me/channels", response_model=list[ChannelOut])
def my_channels(ctx: Ctx = Depends(api())) -> object:
    with ctx.session() as s:
        return [rules.channel_dict(c) for c in rules.list_channels(s, user_id=_me(ctx))]


@router.post("/me/channels", response_model=ChannelOut, status_code=201)
def add_my_channel(data: ChannelIn, ctx: Ctx = Depends(api())) -> object:
    """One of your contact methods: an e-mail address, an apprise URL, or a webhook."""
    with ctx.session() as s:
        ch, cfg = rules.create_channel(s, data, owner_id=_me(ctx), actor=ctx.actor, now=ctx.now())
        return rules.channel_dict(ch, cfg)


@router.get("/me/notification-rules", response_model=list[RuleOut])
def my_rules(ctx: Ctx = Depends(api())) -> object:
    """Your rules; with none, a page is an e-mail to your account address at once."""
    with ctx.session() as s:
        return [rules.rule_dict(s, r) for r in rules.list_rules(s, _me(ctx))]


@router.post("/me/notification-rules", response_model=RuleOut, status_code=201)
def add_my_rule(data: RuleIn, ctx: Ctx = Depends(api())) -> object:
    with ctx.session() as s:
        return rules.rule_dict(s, rules.add_rule(s, _me(ctx), data, actor=ctx.actor, now=ctx.now()))


@router.delete("/me/notification-rules/{rule_id}", status_code=204)
def delete_my_rule(rule_id: PathId, ctx: Ctx = Depends(api())) -> Response:
    with ctx.session() as s:
        rules.delete_rule(s, _me(ctx), rule_id, actor=ctx.actor, now=ctx.now())
    return Response(status_code=204)


@router.get("/users/{user_id}/notification-rules", response_model=list[RuleOut])
def user_rules(user_id: PathId, ctx: Ctx = Depends(api(Role.manager))) -> object:
    with ctx.session() as s:
        return [rules.rule_dict(s, r) for r in rules.list_rules(s, user_id)]


# --- acknowledge / resolve from the notification ---------------------------------------------------


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "") and "text/html" not in request.headers.get(
        "accept", ""
    )


def _answer(request: Request, status: int, title: str, detail: str, **extra: Any) -> Response:
    if _wants_json(request):
        body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
        return JSONResponse(
            body, status_code=status, media_type="application/problem+json" if status >= 400 else None
        )
    from opsdesk.web.render import render

    return render(request, None, "act.html", status_code=status, title=title, detail=detail, **extra)


@actions.get("/act/{token}", response_class=HTMLResponse)
def act_page(token: str, request: Request) -> Response:
    """What the link will do, and one button (so link scanners that open every link change nothing)."""
    st = request.app.state
    now = st.clock.now()
    try:
        claims = links.verify(token, now=now)
    except links.LinkError as exc:
        return _answer(request, exc.status, exc.title, exc.detail)
    from opsdesk.incidents.models import Incident

    with st.db.session() as s:
        if links.used(s, claims):
            return _answer(
                request, 409, "Link already used", "This link was already used; each link works once."
            )
        inc = s.get(Incident, claims.incident_id)
        if inc is None:
            return _answer(request, 404, "Not found", f"incident {claims.incident_id} does not exist")
        return _answer(
            request,
            200,
            f"{claims.action.title()} {inc.key}?",
            f"{inc.title} (now {inc.status})",
            action=claims.action,
            token=token,
            incident_id=inc.id,
            status_now=inc.status,
        )


@actions.post("/act/{token}")
def act(token: str, request: Request) -> Response:
    """Acknowledge or resolve as the person the link was made for; once, before it expires."""
    from opsdesk.auth import service as auth
    from opsdesk.auth.models import User
    from opsdesk.core.errors import OpsdeskError
    from opsdesk.incidents import service as incidents

    st = request.app.state
    now = st.clock.now()
    try:
        claims = links.verify(token, now=now)
    except links.LinkError as exc:
        return _answer(request, exc.status, exc.title, exc.detail)
    with st.db.session() as s:
        user = s.get(User, claims.user_id)
        if user is None or not user.active:
            return _answer(
                request, 403, "Link not valid", "The person this link was made for cannot act any more."
            )
        try:
            links.use(s, claims, now=now)
        except links.LinkError as exc:
            return _answer(request, exc.status, exc.title, exc.detail)
        actor = auth.actor_for(user)
        note = "from a notification link"
        try:
            if claims.action == "acknowledge":
                inc = incidents.acknowledge(s, claims.incident_id, actor=actor, now=now, note=note)
            else:
                inc = incidents.resolve(s, claims.incident_id, actor=actor, now=now, note=note)
        except OpsdeskError as exc:
            s.rollback()
            return _answer(request, exc.status, exc.title, exc.detail)
        key, status = inc.key, inc.status
    return _answer(
        request, 200, f"{key} is {status}", f"Done: {key} is {status}.", incident_id=claims.incident_id
    )
