"""One HTTP exchange with MotherDuck: send a request, read its answer, and nothing more.

No retries and no error mapping here (see :mod:`~airflow_provider_motherduck.hooks.retry` and the
hook); a failure to send is returned, not raised, so that one rule can decide what follows.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
    return session


def send(
    session: requests.Session, method: str, url: str, body: Mapping[str, Any] | None, timeout: float
) -> Answer | requests.RequestException:
    """Send one request and read its answer, at most :data:`ANSWER_LIMIT` or :data:`ERROR_LIMIT`
    of it; the error instead if sending or reading failed."""
    import requests

    try:
        response = session.request(method, url, json=body, timeout=timeout, stream=True)
        try:
            limit = ANSWER_LIMIT if response.status_code < 400 else ERROR_LIMIT
            content = _read(response, limit)
        finally:
            response.close()  # releases the connection for reuse once the body was read whole
    except requests.RequestException as err:
        return err
    reason = response.reason or ""
    if content is None:
        return Answer(response.status_code, reason, response.headers, b"", over_limit=limit)
    return Answer(response.status_code, reason, response.headers, content)


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
