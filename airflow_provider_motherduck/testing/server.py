"""The HTTP face of the emulator: MotherDuck's routes, auth, faults, the journal; the control hook.

Whatever a client sends, the server answers in MotherDuck's error shape or closes the connection
on purpose: a malformed request line, header or body is a 400 (413 for a body over
:data:`REQUEST_LIMIT`, 431 for headers too large), never a dropped connection or a traceback. An
idle keep-alive connection is closed after ``idle_timeout`` seconds, and at most
``max_connections`` are served at once (one thread each); one more is answered 503 at once.
"""

from __future__ import annotations

import contextlib
import copy
import json
import socket
import socketserver
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, unquote

from airflow_provider_motherduck.testing.connections import TrackedConnections
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
#: The largest request body read; MotherDuck's largest (an embed session's state) is far smaller.
REQUEST_LIMIT = 2**20
#: Seconds an idle keep-alive connection is kept open.
IDLE_TIMEOUT = 60.0
#: The least a trickled answer's body takes, in bytes (and so in trickles).
TRICKLED_SIZE = 64
#: Connections served at once (one thread each).
MAX_CONNECTIONS = 64
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


def fault_answer(fault: Fault, status: int, procedure: str | None, echoed: Sequence[str] = ()) -> Answer:
    """The response a status fault sends instead of (or after) the real one (``echoed``: the
    secrets an ``echo`` fault quotes)."""
    if fault.echo:
        known = HTTPStatus(status)
        answer = json_answer(
            status,
            {
                "code": known.name,
                "message": f"{known.phrase}: token {echoed[0] if echoed else ''} refused; known: {' '.join(echoed)}",
                "data": {"code": known.name, "httpStatus": status, "path": procedure, "echo": echoed},
                "issues": [{"code": "invalid", "path": ["token", s], "message": s} for s in echoed],
            },
        )
    elif isinstance(fault.body, str):
        answer = plain_answer(status, fault.body)
    elif fault.body is not None:
        answer = json_answer(status, fault.body)
    else:
        known = HTTPStatus(status)
        answer = json_answer(status, ApiError(status, known.name, known.phrase).body(procedure))
    if fault.retry_after is not None:
        answer.headers.append(("Retry-After", fault.retry_after))
    answer.headers.extend(fault.headers)
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
        try:
            raw = self._read_body()
        except _Refused as refused:
            self.close_connection = True  # the rest of the body is not read: the framing is lost
            error = ApiError(refused.status, refused.code, str(refused))
            entry = JournalEntry(self.command, self.path, None, None, fault=False)
            self._answer(srv, entry, json_answer(refused.status, error.body(None)))
            return
        body: Any = None
        parsed = False
        if raw:
            with contextlib.suppress(ValueError, RecursionError):  # nesting too deep is not JSON either
                body, parsed = json.loads(raw, parse_constant=_reject_constant), True
        entry = JournalEntry(self.command, self.path, None, redact(body), fault=False)
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
            trickle = fault.trickle if fault is not None else 0.0
            answer = self._dispatch(srv, path, query, body, bool(raw), parsed)
            self._answer(srv, replace(entry, fault=trickle > 0), answer, trickle)
            return
        if fault.after:
            self._dispatch(srv, path, query, body, bool(raw), parsed)
        entry = replace(entry, fault=True)
        if fault.status is None:  # a fault that answers without a status is a drop
            srv.traffic.record(entry)
            self.close_connection = True
            return
        found = match_route(self.command, path, srv.state)
        echoed = self._echoed(srv) if fault.echo else []
        self._answer(
            srv, entry, fault_answer(fault, fault.status, found[0].procedure if found else None, echoed)
        )

    def _echoed(self, srv: EmulatorHTTPServer) -> list[str]:
        """The request's bearer token, then every secret issued so far."""
        bearer = (self.headers.get("Authorization") or "").partition(" ")[2].strip()
        return list(dict.fromkeys([bearer, *(str(i["secret"]) for i in srv.state.issued())]))

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

    def _read_body(self) -> bytes:
        """The request body (plain or chunked); raises ``_Refused`` if its framing is broken or it is
        larger than :data:`REQUEST_LIMIT`."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        declared = (self.headers.get("Content-Length") or "0").strip()
        if not declared.isdigit():
            raise _Refused(400, "BAD_REQUEST", "Content-Length must be a number of bytes")
        length = int(declared)
        if length > REQUEST_LIMIT:
            raise _Refused(413, "PAYLOAD_TOO_LARGE", f"The request body is larger than {REQUEST_LIMIT} bytes")
        return self.rfile.read(length)

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        size = -1
        total = 0
        while size != 0:
            line = self.rfile.readline(65537).partition(b";")[0].strip()
            try:
                size = int(line, 16)
            except ValueError:
                raise _Refused(400, "BAD_REQUEST", "Malformed chunked request body") from None
            total += size
            if size < 0 or total > REQUEST_LIMIT:
                raise _Refused(
                    413, "PAYLOAD_TOO_LARGE", f"The request body is larger than {REQUEST_LIMIT} bytes"
                )
            if size:
                parts.append(self.rfile.read(size))
                self.rfile.readline(65537)
        while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
            pass
        return b"".join(parts)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """What ``http.server`` sends for a malformed request line or headers (400, 414, 431, 501,
        505), in MotherDuck's error shape; the connection is closed after it."""
        self.close_connection = True
        self.request_version = self.protocol_version  # a line too broken to name one: answer with headers
        status = HTTPStatus(code)
        self._send(json_answer(code, ApiError(code, status.name, message or status.phrase).body(None)))

    def handle(self) -> None:
        """Serve the connection's requests; a TLS handshake (the client meant https) gets a 400."""
        try:
            tls = self.connection.recv(1, socket.MSG_PEEK) == b"\x16"  # a TLS handshake record
            if tls:
                self.connection.recv(65536)  # read, so closing sends no reset over the answer
        except OSError:
            return
        if tls:
            self.command = self.requestline = ""
            self.send_error(400, "This server speaks plain HTTP, not TLS: use an http:// URL")
            return
        super().handle()

    def setup(self) -> None:
        """An idle keep-alive connection times out (``handle_one_request`` then closes it)."""
        super().setup()
        self.connection.settimeout(cast(EmulatorHTTPServer, self.server).idle_timeout)

    def _answer(
        self, srv: EmulatorHTTPServer, entry: JournalEntry, answer: Answer, trickle: float = 0.0
    ) -> None:
        """Journal first (a client that has its answer can read the journal), then send."""
        srv.traffic.record(replace(entry, status=answer.status))
        self._send(answer, trickle)

    def _send(self, answer: Answer, trickle: float = 0.0) -> None:
        """Send the answer; with ``trickle``, its body one byte every ``trickle`` seconds (padded
        with spaces, valid JSON padding, to at least :data:`TRICKLED_SIZE` bytes: even ``{}``
        then takes a while)."""
        if trickle:
            answer = replace(answer, data=answer.data.ljust(TRICKLED_SIZE))
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.data)))
        for name, value in answer.headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if getattr(self, "command", None) == "HEAD":
            return
        if not trickle:
            self.wfile.write(answer.data)
            return
        for i in range(len(answer.data)):  # ends when the client hangs up (the write fails)
            self.wfile.write(answer.data[i : i + 1])
            time.sleep(trickle)


class _Refused(Exception):
    """A request refused before its body was read: the status, MotherDuck's code and the message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class EmulatorHTTPServer(TrackedConnections, ThreadingHTTPServer):
    """A threading HTTP/1.1 server that can also cut its open keep-alive connections."""

    def __init__(
        self,
        host: str,
        port: int,
        state: State,
        traffic: Traffic,
        control: ControlHandler | None = None,
        *,
        idle_timeout: float = IDLE_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self.state = state
        self.traffic = traffic
        self.control = control
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        # An IPv6 address (``::1``) needs an IPv6 socket.
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        """Bind without the reverse DNS lookup ``HTTPServer`` does."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        """Past ``max_connections`` open connections, a 503 without a thread (one serving thread
        calls this, so the count cannot race)."""
        with self._open_lock:
            busy = len(self._open) >= self.max_connections
        if busy:
            self._turn_away(request)
            return
        super().process_request(request, client_address)

    def _turn_away(self, request: socket.socket) -> None:
        """Answer 503 without a thread (reading what came first, so closing sends no reset)."""
        error = ApiError(503, "SERVICE_UNAVAILABLE", f"More than {self.max_connections} open connections")
        data = json.dumps(error.body(None)).encode()
        head = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
            f"Connection: close\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        with contextlib.suppress(OSError):
            request.settimeout(0.2)
            request.recv(65536)
            request.sendall(head.encode() + data)
            request.shutdown(socket.SHUT_WR)
        request.close()
