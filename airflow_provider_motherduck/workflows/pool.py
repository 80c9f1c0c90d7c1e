"""The bounded thread pool the bulk workflows share: one hook (one HTTP session) per thread."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from airflow_provider_motherduck.exceptions import (
    MotherDuckAuthError,
    MotherDuckConfigError,
    SkippedError,
)
from airflow_provider_motherduck.hooks.motherduck import MotherDuckHook

#: Makes a hook; a pool calls it once per worker thread (a Session is not shared).
HookFactory = Callable[[], MotherDuckHook]

T = TypeVar("T")
R = TypeVar("R")


def affects_all(err: BaseException | None) -> bool:
    """An error every other call would hit too: a rejected admin token (401; a 403 may concern one
    account only) or an unusable connection."""
    return isinstance(err, MotherDuckConfigError) or (
        isinstance(err, MotherDuckAuthError) and err.status_code == 401
    )


def stops_all(err: BaseException) -> bool:
    """Whether ``err``, or the error it wraps, is one every other call would hit too."""
    return affects_all(err) or affects_all(err.__cause__)


def run_on_pool(
    items: Sequence[T],
    work: Callable[[MotherDuckHook, T], R],
    new_hook: HookFactory,
    *,
    max_workers: int,
    name: str,
    stops: Callable[[BaseException], bool] = stops_all,
) -> tuple[list[R | None], dict[int, BaseException]]:
    """``work(hook, item)`` for each item on up to ``max_workers`` threads, one hook per thread.

    Returns the results in input order (``None`` where it failed or was skipped) and
    ``{index: error}``. After an error for which ``stops`` is true (by default one that would hit
    every item: see :func:`affects_all`), items not yet started fail with :class:`SkippedError`.
    Every hook is closed at the end.
    """
    local = threading.local()
    hooks: list[MotherDuckHook] = []
    lock = threading.Lock()
    stop = threading.Event()

    def one(item: T) -> R:
        if stop.is_set():
            raise SkippedError("skipped: an earlier one hit an error that affects all")
        hook = getattr(local, "hook", None)
        if hook is None:
            hook = local.hook = new_hook()
            with lock:
                hooks.append(hook)
        try:
            return work(hook, item)
        except Exception as err:
            if stops(err):
                stop.set()
            raise

    results: list[R | None] = []
    errors: dict[int, BaseException] = {}
    try:
        with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name) as pool:
            futures = [pool.submit(one, item) for item in items]
            for i, future in enumerate(futures):
                try:
                    results.append(future.result())
                except Exception as err:
                    errors[i] = err
                    results.append(None)
    finally:
        for hook in hooks:
            hook.close()
    return results, errors
