"""The events lane: ``POST /api/v1/events`` taken inside uvicorn's HTTP protocol.

A real uvicorn server on loopback with :class:`FastLaneProtocol`, as ``opsdesk serve`` runs it,
and raw sockets where the bytes on the wire matter (pipelining, ``Connection: close``, HTTP/1.0,
chunked bodies). What the lane answers must be what the routed endpoint would have answered, and
everything it does not take must reach the application untouched.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select

from opsdesk.alerts.fastpath import WHOLE_FROM
from opsdesk.alerts.models import Event, EventBatch
from opsdesk.cmdb import service as cmdb
from opsdesk.cmdb.schemas import ServiceIn
from opsdesk.core import metrics
from opsdesk.core.actor import SYSTEM
from opsdesk.web.app import create_app
from opsdesk.web.fastlane import FastLaneProtocol
from tests.conftest import Account, app_settings, free_port, make_accounts
from tests.support import expand_batches, stored_event_ids

EVENT = {"summary": "disk almost full", "service": "web", "labels": {"instance": "db1"}}


class Server:
    def __init__(self, base: str, port: int, app: Any, accounts: dict[str, Account]) -> None:
        self.base = base
        self.port = port
        self.app = app
        self.accounts = accounts

    def token(self, role: str = "responder") -> str:
        return self.accounts[role].token

    async def raw(self, data: bytes, *, expect: int, close: bool = False) -> list[tuple[str, dict, bytes]]:
        """Send ``data`` as it is on one connection; read ``expect`` responses (status line,
        headers, body), then whether the server closed the connection if ``close``."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(data)
            await writer.drain()
            out = [await _answer(reader) for _ in range(expect)]
            if close:
                assert await asyncio.wait_for(reader.read(), 10) == b"", "the connection stayed open"
            return out
        finally:
            writer.close()

    async def one_by_one(self, *requests: bytes) -> list[tuple[str, dict, bytes]]:
        """Send each request on one kept-alive connection once the one before is answered."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            out = []
            for data in requests:
                writer.write(data)
                await writer.drain()
                out.append(await _answer(reader))
            return out
        finally:
            writer.close()

    def request(self, body: bytes, token: str | None, *, extra: str = "", method: str = "POST") -> bytes:
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        head = (
            f"{method} /api/v1/events HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n"
        )
        return head.encode() + body

    def stored(self) -> int:
        return len(stored_event_ids(self.app.state.db))


async def _answer(reader: asyncio.StreamReader) -> tuple[str, dict, bytes]:
    """One response: its status line, headers (lower-cased names) and body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return lines[0], headers, body


def lane_count(outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value("opsdesk_events_lane_requests_total", {"outcome": outcome})
    return value or 0.0


@pytest.fixture
async def server(db, clock, tmp_path) -> AsyncIterator[Server]:  # type: ignore[no-untyped-def]
    accounts = make_accounts(db, clock.now(), passwords=False)
    with db.session() as s:
        cmdb.create_service(s, ServiceIn(name="web"), actor=SYSTEM, now=clock.now())
    app = create_app(app_settings(tmp_path / "data"), db=db, clock=clock, roles=set())
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=FastLaneProtocol, log_config=None, access_log=False
    )
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve())
    for _ in range(500):
        if srv.started:
            break
        await asyncio.sleep(0.01)
    assert srv.started
    try:
        yield Server(f"http://127.0.0.1:{port}", port, app, accounts)
    finally:
        srv.should_exit = True
        await asyncio.wait_for(task, 15)


async def warm(server: Server, token: str) -> None:
    """The first request fills the caches the lane answers from (it goes the awaited way)."""
    async with httpx.AsyncClient(base_url=server.base) as c:
        r = await c.post("/api/v1/events", json=EVENT, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 202, r.text


async def test_a_cached_request_is_taken_by_the_lane_and_committed_before_its_202(server):
    await warm(server, server.token())
    taken = lane_count("lane")
    before = server.stored()
    body = json.dumps([EVENT, {**EVENT, "labels": {"instance": "db2"}}]).encode()
    ((status, headers, out),) = await server.raw(server.request(body, server.token()), expect=1)
    assert status == "HTTP/1.1 202 Accepted"
    assert lane_count("lane") == taken + 1
    answer = json.loads(out)
    assert answer["accepted"] == 2 and len(answer["ids"]) == 2
    assert headers["content-type"] == "application/json" and "date" in headers
    assert server.stored() == before + 2  # committed when the 202 was written
    expand_batches(server.app.state.db)  # (what the pipeline does first)
    with server.app.state.db.session() as s:
        rows = {e.id: e for e in s.scalars(select(Event).where(Event.id.in_(answer["ids"])))}
    assert sorted(r.labels["instance"] for r in rows.values()) == ["db1", "db2"]
    assert all(r.service_id is not None and r.summary == "disk almost full" for r in rows.values())


async def test_a_request_of_many_events_is_stored_whole_by_the_lane(server):
    await warm(server, server.token())
    taken = lane_count("lane")
    before = server.stored()
    events = [{**EVENT, "labels": {"instance": f"db{i}"}} for i in range(WHOLE_FROM)]
    ((status, _headers, out),) = await server.raw(
        server.request(json.dumps(events).encode(), server.token()), expect=1
    )
    assert status == "HTTP/1.1 202 Accepted"
    assert lane_count("lane") == taken + 1
    ids = json.loads(out)["ids"]
    with server.app.state.db.session() as s:
        (batch,) = s.scalars(select(EventBatch))
        assert (batch.id, batch.count, batch.ids) == (ids[0], WHOLE_FROM, None)
    assert ids == list(range(ids[0], ids[0] + WHOLE_FROM))
    assert server.stored() == before + WHOLE_FROM  # committed when the 202 was written
    expand_batches(server.app.state.db)
    with server.app.state.db.session() as s:
        labels = [
            e.labels["instance"] for e in s.scalars(select(Event).where(Event.id.in_(ids)).order_by(Event.id))
        ]
    assert labels == [f"db{i}" for i in range(WHOLE_FROM)]


async def test_pipelined_requests_are_answered_in_order(server):
    await warm(server, server.token())
    one = server.request(json.dumps({**EVENT, "summary": "one"}).encode(), server.token())
    # Answered at once, without the database: written before the first 202 if the lane let it by.
    ping = b"GET /ping/x HTTP/1.1\r\nHost: x\r\n\r\n"
    health = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    bad = server.request(b"{not json", server.token())
    two = server.request(json.dumps({**EVENT, "summary": "two"}).encode(), server.token())
    answers = await server.raw(one + ping + health + bad + two + one, expect=6)
    statuses = [a[0].split(" ")[1] for a in answers]
    assert statuses == ["202", "404", "200", "400", "202", "202"]
    ids = [json.loads(a[2])["ids"][0] for a in answers if a[0].startswith("HTTP/1.1 202")]
    assert ids == sorted(ids)  # committed in the order sent
    expand_batches(server.app.state.db)
    with server.app.state.db.session() as s:
        summaries = [s.get(Event, i).summary for i in ids]  # type: ignore[union-attr]
    assert summaries == ["one", "two", "one"]


async def test_after_a_lane_request_the_next_one_reaches_the_application_with_its_own_headers(server):
    """The lane builds no ASGI scope for what it takes: a request after it on the same connection
    gets its own path, query string and headers (the token decides who may read)."""
    await warm(server, server.token())
    taken = lane_count("lane")
    event = server.request(json.dumps(EVENT).encode(), server.token())

    def get(token: str | None, limit: str = "1") -> bytes:
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        return f"GET /api/v1/alerts?limit={limit} HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode()

    viewer = server.token("viewer")
    answers = await server.one_by_one(event, get(viewer), event, get(viewer, "x"), event, get(None), event)
    assert [a[0].split(" ")[1] for a in answers] == ["202", "200", "202", "422", "202", "401", "202"]
    assert lane_count("lane") == taken + 4
    assert "accepted" not in json.loads(answers[1][2])  # the alerts API's answer
    assert "limit" in answers[3][2].decode()  # the query string reached it


@pytest.mark.parametrize(
    ("case", "status", "title"),
    [
        ("invalid json", 400, "Malformed JSON"),
        ("missing summary", 422, None),
        ("unknown service", 422, None),
        ("no token", 401, None),
        ("unknown token", 401, None),
        ("viewer", 403, None),
        ("too large", 413, None),
    ],
)
async def test_what_the_lane_does_not_take_is_refused_by_the_routed_endpoint(server, case, status, title):
    await warm(server, server.token())
    token: str | None = server.token()
    body = json.dumps(EVENT).encode()
    if case == "invalid json":
        body = b'{"summary": '
    elif case == "missing summary":
        body = json.dumps({"service": "web"}).encode()
    elif case == "unknown service":
        body = json.dumps({**EVENT, "service": "nope"}).encode()
    elif case == "no token":
        token = None
    elif case == "unknown token":
        token = "odk_" + "x" * 43
    elif case == "viewer":
        token = server.token("viewer")
    elif case == "too large":
        body = json.dumps({**EVENT, "labels": {"big": "x" * 1_100_000}}).encode()
    if case in ("unknown service", "unknown token", "viewer"):
        # Once refused the awaited way, the answer is cached: the second is the lane's to refuse.
        await server.raw(server.request(body, token), expect=1)
    before = server.stored()
    handed = lane_count("handed_over")
    ((line, headers, out),) = await server.raw(server.request(body, token), expect=1)
    assert line.split(" ")[1] == str(status), out
    assert headers["content-type"].startswith("application/problem+json")
    problem = json.loads(out)
    assert problem["status"] == status
    if title:
        assert problem["title"] == title
    assert server.stored() == before  # nothing stored
    assert lane_count("handed_over") == handed + 1


async def test_a_connection_that_changes_its_token_is_judged_by_the_new_one(server):
    """The lane remembers the last token of a connection (and its digest): a request with another
    token on the same connection is judged by that token, not by the one before."""
    await warm(server, server.token())
    viewer = server.token("viewer")
    body = json.dumps(EVENT).encode()
    await server.raw(server.request(body, viewer), expect=1)  # the viewer's role now cached too
    before = server.stored()
    answers = await server.one_by_one(
        server.request(body, server.token()),
        server.request(body, viewer),
        server.request(body, "odk_" + "x" * 43),
        server.request(body, server.token()),
    )
    assert [line.split(" ")[1] for line, _, _ in answers] == ["202", "403", "401", "202"]
    assert server.stored() == before + 2


async def test_chunked_bodies_and_100_continue_go_the_awaited_way_and_are_stored(server):
    await warm(server, server.token())
    body = json.dumps({**EVENT, "summary": "chunked"}).encode()
    chunked = (
        f"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.token()}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode() + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    before = server.stored()
    handed = lane_count("handed_over")
    ((line, _, out),) = await server.raw(chunked, expect=1)
    assert line.startswith("HTTP/1.1 202"), out
    async with httpx.AsyncClient(base_url=server.base) as c:
        r = await c.post(
            "/api/v1/events",
            json={**EVENT, "summary": "expect"},
            headers={"Authorization": f"Bearer {server.token()}", "Expect": "100-continue"},
        )
    assert r.status_code == 202, r.text
    assert server.stored() == before + 2
    assert lane_count("handed_over") == handed + 2


async def test_connection_close_and_http_1_0_are_honoured(server):
    await warm(server, server.token())
    body = json.dumps(EVENT).encode()
    ((line, headers, _),) = await server.raw(
        server.request(body, server.token(), extra="Connection: close\r\n"), expect=1, close=True
    )
    assert line.startswith("HTTP/1.1 202") and headers["connection"] == "close"
    http10 = server.request(body, server.token()).replace(b"HTTP/1.1", b"HTTP/1.0", 1)
    ((line, headers, _),) = await server.raw(http10, expect=1, close=True)
    assert line.startswith("HTTP/1.1 202") and headers["connection"] == "close"


async def test_a_client_gone_before_the_commit_still_gets_its_events_stored(server):
    await warm(server, server.token())
    before = server.stored()
    _reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(server.request(json.dumps(EVENT).encode(), server.token()))
    await writer.drain()
    writer.close()  # gone without reading the answer
    for _ in range(200):
        if server.stored() == before + 1:
            break
        await asyncio.sleep(0.02)
    assert server.stored() == before + 1
    await warm(server, server.token())  # the server is still well
    assert server.stored() == before + 2


async def test_when_the_writer_cannot_take_events_the_lane_answers_503_and_stores_nothing(server):
    await warm(server, server.token())
    before = server.stored()
    writer = server.app.state.event_writer
    writer.stop()
    try:
        ((line, headers, out),) = await server.raw(
            server.request(json.dumps(EVENT).encode(), server.token()), expect=1
        )
    finally:
        writer.start()
    assert line.startswith("HTTP/1.1 503")
    assert headers["content-type"] == "application/problem+json" and headers["retry-after"] == "1"
    assert "none of them was accepted" in json.loads(out)["detail"]
    assert server.stored() == before
    await warm(server, server.token())
    assert server.stored() == before + 1


def test_serve_uses_the_lane_only_on_the_uvicorn_release_it_was_tested_with(caplog):
    from opsdesk.web.fastlane import http_protocol

    assert http_protocol() is FastLaneProtocol  # the pinned release (constraints.txt)
    with caplog.at_level("WARNING", logger="opsdesk.web"):
        assert http_protocol("0.99.0") == "httptools"
    assert "uvicorn 0.99.0 is not a release the events lane was tested with" in caplog.text
