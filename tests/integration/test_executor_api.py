"""The built-in executor API (``qcg.pilotjob.executor_api``) against a real service: templates,
futures (result, done, running, cancel, exception, callbacks), ``as_completed``/``wait``,
``QCG_PM_EXEC_API_JOB_ID``, the constructor's arguments, with and without status events."""

from __future__ import annotations

import concurrent.futures
import threading
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from qcg.pilotjob.executor_api.qcgpj_executor import QCGPJExecutor
from qcg.pilotjob.executor_api.qcgpj_future import FIRST_COMPLETED, QCGPJFuture, as_completed, wait
from qcg.pilotjob.executor_api.templates.basic_template import BasicTemplate
from qcg.pilotjob.executor_api.templates.qcgpj_template import QCGPJTemplate

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


class Script(QCGPJTemplate):
    """A template of one's own: a script, with a default for one placeholder."""

    @staticmethod
    def template() -> Tuple[str, Dict[str, Any]]:
        return """
            {'name': '${name}',
             'execution': {'script': '${script}', 'stdout': '${out}'},
             'resources': {'numCores': {'exact': ${cores}}}}
            """, {"cores": 1}


@pytest.mark.parametrize("extra", [(), ("--disable-pub",)])
def test_futures_as_completed_callbacks_and_the_job_id(tmp_path: Path, extra: Tuple[str, ...]) -> None:
    """With events (as_completed wakes on them) and without (it polls)."""
    with QCGPJExecutor(*extra, wd=str(tmp_path), resources="4", log_level="debug") as ex:
        ex.qcgpj_manager.poll_delay = 0.2
        gate = tmp_path / "go"
        held = ex.submit(Script.template, {"name": "held", "out": str(tmp_path / "held.out")},
                         script=f"while [ ! -e {gate} ]; do sleep 0.05; done; echo $QCG_PM_EXEC_API_JOB_ID")
        quick = [ex.submit(BasicTemplate.template, name=f"q{i}", exec="/bin/echo", args=[str(i)],
                           stdout=str(tmp_path / f"q{i}.out")) for i in range(3)]
        called: List[Tuple[str, str]] = []
        seen = threading.Event()

        def note(future: QCGPJFuture) -> None:
            called.append((future.ids[0], threading.current_thread().name))
            seen.set()
        held.add_done_callback(note)
        first = [f.ids[0] for f in as_completed(quick, timeout=60)]
        assert sorted(first) == ["q0", "q1", "q2"]
        assert held.running() and not held.done() and not called
        done, not_done = wait([held, *quick], timeout=0.5, return_when=FIRST_COMPLETED)
        assert held in not_done and done
        with pytest.raises(concurrent.futures.TimeoutError):
            held.result(timeout=0.3)
        gate.touch()
        assert seen.wait(30)  # the watcher thread saw it end: nobody asked for the result
        assert called == [("held", "qcgpj-futures")]
        assert held.result(timeout=60) == {"held": "SUCCEED"}
        late: List[str] = []
        held.add_done_callback(lambda f: late.append("now"))  # done already: called at once
        assert late == ["now"]
    assert (tmp_path / "held.out").read_text() == "held\n"
    assert (tmp_path / "q2.out").read_text() == "2\n"
    assert (tmp_path / "executor_api.log").read_text().startswith("Starting QCG-PJ Manager with arguments:")


def test_failures_cancel_and_shutdown(tmp_path: Path) -> None:
    ex = QCGPJExecutor(wd=str(tmp_path), resources="2", reserve_core=True, enable_rt_stats=True,
                       wrapper_rt_stats="qcg_pj_launch_wrapper")
    bad = ex.submit(BasicTemplate.template, name="bad", exec="/bin/false")
    assert bad.result(timeout=60) == {"bad": "FAILED"}  # a task that fails is a result, not an exception
    assert bad.exception() is None and bad.done() and not bad.running()
    long = ex.submit(BasicTemplate.template, {"name": "long", "exec": "/bin/sleep"}, args=["60"])
    assert long.cancel() and long.cancelled()
    assert long.result(timeout=60) == {"long": "CANCELED"}
    assert ex.qcgpj_manager.resources()["total_cores"] == 1  # reserve_core kept one of the two
    ex.shutdown()
    ex.shutdown()  # again: nothing
    with pytest.raises(RuntimeError):
        ex.submit(BasicTemplate.template, name="late", exec="/bin/true")
    assert ex.qcgpj_manager._sock is None  # the service was finished


def test_template_errors_name_the_placeholder(tmp_path: Path) -> None:
    from qcg.pilotjob.api.errors import InvalidJobDescriptionError

    with QCGPJExecutor(wd=str(tmp_path), resources="1") as ex:
        with pytest.raises(InvalidJobDescriptionError, match="'exec'"):
            ex.submit(BasicTemplate.template, name="no_exec")
        ok = ex.submit(BasicTemplate.template, name="with_it", exec="/bin/echo", args=["${jname}"],
                       stdout=str(tmp_path / "it.out"))
        assert ok.result(timeout=60) == {"with_it": "SUCCEED"}
    assert (tmp_path / "it.out").read_text() == "with_it\n"  # the service's variables pass through


class _PoolShaped(QCGPJTemplate):
    """The shape of template EasyVVUQ's QCGPJPool submits: an empty venv, no modules, the
    default model and empty model options as defaults, parameters given as None."""

    @staticmethod
    def template() -> Tuple[str, Dict[str, Any]]:
        return """{'name': '${name}', 'execution': {'exec': '${exec}', 'args': ${args}, 'stdout': '${stdout}',
                   'stderr': '${stderr}', 'venv': '${venv}', 'modules': ${modules}, 'model': '${model}',
                   'model_opts': ${model_opts}}}""", {
            "args": [], "stdout": "stdout", "stderr": "stderr", "venv": "", "modules": [], "model": "default",
            "model_opts": {}}


def test_a_template_shaped_as_easyvvuqs_runs(tmp_path: Path) -> None:
    with QCGPJExecutor(wd=str(tmp_path), resources="2") as ex:
        future = ex.submit(_PoolShaped.template, None, exec="python3", name="run_1", args=["-c", "print(6 * 7)"],
                           stdout=str(tmp_path / "out"), stderr=str(tmp_path / "err"))
        assert future.result(timeout=60) == {"run_1": "SUCCEED"}, (tmp_path / "err").read_text()
    assert (tmp_path / "out").read_text() == "42\n"
