"""One HTTP exchange with MotherDuck: send a request, read its answer, and nothing more.

One attempt is bounded by its ``timeout`` as a whole: connecting, sending and reading the whole
answer (see :mod:`~airflow_provider_motherduck.hooks.deadline`). Redirects are never followed: a
3xx is returned as the answer it is, so the token is never sent on and a ``POST`` never replayed.
No retries and no error mapping here (see :mod:`~airflow_provider_motherduck.hooks.retry` and the
hook); a failure to send is returned, not raised, so that one rule can decide what follows.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_motherduck.exceptions import invalid
from airflow_provider_motherduck.hooks import deadline

if TYPE_CHECKING:
    import requests

# requests is imported on first call, not at module import: DAG files import the hook at every
# parse, and requests alone costs more than the rest of the provider.

#: The most of a success answer that is read (MotherDuck's own clients read no more).
ANSWER_LIMIT = 16 * 2**20
#: The most of an error answer that is read.
ERROR_LIMIT = 2**20
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Answer:
    """What MotherDuck (or whatever answered in its place) sent back to one request."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes
    #: The limit in bytes that the body exceeded (then ``body`` is empty and was not read); else ``None``.
    over_limit: int | None = None

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower case (``""`` if none was given)."""
        return self.headers.get("Content-Type", "").partition(";")[0].strip().lower()


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine (``localhost`` or a loopback address, IPv6 included)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def new_session(base_url: str, headers: Mapping[str, str]) -> requests.Session:
    """A keep-alive session for ``base_url``, with the environment's proxy and CA settings read once.

    ``requests`` reads ``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY`` (and their lower
    case forms), ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE`` and ``~/.netrc`` on every call. The
    session reads the same variables for its one base URL when it is made, and then not again
    (``trust_env`` off). So proxies keep working, a call costs no environment scan, and a
    ``.netrc`` entry for the host can never replace the bearer token.
    """
    import requests
    from requests.utils import get_environ_proxies

    session = requests.Session()
    session.trust_env = False
    # Empty when NO_PROXY covers the host; "no" itself is not a proxy.
    session.proxies = {k: v for k, v in get_environ_proxies(base_url).items() if k != "no"}
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.headers.update(headers)
    deadline.mount(session)
    return session


def encode(body: Mapping[str, Any]) -> bytes:
    """A request body as strict JSON; a ``ValueError`` naming the field that JSON cannot carry (NaN,
    infinity, a value of another type), raised before anything is sent."""
    try:
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError, RecursionError):
        try:
            field, value = _unencodable(body, "body") or ("body", body)
        except RecursionError:
            field, value = "body", body
    problem = (
        "NaN and infinity are not JSON"
        if isinstance(value, float)
        else f"a {type(value).__name__} is not JSON"
    )
    allowed = "JSON values: strings, finite numbers, booleans, None, lists and mappings with string keys"
    raise invalid(field, value, problem, allowed, show=isinstance(value, float))


def _unencodable(value: Any, path: str) -> tuple[str, Any] | None:
    """The path and value of the first part of ``value`` that is not strict JSON, if any."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path} key", key
            found = _unencodable(item, key if path == "body" else f"{path}.{key}")
            if found is not None:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _unencodable(item, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if value is None or isinstance(value, (str, int)) or (isinstance(value, float) and math.isfinite(value)):
        return None
    return path, value


def send(
    session: requests.Session, method: str, url: str, body: bytes | None, timeout: float
) -> Answer | requests.RequestException:
    """Send one request (``body``: JSON already encoded) and read its answer, at most
    :data:`ANSWER_LIMIT` or :data:`ERROR_LIMIT` of it, all within ``timeout`` seconds; the error
    instead if sending or reading failed or ran out of time."""
    import requests

    headers = _JSON_BODY if body is not None else None
    attempt = deadline.start(timeout)
    try:
        response = session.request(
            method, url, data=body, headers=headers, timeout=timeout, stream=True, allow_redirects=False
        )
        try:
            limit = ANSWER_LIMIT if response.status_code < 400 else ERROR_LIMIT
            content = _read(response, limit)
        finally:
            response.close()  # releases the connection for reuse once the body was read whole
    except Exception as err:
        if attempt.expired:  # whatever a cut socket raised on the way out
            return _out_of_time(timeout)
        if isinstance(err, requests.RequestException):
            return err
        raise
    finally:
        deadline.finish(attempt)
    if attempt.expired and not _framed(response):  # cut: an answer read until the close may be short
        return _out_of_time(timeout)
    reason = response.reason or ""
    if content is None:
        return Answer(response.status_code, reason, response.headers, b"", over_limit=limit)
    return Answer(response.status_code, reason, response.headers, content)


_JSON_BODY = {"Content-Type": "application/json"}


def _framed(response: requests.Response) -> bool:
    """Whether the answer's end is marked (a length or chunks), so a cut one would have failed to read."""
    headers = response.headers
    return "Content-Length" in headers or "chunked" in headers.get("Transfer-Encoding", "").lower()


def _out_of_time(timeout: float) -> requests.ReadTimeout:
    import requests

    return requests.ReadTimeout(f"the whole answer did not arrive within {timeout:g} s")


def _read(response: requests.Response, limit: int) -> bytes | None:
    """The body, read as it streams in, or ``None`` as soon as it is known to exceed ``limit``."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks = []
    size = 0
    for chunk in response.iter_content(_CHUNK):  # decoded: a compressed body counts at its full size
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
