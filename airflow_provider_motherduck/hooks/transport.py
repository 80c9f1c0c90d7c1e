"""One HTTP exchange with MotherDuck: send a request, read its answer, and nothing more.

No retries and no error mapping here (see :mod:`~airflow_provider_motherduck.hooks.retry` and the
hook); a failure to send is returned, not raised, so that one rule can decide what follows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

# requests is imported on first call, not at module import: DAG files import the hook at every
# parse, and requests alone costs more than the rest of the provider.


@dataclass(frozen=True)
class Answer:
    """What MotherDuck (or whatever answered in its place) sent back to one request."""

    status: int
    reason: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower case (``""`` if none was given)."""
        return self.headers.get("Content-Type", "").partition(";")[0].strip().lower()


def send(
    session: requests.Session, method: str, url: str, body: Mapping[str, Any] | None, timeout: float
) -> Answer | requests.RequestException:
    """Send one request and read its answer; the error instead if sending or reading failed."""
    import requests

    try:
        response = session.request(method, url, json=body, timeout=timeout)
    except requests.RequestException as err:
        return err
    return Answer(response.status_code, response.reason or "", response.headers, response.content)
