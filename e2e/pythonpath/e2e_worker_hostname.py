"""``[core] hostname_callable`` of the e2e Celery workers: two workers share one machine, so each
reports the name it was started with (``E2E_WORKER_NAME``) as its task instances' hostname."""

from __future__ import annotations

import os
import socket


def worker_name() -> str:
    """The worker's name, else the machine's."""
    return os.environ.get("E2E_WORKER_NAME") or socket.getfqdn()
