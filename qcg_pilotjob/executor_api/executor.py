"""``QCGPJExecutor``: a ``concurrent.futures.Executor`` that runs task templates through a
``LocalManager`` it starts, with QCG-PilotJob's constructor arguments.

``submit(template, *dicts, **values)`` fills the template (:mod:`.templates`), adds
``QCG_PM_EXEC_API_JOB_ID`` (the job's name) to the task's environment, submits it and returns
a :class:`~.future.QCGPJFuture`. ``shutdown(wait=True)`` waits for every submitted task, runs
the callbacks of their futures and ends the service; ``wait=False`` ends it at once (running
tasks are stopped). The executor is a context manager.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from ..api.job import Jobs
from ..api.manager import LocalManager
from .future import QCGPJFuture, _check_all, _wait_for_news
from .templates import render

__all__ = ["QCGPJExecutor"]

Template = Callable[[], Union[str, Tuple[str, Dict[str, Any]]]]

_SERVICE_LEVELS = {"CRITICAL": "critical", "ERROR": "error", "WARNING": "warning", "INFO": "info", "DEBUG": "debug"}


class QCGPJExecutor(concurrent.futures.Executor):
    """Start a service for this program: in ``wd`` on ``resources`` (``--nodes`` text, e.g.
    ``"4"`` or ``"n1:2,n2:3"``; else the allocation or this machine), keeping a core for the
    service with ``reserve_core``; ``other_args`` are more service options."""

    def __init__(self, *other_args: str, wd: str = ".", resources: Optional[str] = None, reserve_core: bool = False,
                 enable_rt_stats: bool = False, wrapper_rt_stats: Optional[str] = None,
                 log_level: str = "info") -> None:
        level = str(log_level).upper()
        args = ["--log", _SERVICE_LEVELS.get(level, "debug"), "--wd", wd]
        if resources:
            args += ["--nodes", str(resources)]
        if reserve_core:
            args.append("--system-core")
        if enable_rt_stats:
            args.append("--enable-rt-stats")
        if wrapper_rt_stats:
            args += ["--wrapper-rt-stats", wrapper_rt_stats]
        args += [str(a) for a in other_args]
        os.makedirs(wd, exist_ok=True)
        with open(os.path.join(wd, "executor_api.log"), "w") as fh:  # (where QCG-PilotJob writes it)
            fh.write(f"Starting QCG-PJ Manager with arguments: {args}\n")
        client = {"log_file": os.path.join(wd, "api.log"), "log_level": "debug" if level == "DEBUG" else "info"}
        self._qcgpjm = LocalManager(args, client)
        self._lock = threading.RLock()
        self._futures: List[QCGPJFuture] = []
        self._watched: List[QCGPJFuture] = []
        self._wake = threading.Condition()
        self._watcher: Optional[threading.Thread] = None
        self.finished = False

    @property
    def qcgpj_manager(self) -> LocalManager:
        """The ``LocalManager`` the tasks run through."""
        return self._qcgpjm

    def __enter__(self) -> QCGPJExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def submit(self, fn: Template, /, *args: Optional[Dict[str, Any]], **kwargs: Any) -> QCGPJFuture:  # type: ignore[override]
        """Submit the task of template ``fn`` with its placeholders filled: defaults, then
        ``args`` (dicts, in order), then ``kwargs``."""
        if self.finished:
            raise RuntimeError("cannot submit after shutdown")
        template = fn()
        text, defaults = template if isinstance(template, tuple) else (template, {})
        description = render(text, defaults, args, kwargs)
        execution = description["execution"]
        env = dict(execution.get("env") or {})
        env["QCG_PM_EXEC_API_JOB_ID"] = "${jname}"
        execution["env"] = env
        with self._lock:
            ids = self._qcgpjm.submit(Jobs().add_std(description))
        future = QCGPJFuture(ids, self._qcgpjm, self._lock, self._watch)
        self._futures.append(future)
        return future

    # --- callbacks -------------------------------------------------------------------------
    def _watch(self, future: QCGPJFuture) -> None:
        """``future`` has callbacks: the watcher settles it when its tasks end."""
        with self._wake:
            self._watched.append(future)
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._run_watcher, name="qcgpj-futures", daemon=True)
                self._watcher.start()
            self._wake.notify()

    def _run_watcher(self) -> None:
        while True:
            with self._wake:
                self._watched = [f for f in self._watched if not f._called]
                while not self._watched and not self.finished:
                    self._wake.wait()
                if self.finished and not self._watched:
                    return
                pending = set(self._watched)
            left = pending - _check_all(pending)  # (settling runs the callbacks)
            if left:
                _wait_for_news(left, self._qcgpjm.poll_delay)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Wait for the submitted tasks (``wait``), then end the service; again: nothing."""
        if self.finished:
            return
        if cancel_futures:
            for future in self._futures:
                if not future._called:
                    future.cancel()
        if wait:
            for future in self._futures:
                with contextlib.suppress(Exception):  # (kept in the future, for its exception())
                    future.result()
        with self._wake:
            self.finished = True
            self._wake.notify_all()
        with self._lock:
            self._qcgpjm.finish()
        if self._watcher is not None:
            self._watcher.join(timeout=10)
