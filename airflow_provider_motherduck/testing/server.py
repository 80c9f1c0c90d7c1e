"""The HTTP face of the emulator: MotherDuck's routes, auth, faults, the journal; the control hook."""

from __future__ import annotations

import contextlib
import copy
import json
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, unquote

from airflow_provider_motherduck.testing.state import (
    DUPLICATE_USER_MESSAGE,
    ApiError,
    Json,
    State,
    User,
    bad_request,
    check_config_body,
    check_create_token,
    check_create_user,
    check_embed_session,
    check_users_query,
    forbidden,
    new_secret,
    require_admin,
    require_member_viewer,
    require_self_or_admin,
)
from airflow_provider_motherduck.testing.traffic import Fault, JournalEntry, Traffic, redact

PARAM = "{}"
CONTROL_PREFIX = "/_emulator/"
CONTROL_KEY_HEADER = "X-Emulator-Control-Key"


@dataclass(frozen=True)
class Call:
    """One authenticated request as a route's action sees it."""

    state: State
    traffic: Traffic
    caller: User
    params: list[str]
    query: dict[str, list[str]]
    body: Any


Action = Callable[[Call], Json]
# The control API (``/_emulator/...``): method, path after the prefix, query, JSON body, key
# header -> status and JSON answer. Installed by the emulator; None serves no control API.
ControlHandler = Callable[[str, str, dict[str, list[str]], Any, str | None], tuple[int, Json]]


def _create_user(call: Call) -> Json:
    username = check_create_user(call.body)
    if not call.state.add_user(User(username, ("member",), service_account=True)):
        if call.state.duplicate_user_status == 409:
            raise ApiError(409, "CONFLICT", f"User {username} already exists")
        raise bad_request(DUPLICATE_USER_MESSAGE)
    return {"username": username}


def _delete_user(call: Call) -> Json:
    (username,) = call.params
    if not call.state.user(username).service_account:
        raise forbidden(f"User {username} is not a service account")
    call.state.delete_user(username)
    return {"username": username}


def _create_token(call: Call) -> Json:
    (username,) = call.params
    name, ttl, token_type = check_create_token(call.body)
    owner = call.state.user(username)
    if not owner.service_account and owner is not call.caller:
        raise forbidden(f"User {username} is not a service account")
    token = call.state.add_token(username, name, ttl, token_type, new_secret())
    return {"token": token.secret, **token.metadata()}


def _list_tokens(call: Call) -> Json:
    (username,) = call.params
    return {"tokens": [t.metadata() for t in call.state.user(username).tokens.values()]}


def _delete_token(call: Call) -> Json:
    username, token_id = call.params
    call.state.delete_token(username, token_id)
    return {}


def _get_instances(call: Call) -> Json:
    (username,) = call.params
    return copy.deepcopy(call.state.user(username).config)


def _put_instances(call: Call) -> Json:
    (username,) = call.params
    config = check_config_body(call.body, call.state.max_flock_size)
    call.state.user(username).config = config
    return copy.deepcopy(config)


def _active_accounts(call: Call) -> Json:
    return {"accounts": call.state.active_accounts()}


def _list_users(call: Call) -> Json:
    query = check_users_query(call.query, call.state.max_page_size)
    page = call.state.list_users(query)
    if query.page_token is not None and call.traffic.take_repeat_cursor():
        page["next_page_token"] = query.page_token
    for action in call.traffic.listing_page_served():
        action()
    return page


def _create_embed_session(call: Call) -> Json:
    (dive_id,) = call.params
    if not call.state.business_plan:
        raise forbidden("Embedding Dives requires the Business plan; this organisation is on another plan")
    request = check_embed_session(call.body)
    return {"session": call.state.add_embed_session(dive_id, request)}


def _always(state: State) -> bool:
    return True


def _user_listing(state: State) -> bool:
    return state.user_listing


@dataclass(frozen=True)
class Route:
    """One endpoint: ``PARAM`` segments are percent-decoded and passed to ``action``.

    ``permit`` checks the caller's roles (403); a route whose ``available`` is False answers the
    plain-text 404 of a path MotherDuck has no route for.
    """

    method: str
    pattern: tuple[str, ...]
    procedure: str
    action: Action
    has_body: bool = False
    permit: Callable[[User, list[str]], None] = require_admin
    available: Callable[[State], bool] = _always


ROUTES = (
    Route("POST", ("v1", "users"), "users.createServiceAccount", _create_user, has_body=True),
    Route(
        "GET",
        ("v1", "users"),
        "users.listUsers",
        _list_users,
        permit=require_member_viewer,
        available=_user_listing,
    ),
    Route("DELETE", ("v1", "users", PARAM), "users.deleteUser", _delete_user),
    Route("POST", ("v1", "users", PARAM, "tokens"), "tokens.createToken", _create_token, has_body=True),
    Route("GET", ("v1", "users", PARAM, "tokens"), "tokens.listTokens", _list_tokens),
    Route("DELETE", ("v1", "users", PARAM, "tokens", PARAM), "tokens.deleteToken", _delete_token),
    Route(
        "GET",
        ("v1", "users", PARAM, "instances"),
        "ducklings.getConfig",
        _get_instances,
        permit=require_self_or_admin,
    ),
    Route(
        "PUT",
        ("v1", "users", PARAM, "instances"),
        "ducklings.setConfig",
        _put_instances,
        has_body=True,
        permit=require_self_or_admin,
    ),
    Route("GET", ("v1", "active_accounts"), "ducklings.activeAccounts", _active_accounts),
    Route(
        "POST",
        ("v1", "dives", PARAM, "embed-session"),
        "dives.createEmbedSession",
        _create_embed_session,
        has_body=True,
    ),
)


def match_route(method: str, path: str, state: State) -> tuple[Route, list[str]] | None:
    """The available route and decoded parameters for a request path (query string removed)."""
    segments = path.split("/")
    if segments[0]:
        return None
    segments = segments[1:]
    for route in ROUTES:
        if route.method != method or len(route.pattern) != len(segments) or not route.available(state):
            continue
        params: list[str] = []
        for want, got in zip(route.pattern, segments, strict=True):
            if want == PARAM and got:
                params.append(unquote(got))
            elif want != got:
                break
        else:
            return route, params
    return None


@dataclass
class Answer:
    """A response ready to send."""

    status: int
    content_type: str
    data: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)


def json_answer(status: int, payload: Any) -> Answer:
    """A JSON response."""
    return Answer(status, "application/json", json.dumps(payload).encode())


def plain_answer(status: int, text: str) -> Answer:
    """A plain-text response (what an unknown route gets)."""
    return Answer(status, "text/plain; charset=utf-8", text.encode())


def fault_answer(fault: Fault, status: int, procedure: str | None) -> Answer:
    """The response a status fault sends instead of (or after) the real one."""
    if isinstance(fault.body, str):
        answer = plain_answer(status, fault.body)
    elif fault.body is not None:
        answer = json_answer(status, fault.body)
    else:
        known = HTTPStatus(status)
        answer = json_answer(status, ApiError(status, known.name, known.phrase).body(procedure))
    if fault.retry_after is not None:
        answer.headers.append(("Retry-After", fault.retry_after))
    return answer


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def version_string(self) -> str:
        """The ``Server`` header."""
        return "MotherDuckEmulator"

    def log_message(self, format: str, *args: Any) -> None:
        """Print nothing (and so never a header)."""

    def do_GET(self) -> None:
        """Every method goes through one handler."""
        self._handle()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _handle(self) -> None:
        srv = cast(EmulatorHTTPServer, self.server)
        path, _, query_string = self.path.partition("?")
        query = parse_qs(query_string, keep_blank_values=True)
        raw = self._read_body()
        body: Any = None
        parsed = False
        if raw:
            with contextlib.suppress(ValueError):
                body, parsed = json.loads(raw, parse_constant=_reject_constant), True
        entry = JournalEntry(self.command, self.path, None, redact(body), fault=False)
        if raw is None:
            self.close_connection = True
            self._answer(srv, entry, plain_answer(400, "Bad request framing"))
            return
        if path.startswith(CONTROL_PREFIX) and srv.control is not None:
            # The control API is not MotherDuck's: no faults, no journal.
            if raw and not parsed:
                self._send(json_answer(400, {"error": "the request body is not valid JSON"}))
                return
            key = self.headers.get(CONTROL_KEY_HEADER)
            status, payload = srv.control(self.command, path[len(CONTROL_PREFIX) :], query, body, key)
            self._send(json_answer(status, payload))
            return
        fault = srv.traffic.take_fault(self.command, path)
        if fault is not None and fault.delay > 0:
            time.sleep(fault.delay)
        if fault is None or not fault.answers:
            self._answer(srv, entry, self._dispatch(srv, path, query, body, bool(raw), parsed))
            return
        if fault.after:
            self._dispatch(srv, path, query, body, bool(raw), parsed)
        entry = replace(entry, fault=True)
        if fault.status is None:  # a fault that answers without a status is a drop
            srv.traffic.record(entry)
            self.close_connection = True
            return
        found = match_route(self.command, path, srv.state)
        self._answer(srv, entry, fault_answer(fault, fault.status, found[0].procedure if found else None))

    def _dispatch(
        self,
        srv: EmulatorHTTPServer,
        path: str,
        query: dict[str, list[str]],
        body: Any,
        has_body: bool,
        parsed: bool,
    ) -> Answer:
        state = srv.state
        found = match_route(self.command, path, state)
        if found is None:
            return plain_answer(404, "Not Found")
        route, params = found
        try:
            with state.lock:
                caller = state.authenticate(self.headers.get("Authorization"))
                route.permit(caller, params)
                if route.has_body:
                    self._check_body(has_body, parsed)
                return json_answer(200, route.action(Call(state, srv.traffic, caller, params, query, body)))
        except ApiError as err:
            return json_answer(err.status, err.body(route.procedure))

    def _check_body(self, has_body: bool, parsed: bool) -> None:
        if not has_body:
            raise bad_request("A JSON request body is required")
        content_type = (self.headers.get("Content-Type") or "").partition(";")[0].strip().lower()
        if content_type != "application/json":
            raise bad_request("Content-Type must be application/json")
        if not parsed:
            raise bad_request("The request body is not valid JSON")

    def _read_body(self) -> bytes | None:
        """The request body (plain or chunked), or None if its framing is broken."""
        try:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                return self._read_chunked()
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        return self.rfile.read(length) if length >= 0 else None

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while size := int(self.rfile.readline(65537).partition(b";")[0].strip(), 16):
            parts.append(self.rfile.read(size))
            self.rfile.readline(65537)
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass
        return b"".join(parts)

    def _answer(self, srv: EmulatorHTTPServer, entry: JournalEntry, answer: Answer) -> None:
        """Journal first (a client that has its answer can read the journal), then send."""
        srv.traffic.record(replace(entry, status=answer.status))
        self._send(answer)

    def _send(self, answer: Answer) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.data)))
        for name, value in answer.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(answer.data)


class EmulatorHTTPServer(ThreadingHTTPServer):
    """A threading HTTP/1.1 server that can also cut its open keep-alive connections."""

    daemon_threads = True

    def __init__(
        self, host: str, port: int, state: State, traffic: Traffic, control: ControlHandler | None = None
    ) -> None:
        self.state = state
        self.traffic = traffic
        self.control = control
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        """Bind without the reverse DNS lookup ``HTTPServer`` does."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        """Track the connection so ``close_connections`` can end it."""
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Forget the connection, then close it."""
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End every open connection (idle keep-alive ones included)."""
        with self._open_lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that hang up; report anything else."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)
