"""``QCGPJFuture``: the tasks of one ``QCGPJExecutor.submit``, and ``as_completed``/``wait``
over such futures, as ``concurrent.futures`` has them for its own.

A future is done when every one of its tasks (jobs) is in a final state; ``result()`` is then
``{job name: final state}`` (QCG-PilotJob's executor API gives the same), whether or not they
succeeded. ``exception()`` is the error that kept the result from being known (the service
gone, for example), else None. Callbacks added with ``add_done_callback`` run once, with the
future, when it is seen done: by the executor's watcher thread (woken by the service's
job-finished events), or at once if it is done already.

Every call to the service goes through the executor's lock: the futures, the watcher and the
program may use one ``LocalManager`` from several threads.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Optional, Set, Tuple

from ..api.errors import QCGPJMAError, TimeoutElapsed
from ..states import JobState

if TYPE_CHECKING:
    from ..api.manager import Manager

__all__ = ["ALL_COMPLETED", "FIRST_COMPLETED", "QCGPJFuture", "as_completed", "wait"]

FIRST_COMPLETED = concurrent.futures.FIRST_COMPLETED
ALL_COMPLETED = concurrent.futures.ALL_COMPLETED

_FINAL = frozenset(s.name for s in JobState if s.is_final)
_log = logging.getLogger("qcg_pilotjob.executor_api")


class QCGPJFuture:
    """The tasks ``ids`` submitted to ``qcgpjm`` (a ``LocalManager``)."""

    def __init__(self, ids: List[str], qcgpjm: Manager, lock: Optional[threading.RLock] = None,
                 watcher: Optional[Callable[[QCGPJFuture], None]] = None) -> None:
        self.ids = list(ids)
        self.qcgpjm = qcgpjm
        self._lock = lock if lock is not None else threading.RLock()
        self._watch = watcher
        self._states: Optional[Dict[str, str]] = None
        self._error: Optional[BaseException] = None
        self._cancelled = False
        self._callbacks: List[Callable[[QCGPJFuture], Any]] = []
        self._called = False

    # --- state ---------------------------------------------------------------------------
    def _settle(self, states: Optional[Dict[str, str]] = None, error: Optional[BaseException] = None) -> None:
        """Done: with the final states, or with the error that ended the wait for them."""
        with self._lock:
            if self._called:
                return
            self._states, self._error = states, error
            self._called = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            self._run_callback(callback)

    def _run_callback(self, callback: Callable[[QCGPJFuture], Any]) -> None:
        try:
            callback(self)
        except Exception:  # as concurrent.futures does: logged, the others still run
            _log.exception("a done callback of the future of %s failed", ", ".join(self.ids))

    def _check(self, states: Dict[str, str]) -> bool:
        """Settle from ``states`` (of at least this future's ids) if all are final."""
        mine = {name: states[name] for name in self.ids if name in states}
        if len(mine) == len(self.ids) and all(s in _FINAL for s in mine.values()):
            self._settle(mine)
            return True
        return False

    # --- concurrent.futures.Future's methods -----------------------------------------------
    def done(self) -> bool:
        """Whether every task has ended (asks the service if not known yet)."""
        return self._called or self in _check_all([self])

    def running(self) -> bool:
        """Whether some task has not ended (QCG-PilotJob's meaning: not :meth:`done`)."""
        return not self.done()

    def cancel(self) -> bool:
        """Cancel the tasks (those running are stopped); True."""
        with self._lock:
            if not self._cancelled and not self._called:
                try:
                    self.qcgpjm.cancel(self.ids)
                except QCGPJMAError as exc:  # some had ended: the rest were cancelled
                    _log.info("cancel of %s: %s", ", ".join(self.ids), exc)
            self._cancelled = True
        return True

    def cancelled(self) -> bool:
        return self._cancelled

    def result(self, timeout: Optional[float] = None) -> Dict[str, str]:
        """``{job name: final state}`` once all have ended; ``concurrent.futures.TimeoutError``
        after ``timeout`` seconds; the error that kept it from being known."""
        if not self._called:
            try:
                with self._lock:
                    states = self.qcgpjm.wait4(self.ids, timeout=timeout) if not self._called else None
                if states is not None:
                    self._settle(dict(states))
            except TimeoutElapsed:
                raise concurrent.futures.TimeoutError(f"tasks {', '.join(self.ids)} not done within {timeout}s") \
                    from None
            except QCGPJMAError as exc:
                self._settle(None, exc)
        if self._error is not None:
            raise self._error
        assert self._states is not None
        return dict(self._states)

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        """The error :meth:`result` raises, or None (waits like :meth:`result`)."""
        try:
            self.result(timeout)
        except concurrent.futures.TimeoutError:
            raise
        except Exception as exc:
            return exc
        return None

    def add_done_callback(self, fn: Callable[[QCGPJFuture], Any]) -> None:
        """Call ``fn(future)`` once it is done (now, if it is)."""
        with self._lock:
            if not self._called:
                self._callbacks.append(fn)
                if self._watch is not None:
                    self._watch(self)
                return
        self._run_callback(fn)


def _states_of(data: Dict[str, Any]) -> Dict[str, str]:
    """``{name: state}`` from a ``jobStatus`` reply's data (entries that exist)."""
    out = {}
    for name, entry in (data.get("jobs") or {}).items():
        if isinstance(entry, dict) and entry.get("status") == 0:
            out[name] = str(entry.get("data", {}).get("status"))
    return out


def _check_all(pending: Iterable[QCGPJFuture]) -> Set[QCGPJFuture]:
    """Those of ``pending`` that are done: one status request per manager."""
    done: Set[QCGPJFuture] = set()
    by_manager: Dict[int, List[QCGPJFuture]] = {}
    for fut in pending:
        if fut._called:
            done.add(fut)
        else:
            by_manager.setdefault(id(fut.qcgpjm), []).append(fut)
    for futures in by_manager.values():
        first = futures[0]
        ids = sorted({name for fut in futures for name in fut.ids})
        with first._lock:
            try:
                states = _states_of(first.qcgpjm.status(ids))
            except QCGPJMAError as exc:
                for fut in futures:
                    fut._settle(None, exc)
                done.update(futures)
                continue
        done.update(fut for fut in futures if fut._check(states))
    return done


def _wait_for_news(futures: Iterable[QCGPJFuture], seconds: float) -> None:
    """Until a job finishes (the service's events) or ``seconds`` pass."""
    fut = next(iter(futures))
    manager = fut.qcgpjm
    with fut._lock:
        if getattr(manager, "_sub", None) is not None:
            try:
                manager.wait4_any_job_finish(timeout=seconds)
                return
            except QCGPJMAError:
                return  # (a timeout: look again)
    time.sleep(seconds)  # no events (--disable-pub): poll


def _iterate(fs: Iterable[QCGPJFuture], timeout: Optional[float]) -> Iterator[Tuple[QCGPJFuture, Set[QCGPJFuture]]]:
    pending = set(fs)
    deadline = None if timeout is None else time.monotonic() + timeout
    while pending:
        for fut in _check_all(pending):
            pending.discard(fut)
            yield fut, pending
        if not pending:
            return
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise concurrent.futures.TimeoutError(f"{len(pending)} futures not done within {timeout}s")
        poll = min(p.qcgpjm.poll_delay for p in pending)
        _wait_for_news(pending, poll if left is None else min(poll, left))


def as_completed(fs: Iterable[QCGPJFuture], timeout: Optional[float] = None) -> Iterator[QCGPJFuture]:
    """Each of ``fs`` as it is done (``concurrent.futures.as_completed`` for these futures)."""
    for fut, _ in _iterate(fs, timeout):
        yield fut


def wait(fs: Iterable[QCGPJFuture], timeout: Optional[float] = None,
         return_when: str = ALL_COMPLETED) -> Tuple[Set[QCGPJFuture], Set[QCGPJFuture]]:
    """``(done, not_done)``, as ``concurrent.futures.wait`` (FIRST_COMPLETED or ALL_COMPLETED)."""
    fs = set(fs)
    done: Set[QCGPJFuture] = set()
    try:
        for fut, _ in _iterate(fs, timeout):
            done.add(fut)
            if return_when == FIRST_COMPLETED:
                break
    except concurrent.futures.TimeoutError:
        pass
    return done, fs - done
