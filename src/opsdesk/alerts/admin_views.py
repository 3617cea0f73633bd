"""HTML pages for silences, maintenance windows and dedup/grouping rules.

- ``/silences``: tabs active / pending / expired with counts; the new-silence form (responders)
  takes matchers one per line (``alertname=DiskFull``, ``instance=~"db-.*"``, or a ``{...}`` list),
  a duration or an end time, and a comment; while typing, htmx asks ``POST /silences/preview``
  how many firing alerts the matchers would mute. ``/silences?matcher=...`` (repeatable) opens the
  form prefilled, so an alert page can link "silence this"; an expired silence has a "Recreate"
  link that does the same.
- ``/maintenance``: windows with an in-progress badge and the next occurrence, in progress first;
  the form (managers) takes a service and/or a CI, start and end in the window's time zone, and a
  repeat preset (daily / weekly / monthly, each repeating the first occurrence) or a custom RFC
  5545 rule. ``/maintenance/{id}`` shows the next occurrences and edits or deletes the window.
- ``/alert-rules``: the rules in the order the pipeline tries them; ``/alert-rules/{id}`` edits
  or deletes one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy.orm import Session

from opsdesk.alerts import rules, silences
from opsdesk.alerts.admin_schemas import (
    RuleIn,
    RuleUpdate,
    SilenceIn,
    WindowIn,
    WindowUpdate,
    format_duration,
)
from opsdesk.alerts.matchers import Matcher, format_matchers, from_json, parse_matchers, require_selective
from opsdesk.changes import maintenance
from opsdesk.core.actor import Role
from opsdesk.core.errors import OpsdeskError
from opsdesk.web.deps import Ctx, PathId, page
from opsdesk.web.render import back, render

router = APIRouter()

Errors = dict[str, str]
FormText = Annotated[str, Form(max_length=5000)]
ViewerCtx = Annotated[Ctx, Depends(page())]
ResponderCtx = Annotated[Ctx, Depends(page(Role.responder))]
ManagerCtx = Annotated[Ctx, Depends(page(Role.manager))]
DURATIONS = ["30m", "1h", "2h", "4h", "8h", "1d", "3d", "1w"]
REPEATS = {
    "": "Does not repeat",
    "daily": "Daily",
    "weekly": "Weekly",
    "monthly": "Monthly",
    "custom": "Custom rule",
}
PRESETS = {"daily": "FREQ=DAILY", "weekly": "FREQ=WEEKLY", "monthly": "FREQ=MONTHLY"}
ZONES = [
    "UTC", "Europe/London", "Europe/Paris", "Europe/Berlin", "Europe/Madrid", "Europe/Rome",
    "Europe/Amsterdam", "Europe/Warsaw", "Europe/Helsinki", "America/New_York", "America/Chicago",
    "America/Denver", "America/Los_Angeles", "America/Sao_Paulo", "Asia/Tokyo", "Asia/Singapore",
    "Asia/Kolkata", "Asia/Shanghai", "Australia/Sydney",
]  # fmt: skip
MANY = 10_000


def _collect(exc: ValidationError | OpsdeskError, errors: Errors, rename: dict[str, str]) -> int:
    """Put the messages of ``exc`` under form field names; the status to answer with."""
    if isinstance(exc, ValidationError):
        for e in exc.errors():
            name = str(e["loc"][0]) if e["loc"] else "form"
            msg = str(e["msg"]).removeprefix("Value error, ")
            errors.setdefault(rename.get(name, name), msg)
        return 422
    if exc.status not in (409, 422):
        raise exc
    if exc.errors:
        for fe in exc.errors:
            errors.setdefault(rename.get(fe.field, fe.field), fe.message)
    else:
        errors["form"] = exc.detail
    return exc.status


def parse_lines(text: str) -> list[Matcher]:
    """Matchers one per line (a line may also hold a ``{...}`` or comma-separated list)."""
    out: list[Matcher] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                out += parse_matchers(line)
            except ValueError as exc:
                raise ValueError(f"line {n}: {exc}") from None
    return out


def _local_input(value: datetime, tz: str) -> str:
    """A UTC time as a ``datetime-local`` value in ``tz``."""
    return value.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%dT%H:%M")


def _parse_local(text: str, tz: ZoneInfo | None, field: str, errors: Errors) -> datetime | None:
    if not text.strip():
        errors.setdefault(field, "required")
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        errors.setdefault(field, "not a date and time")
        return None
    if tz is None:
        return None
    return value.replace(tzinfo=tz) if value.tzinfo is None else value


# --- silences ------------------------------------------------------------------------------------


def _silence_rows(s: Session, state: str, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for sil in silences.list_silences(s, now=now, state=state, limit=500):
        d = silences.as_dict(sil, now)
        d["matchers_list"] = [str(m) for m in silences.matchers_of(sil)]
        d["recreate"] = "/silences?" + urlencode([("matcher", m) for m in d["matchers_list"]]) + "#new"
        rows.append(d)
    return rows


def _silences_page(
    request: Request,
    ctx: Ctx,
    *,
    state: str = "active",
    form: dict[str, str] | None = None,
    errors: Errors | None = None,
    status_code: int = 200,
    open_form: bool = False,
) -> HTMLResponse:
    if state not in silences.STATES:
        state = "active"
    now = ctx.now()
    with ctx.session() as s:
        rows = _silence_rows(s, state, now)
        counts = silences.count_by_state(s, now)
    return render(
        request,
        ctx,
        "alert_admin/silences.html",
        status_code=status_code,
        nav="silences",
        state=state,
        rows=rows,
        counts=counts,
        form=form or {"duration": "2h"},
        errors=errors or {},
        durations=DURATIONS,
        open_form=open_form or bool(errors),
    )


@router.get("/silences", response_class=HTMLResponse)
def silence_list(
    request: Request,
    ctx: ViewerCtx,
    state: str = "active",
    matcher: Annotated[list[str] | None, Query(max_length=50)] = None,
    comment: Annotated[str, Query(max_length=2000)] = "",
) -> HTMLResponse:
    form = {"duration": "2h", "comment": comment}
    if matcher:
        form["matchers"] = "\n".join(x.strip() for x in matcher if x.strip())
    return _silences_page(request, ctx, state=state, form=form, open_form=bool(matcher))


@router.post("/silences", response_model=None)
def silence_create(
    request: Request,
    ctx: ResponderCtx,
    matchers: FormText = "",
    duration: Annotated[str, Form(max_length=100)] = "",
    until: Annotated[str, Form(max_length=100)] = "",
    comment: FormText = "",
) -> Response:
    form = {"matchers": matchers, "duration": duration, "until": until, "comment": comment}
    errors: Errors = {}
    body: dict[str, Any] = {"comment": comment}
    try:
        body["matchers"] = [m.as_json() for m in parse_lines(matchers)]
    except ValueError as exc:
        errors["matchers"] = str(exc)
    if until.strip():
        body["ends_at"] = _parse_local(until, ZoneInfo("UTC"), "until", errors)
    elif duration.strip():
        body["duration"] = duration
    else:
        errors["duration"] = "give a duration or an end time"
    status = 422
    if not errors:
        try:
            data = SilenceIn.model_validate(body)
            with ctx.session() as s:
                sil = silences.create(s, data, actor=ctx.actor, now=ctx.now())
                state = silences.state(sil, ctx.now())
                sid = sil.id
            return back(f"/silences?state={state}", f"Silence {sid} created")
        except (ValidationError, OpsdeskError) as exc:
            status = _collect(exc, errors, {"ends_at": "until", "starts_at": "until"})
    return _silences_page(request, ctx, form=form, errors=errors, status_code=status)


@router.post("/silences/preview", response_class=HTMLResponse)
def silence_preview(request: Request, ctx: ResponderCtx, matchers: FormText = "") -> HTMLResponse:
    """The htmx partial under the form: what the matchers would mute now."""
    error: str | None = None
    warning: str | None = None
    count = 0
    sample: list[Any] = []
    parsed: list[Matcher] = []
    try:
        parsed = parse_lines(matchers)
    except ValueError as exc:
        error = str(exc)
    if parsed:
        try:
            require_selective(parsed)
        except ValueError as exc:
            warning = str(exc)
        with ctx.session() as s:
            count, sample = silences.affected(s, parsed, ctx.now())
    return render(
        request,
        ctx,
        "alert_admin/_silence_preview.html",
        count=count,
        sample=sample,
        error=error,
        warning=warning,
        text=format_matchers(parsed) if parsed else "",
    )


@router.post("/silences/{silence_id}/expire")
def silence_expire(silence_id: PathId, ctx: ResponderCtx, state: FormText = "active") -> Response:
    try:
        with ctx.session() as s:
            silences.expire(s, silence_id, actor=ctx.actor, now=ctx.now())
    except OpsdeskError as exc:
        if exc.status != 409:
            raise
        return back("/silences?state=expired", exc.detail, kind="bad")
    target = state if state in silences.STATES else "active"
    return back(f"/silences?state={target}", f"Silence {silence_id} expired")


# --- maintenance windows -------------------------------------------------------------------------


def _targets(s: Session) -> dict[str, Any]:
    from opsdesk.cmdb import service as cmdb

    return {
        "services": cmdb.list_services(s, limit=MANY),
        "cis": cmdb.list_cis(s, limit=MANY),
    }


def _window_view(s: Session, w: Any, now: datetime) -> dict[str, Any]:
    d = maintenance.as_dict(s, w, now)
    tz = ZoneInfo(w.timezone)
    nxt = d["next_occurrence"]
    d["next_local"] = (
        (nxt["starts_at"].astimezone(tz), nxt["ends_at"].astimezone(tz)) if nxt is not None else None
    )
    d["first_local"] = (w.starts_at.astimezone(tz), w.ends_at.astimezone(tz))
    d["repeat_label"] = _repeat_label(w.rrule)
    return d


def _repeat_label(rrule: str | None) -> str:
    if not rrule:
        return "once"
    for key, text in PRESETS.items():
        if rrule == text:
            return key
    return rrule


def _window_form_defaults(w: Any) -> dict[str, str]:
    preset = next((k for k, v in PRESETS.items() if v == w.rrule), "custom" if w.rrule else "")
    return {
        "name": w.name,
        "service_id": str(w.service_id or ""),
        "ci_id": str(w.ci_id or ""),
        "start": _local_input(w.starts_at, w.timezone),
        "end": _local_input(w.ends_at, w.timezone),
        "timezone": w.timezone,
        "repeat": preset,
        "rrule": w.rrule if preset == "custom" else "",
        "comment": w.comment,
    }


def _window_body(form: dict[str, str], errors: Errors) -> dict[str, Any]:
    """The form's fields as a WindowIn/WindowUpdate body (times read in the chosen time zone)."""
    tz_name = form["timezone"].strip() or "UTC"
    tz: ZoneInfo | None = None
    try:
        tz = maintenance.zone(tz_name)
    except OpsdeskError as exc:
        errors["timezone"] = exc.errors[0].message if exc.errors else exc.detail
    repeat = form["repeat"]
    if repeat == "custom":
        rrule: str | None = form["rrule"].strip()
        if not rrule:
            errors["rrule"] = "write the rule, e.g. FREQ=WEEKLY;BYDAY=SU"
    elif repeat in PRESETS:
        rrule = PRESETS[repeat]
    elif repeat == "":
        rrule = None
    else:
        errors["repeat"] = "choose how the window repeats"
        rrule = None
    body: dict[str, Any] = {
        "name": form["name"],
        "service_id": int(form["service_id"]) if form["service_id"].isdigit() else None,
        "ci_id": int(form["ci_id"]) if form["ci_id"].isdigit() else None,
        "starts_at": _parse_local(form["start"], tz, "start", errors),
        "ends_at": _parse_local(form["end"], tz, "end", errors),
        "rrule": rrule,
        "timezone": tz_name,
        "comment": form["comment"],
    }
    if body["service_id"] is None and body["ci_id"] is None:
        errors.setdefault("service_id", "choose a service or a CI (or both)")
    return body


WINDOW_RENAME = {"starts_at": "start", "ends_at": "end", "service": "service_id", "ci": "ci_id"}


def _window_form(
    name: FormText = "",
    service_id: Annotated[str, Form(max_length=20)] = "",
    ci_id: Annotated[str, Form(max_length=20)] = "",
    start: Annotated[str, Form(max_length=100)] = "",
    end: Annotated[str, Form(max_length=100)] = "",
    timezone: Annotated[str, Form(max_length=100)] = "UTC",
    repeat: Annotated[str, Form(max_length=20)] = "",
    rrule: FormText = "",
    comment: FormText = "",
) -> dict[str, str]:
    return {
        "name": name,
        "service_id": service_id,
        "ci_id": ci_id,
        "start": start,
        "end": end,
        "timezone": timezone,
        "repeat": repeat,
        "rrule": rrule,
        "comment": comment,
    }


WindowForm = Annotated[dict[str, str], Depends(_window_form)]


def _maintenance_page(
    request: Request,
    ctx: Ctx,
    *,
    form: dict[str, str] | None = None,
    errors: Errors | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    now = ctx.now()
    with ctx.session() as s:
        views = [_window_view(s, w, now) for w in maintenance.list_windows(s, limit=MANY)]
        targets = _targets(s)

    def order(d: dict[str, Any]) -> tuple[int, float]:
        """In progress (ending soonest first), then upcoming (soonest first), then over (latest first)."""
        nxt = d["next_occurrence"]
        if d["in_progress"]:
            return 0, nxt["ends_at"].timestamp()
        return (1, nxt["starts_at"].timestamp()) if nxt else (2, -d["ends_at"].timestamp())

    views.sort(key=order)
    return render(
        request,
        ctx,
        "alert_admin/maintenance.html",
        status_code=status_code,
        nav="maintenance",
        windows=views,
        form=form or {"timezone": "UTC", "repeat": ""},
        errors=errors or {},
        repeats=REPEATS,
        zones=ZONES,
        **targets,
    )


@router.get("/maintenance", response_class=HTMLResponse)
def maintenance_list(request: Request, ctx: ViewerCtx) -> HTMLResponse:
    return _maintenance_page(request, ctx)


@router.post("/maintenance", response_model=None)
def maintenance_create(request: Request, ctx: ManagerCtx, form: WindowForm) -> Response:
    errors: Errors = {}
    body = _window_body(form, errors)
    status = 422
    if not errors:
        try:
            data = WindowIn.model_validate(body)
            with ctx.session() as s:
                w = maintenance.create(s, data, actor=ctx.actor, now=ctx.now())
                wid, name = w.id, w.name
            return back(f"/maintenance/{wid}", f"Maintenance window {name} created")
        except (ValidationError, OpsdeskError) as exc:
            status = _collect(exc, errors, WINDOW_RENAME)
    return _maintenance_page(request, ctx, form=form, errors=errors, status_code=status)


def _window_detail(
    request: Request,
    ctx: Ctx,
    window_id: int,
    *,
    form: dict[str, str] | None = None,
    errors: Errors | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    now = ctx.now()
    with ctx.session() as s:
        w = maintenance.get(s, window_id)
        view = _window_view(s, w, now)
        tz = ZoneInfo(w.timezone)
        upcoming = [
            (a.astimezone(tz), b.astimezone(tz))
            for a, b in maintenance.occurrences(w, now, now + timedelta(days=400))[:8]
        ]
        targets = _targets(s)
        form = form or _window_form_defaults(w)
    return render(
        request,
        ctx,
        "alert_admin/maintenance_edit.html",
        status_code=status_code,
        nav="maintenance",
        w=view,
        upcoming=upcoming,
        form=form,
        errors=errors or {},
        repeats=REPEATS,
        zones=ZONES,
        **targets,
    )


@router.get("/maintenance/{window_id}", response_class=HTMLResponse)
def maintenance_detail(request: Request, window_id: PathId, ctx: ViewerCtx) -> HTMLResponse:
    return _window_detail(request, ctx, window_id)


@router.post("/maintenance/{window_id}", response_model=None)
def maintenance_update(request: Request, window_id: PathId, ctx: ManagerCtx, form: WindowForm) -> Response:
    with ctx.session() as s:
        maintenance.get(s, window_id)  # a missing window is a 404, not a form error
    errors: Errors = {}
    body = _window_body(form, errors)
    status = 422
    if not errors:
        try:
            data = WindowUpdate.model_validate(body)
            with ctx.session() as s:
                w = maintenance.update(s, window_id, data, actor=ctx.actor, now=ctx.now())
                name = w.name
            return back(f"/maintenance/{window_id}", f"Maintenance window {name} saved")
        except (ValidationError, OpsdeskError) as exc:
            status = _collect(exc, errors, WINDOW_RENAME)
    return _window_detail(request, ctx, window_id, form=form, errors=errors, status_code=status)


@router.post("/maintenance/{window_id}/delete")
def maintenance_delete(window_id: PathId, ctx: ManagerCtx) -> Response:
    with ctx.session() as s:
        name = maintenance.get(s, window_id).name
        maintenance.delete(s, window_id, actor=ctx.actor, now=ctx.now())
    return back("/maintenance", f"Maintenance window {name} deleted")


# --- alert rules ---------------------------------------------------------------------------------


def _rule_form(
    name: FormText = "",
    position: Annotated[str, Form(max_length=20)] = "100",
    enabled: Annotated[str, Form(max_length=10)] = "",
    matchers: FormText = "",
    fingerprint_labels: FormText = "",
    group_by: FormText = "",
    group_window: Annotated[str, Form(max_length=50)] = "",
    reopen_window: Annotated[str, Form(max_length=50)] = "",
) -> dict[str, str]:
    return {
        "name": name,
        "position": position,
        "enabled": enabled,
        "matchers": matchers,
        "fingerprint_labels": fingerprint_labels,
        "group_by": group_by,
        "group_window": group_window,
        "reopen_window": reopen_window,
    }


RuleForm = Annotated[dict[str, str], Depends(_rule_form)]
RULE_RENAME = {"group_window_seconds": "group_window", "reopen_window_seconds": "reopen_window"}


def _labels(text: str) -> list[str]:
    return [x.strip() for x in text.replace("\n", ",").split(",") if x.strip()]


def _rule_body(form: dict[str, str], errors: Errors) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": form["name"],
        "position": form["position"].strip() or "100",
        "enabled": form["enabled"] in ("on", "true", "1"),
        "fingerprint_labels": _labels(form["fingerprint_labels"]),
        "group_by": _labels(form["group_by"]),
        "group_window_seconds": form["group_window"].strip() or None,
        "reopen_window_seconds": form["reopen_window"].strip() or None,
    }
    try:
        body["matchers"] = [m.as_json() for m in parse_lines(form["matchers"])]
    except ValueError as exc:
        errors["matchers"] = str(exc)
    return body


def _rule_form_defaults(rule: Any) -> dict[str, str]:
    return {
        "name": rule.name,
        "position": str(rule.position),
        "enabled": "on" if rule.enabled else "",
        "matchers": "\n".join(str(m) for m in from_json(rule.matchers)),
        "fingerprint_labels": ", ".join(rule.fingerprint_labels),
        "group_by": ", ".join(rule.group_by),
        "group_window": format_duration(rule.group_window_seconds),
        "reopen_window": format_duration(rule.reopen_window_seconds),
    }


def _defaults(ctx: Ctx) -> dict[str, str]:
    """The settings' windows, shown where a rule leaves them empty."""
    group = getattr(ctx.settings, "alert_group_window_seconds", None)
    reopen = getattr(ctx.settings, "alert_reopen_window_seconds", None)
    return {
        "group_window": format_duration(group) if group is not None else "",
        "reopen_window": format_duration(reopen) if reopen is not None else "",
    }


def _rules_page(
    request: Request,
    ctx: Ctx,
    *,
    form: dict[str, str] | None = None,
    errors: Errors | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    with ctx.session() as s:
        rows = [rules.as_dict(r) for r in rules.list_rules(s)]
    for d in rows:
        d["matchers_list"] = [str(x) for x in from_json(d["matchers"])]
    return render(
        request,
        ctx,
        "alert_admin/rules.html",
        status_code=status_code,
        nav="rules",
        rows=rows,
        form=form or {"position": "100", "enabled": "on"},
        errors=errors or {},
        defaults=_defaults(ctx),
        format_duration=format_duration,
    )


@router.get("/alert-rules", response_class=HTMLResponse)
def rule_list(request: Request, ctx: ViewerCtx) -> HTMLResponse:
    return _rules_page(request, ctx)


@router.post("/alert-rules", response_model=None)
def rule_create(request: Request, ctx: ManagerCtx, form: RuleForm) -> Response:
    errors: Errors = {}
    body = _rule_body(form, errors)
    status = 422
    if not errors:
        try:
            data = RuleIn.model_validate(body)
            with ctx.session() as s:
                rule = rules.create(s, data, actor=ctx.actor, now=ctx.now())
                name = rule.name
            return back("/alert-rules", f"Rule {name} created")
        except (ValidationError, OpsdeskError) as exc:
            status = _collect(exc, errors, RULE_RENAME)
    return _rules_page(request, ctx, form=form, errors=errors, status_code=status)


def _rule_detail(
    request: Request,
    ctx: Ctx,
    rule_id: int,
    *,
    form: dict[str, str] | None = None,
    errors: Errors | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    with ctx.session() as s:
        rule = rules.get(s, rule_id)
        view = rules.as_dict(rule)
        form = form or _rule_form_defaults(rule)
    return render(
        request,
        ctx,
        "alert_admin/rule_edit.html",
        status_code=status_code,
        nav="rules",
        rule=view,
        form=form,
        errors=errors or {},
        defaults=_defaults(ctx),
    )


@router.get("/alert-rules/{rule_id}", response_class=HTMLResponse)
def rule_detail(request: Request, rule_id: PathId, ctx: ViewerCtx) -> HTMLResponse:
    return _rule_detail(request, ctx, rule_id)


@router.post("/alert-rules/{rule_id}", response_model=None)
def rule_update(request: Request, rule_id: PathId, ctx: ManagerCtx, form: RuleForm) -> Response:
    with ctx.session() as s:
        rules.get(s, rule_id)  # a missing rule is a 404, not a form error
    errors: Errors = {}
    body = _rule_body(form, errors)
    status = 422
    if not errors:
        try:
            data = RuleUpdate.model_validate(body)
            with ctx.session() as s:
                name = rules.update(s, rule_id, data, actor=ctx.actor, now=ctx.now()).name
            return back("/alert-rules", f"Rule {name} saved")
        except (ValidationError, OpsdeskError) as exc:
            status = _collect(exc, errors, RULE_RENAME)
    return _rule_detail(request, ctx, rule_id, form=form, errors=errors, status_code=status)


@router.post("/alert-rules/{rule_id}/delete")
def rule_delete(rule_id: PathId, ctx: ManagerCtx) -> Response:
    with ctx.session() as s:
        name = rules.get(s, rule_id).name
        rules.delete(s, rule_id, actor=ctx.actor, now=ctx.now())
    return back("/alert-rules", f"Rule {name} deleted")
