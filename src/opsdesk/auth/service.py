"""Users, teams, API tokens and web sessions."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from opsdesk.audit import service as audit
from opsdesk.auth.models import ApiToken, Team, TeamMember, User, WebSession
from opsdesk.auth.schemas import TeamIn, TeamUpdate, UserIn, UserUpdate
from opsdesk.core.actor import Actor, Role
from opsdesk.core.errors import conflict, forbidden, invalid, not_found
from opsdesk.core.security import (
    generate_password,
    hash_password,
    new_api_token,
    new_csrf_token,
    new_session_token,
    token_digest,
    verify_password,
)

USER_FIELDS = ["email", "name", "role", "active"]
TEAM_FIELDS = ["name", "description"]


# --- users -------------------------------------------------------------------------------------


def get_user(s: Session, user_id: int) -> User:
    user = s.get(User, user_id)
    if user is None:
        raise not_found("user", user_id)
    return user


def get_user_by_email(s: Session, email: str) -> User | None:
    return s.scalar(select(User).where(User.email == email.strip().lower()))


def list_users(s: Session, *, after_id: int = 0, limit: int = 100) -> list[User]:
    return list(s.scalars(select(User).where(User.id > after_id).order_by(User.id).limit(limit)))


def create_user(s: Session, data: UserIn, *, actor: Actor, now: datetime) -> User:
    if get_user_by_email(s, data.email) is not None:
        raise conflict(f"a user with e-mail {data.email} already exists")
    user = User(
        email=data.email,
        name=data.name,
        role=data.role.value,
        password_hash=hash_password(data.password) if data.password else None,
        active=True,
        created_at=now,
        updated_at=now,
    )
    s.add(user)
    s.flush()
    audit.created(s, "user", user.id, audit.snapshot(user, USER_FIELDS), actor=actor, at=now)
    return user


def update_user(s: Session, user_id: int, data: UserUpdate, *, actor: Actor, now: datetime) -> User:
    user = get_user(s, user_id)
    before = audit.snapshot(user, USER_FIELDS)
    if data.role is not None and data.role != Role.admin and user.role == Role.admin.value:
        _refuse_last_admin(s, user)
    if data.active is False and user.role == Role.admin.value:
        _refuse_last_admin(s, user)
    if data.name is not None:
        user.name = data.name
    if data.role is not None:
        user.role = data.role.value
    if data.active is not None:
        user.active = data.active
    if data.password is not None:
        user.password_hash = hash_password(data.password)
    user.updated_at = now
    after = audit.snapshot(user, USER_FIELDS)
    if data.password is not None:
        after["password"] = "changed"
    audit.updated(s, "user", user.id, before, after, actor=actor, at=now)
    return user


def delete_user(s: Session, user_id: int, *, actor: Actor, now: datetime) -> None:
    user = get_user(s, user_id)
    if user.role == Role.admin.value:
        _refuse_last_admin(s, user)
    if actor.id == user.id:
        raise conflict("you cannot delete your own account")
    audit.deleted(s, "user", user.id, audit.snapshot(user, USER_FIELDS), actor=actor, at=now)
    s.delete(user)


def _refuse_last_admin(s: Session, user: User) -> None:
    admins = s.scalar(
        select(func.count()).select_from(User).where(User.role == Role.admin.value, User.active.is_(True))
    )
    if (admins or 0) <= 1 and user.active:
        raise conflict("this is the last active admin; make another admin first")


def authenticate(s: Session, email: str, password: str) -> User | None:
    user = get_user_by_email(s, email)
    if user is None or not user.active or not user.password_hash:
        # Hash anyway so a missing account takes as long as a wrong password.
        verify_password(_DUMMY_HASH, password)
        return None
    return user if verify_password(user.password_hash, password) else None


_DUMMY_HASH = hash_password("not-a-real-password")


def ensure_first_admin(s: Session, *, email: str, now: datetime) -> tuple[str, str] | None:
    """Create an admin with a generated password when there is no user at all."""
    if s.scalar(select(func.count()).select_from(User)):
        return None
    password = generate_password()
    create_user(
        s,
        UserIn(email=email, name="Administrator", role=Role.admin, password=password),
        actor=Actor(id=None, label="setup", role=Role.admin),
        now=now,
    )
    return email, password


def actor_for(user: User) -> Actor:
    return Actor(id=user.id, label=user.email, role=Role(user.role))


# --- teams -------------------------------------------------------------------------------------


def get_team(s: Session, team_id: int) -> Team:
    team = s.get(Team, team_id)
    if team is None:
        raise not_found("team", team_id)
    return team


def get_team_by_name(s: Session, name: str) -> Team | None:
    return s.scalar(select(Team).where(Team.name == name))


def list_teams(s: Session, *, after_id: int = 0, limit: int = 100) -> list[Team]:
    return list(s.scalars(select(Team).where(Team.id > after_id).order_by(Team.id).limit(limit)))


def team_member_ids(team: Team) -> list[int]:
    return sorted(m.user_id for m in team.members)


def _team_snapshot(team: Team) -> dict[str, object]:
    return {**audit.snapshot(team, TEAM_FIELDS), "member_ids": team_member_ids(team)}


def _set_members(s: Session, team: Team, user_ids: list[int]) -> None:
    wanted = list(dict.fromkeys(user_ids))
    if wanted:
        found = set(s.scalars(select(User.id).where(User.id.in_(wanted))))
        missing = [u for u in wanted if u not in found]
        if missing:
            raise invalid("member_ids", f"no user with id {missing[0]}")
    current = {m.user_id: m for m in team.members}
    for uid, m in current.items():
        if uid not in wanted:
            team.members.remove(m)
    for uid in wanted:
        if uid not in current:
            team.members.append(TeamMember(user_id=uid))


def create_team(s: Session, data: TeamIn, *, actor: Actor, now: datetime) -> Team:
    if get_team_by_name(s, data.name) is not None:
        raise conflict(f"a team named {data.name!r} already exists")
    team = Team(name=data.name, description=data.description, created_at=now, updated_at=now)
    s.add(team)
    _set_members(s, team, data.member_ids)
    s.flush()
    audit.created(s, "team", team.id, _team_snapshot(team), actor=actor, at=now)
    return team


def update_team(s: Session, team_id: int, data: TeamUpdate, *, actor: Actor, now: datetime) -> Team:
    team = get_team(s, team_id)
    before = _team_snapshot(team)
    if data.name is not None and data.name != team.name:
        if get_team_by_name(s, data.name) is not None:
            raise conflict(f"a team named {data.name!r} already exists")
        team.name = data.name
    if data.description is not None:
        team.description = data.description
    if data.member_ids is not None:
        _set_members(s, team, data.member_ids)
    team.updated_at = now
    s.flush()
    audit.updated(s, "team", team.id, before, _team_snapshot(team), actor=actor, at=now)
    return team


def delete_team(s: Session, team_id: int, *, actor: Actor, now: datetime) -> None:
    from opsdesk.cmdb import service as cmdb  # cmdb depends on teams; import here to keep the cycle lazy

    team = get_team(s, team_id)
    owned = cmdb.owned_by_team(s, team.id)
    if owned:
        raise conflict(
            f"team {team.name!r} owns {len(owned)} service(s) or CI(s): {', '.join(owned[:5])}; "
            "give them another owner first",
            owned=owned,
        )
    audit.deleted(s, "team", team.id, _team_snapshot(team), actor=actor, at=now)
    s.delete(team)


def team_member_emails(s: Session, team_id: int) -> list[tuple[int, str]]:
    rows = s.execute(
        select(User.id, User.email)
        .join(TeamMember, TeamMember.user_id == User.id)
        .where(TeamMember.team_id == team_id, User.active.is_(True))
        .order_by(User.id)
    )
    return [(r[0], r[1]) for r in rows]


# --- API tokens --------------------------------------------------------------------------------


def create_token(s: Session, user: User, name: str, *, actor: Actor, now: datetime) -> tuple[ApiToken, str]:
    plain = new_api_token()
    token = ApiToken(
        user_id=user.id, name=name, token_hash=token_digest(plain), prefix=plain[:10], created_at=now
    )
    s.add(token)
    s.flush()
    audit.created(
        s,
        "api_token",
        token.id,
        {"user": user.email, "name": name, "prefix": token.prefix},
        actor=actor,
        at=now,
    )
    return token, plain


def list_tokens(s: Session, *, user_id: int | None = None) -> list[ApiToken]:
    q = select(ApiToken).order_by(ApiToken.id)
    if user_id is not None:
        q = q.where(ApiToken.user_id == user_id)
    return list(s.scalars(q))


def revoke_token(s: Session, token_id: int, *, actor: Actor, now: datetime) -> ApiToken:
    token = s.get(ApiToken, token_id)
    if token is None:
        raise not_found("token", token_id)
    if token.user_id != actor.id and not actor.can(Role.admin):
        raise forbidden("only an admin can revoke another user's token")
    if token.revoked_at is None:
        token.revoked_at = now
        audit.record(
            s,
            actor=actor,
            action="revoke",
            entity_type="api_token",
            entity_id=token.id,
            before={"revoked_at": None},
            after={"revoked_at": now.isoformat()},
            at=now,
        )
    return token


def user_for_token(s: Session, plain: str, *, now: datetime) -> User | None:
    token = s.scalar(select(ApiToken).where(ApiToken.token_hash == token_digest(plain)))
    if token is None or token.revoked_at is not None or not token.user.active:
        return None
    # Write last use at most once a minute, so reads do not turn into writes.
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        token.last_used_at = now
    return token.user


# --- web sessions ------------------------------------------------------------------------------


def create_session(s: Session, user: User, *, now: datetime, hours: int) -> tuple[str, WebSession]:
    s.execute(delete(WebSession).where(WebSession.expires_at <= now))
    plain = new_session_token()
    ws = WebSession(
        token_hash=token_digest(plain),
        user_id=user.id,
        csrf_token=new_csrf_token(),
        created_at=now,
        expires_at=now + timedelta(hours=hours),
    )
    s.add(ws)
    s.flush()
    return plain, ws


def session_for(s: Session, plain: str, *, now: datetime) -> WebSession | None:
    ws = s.scalar(select(WebSession).where(WebSession.token_hash == token_digest(plain)))
    if ws is None or ws.expires_at <= now or not ws.user.active:
        return None
    return ws


def end_session(s: Session, plain: str) -> None:
    ws = s.scalar(select(WebSession).where(WebSession.token_hash == token_digest(plain)))
    if ws is not None:
        s.delete(ws)
