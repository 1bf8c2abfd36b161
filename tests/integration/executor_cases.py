"""The scenarios of QCG-PilotJob 0.14.2's own executor-API tests, written anew, run against
one executor API: ours (built in) or the reference's ``qcg-pilotjob-executor-api`` package
on top of our ``qcg.pilotjob``. Usage::

    python executor_cases.py builtin
    python executor_cases.py reference DIR   # DIR: where the package was pip-installed --target

Every case runs in the current directory (the executors' default working dir) and prints
one JSON object: the file the executor class came from and, per case, ``"ok"`` or the
error. The reference's test file is not in its package (it lives only in the project's
repository), so its eleven scenarios are restated here, plus one with run-time statistics.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any, Callable, Dict, List, Tuple

LONG = ["5"]  # seconds a task runs where a case needs one that has not ended yet


def _select(argv: List[str]) -> None:
    if argv[1] == "reference":
        import qcg.pilotjob

        # the reference's modules ahead of ours, under the same names
        qcg.pilotjob.__path__.insert(0, os.path.join(argv[2], "qcg", "pilotjob"))


def _cases() -> Dict[str, Callable[[], None]]:
    from qcg.pilotjob.executor_api.qcgpj_executor import QCGPJExecutor
    from qcg.pilotjob.executor_api.templates.basic_template import BasicTemplate

    def check(cond: bool, what: str) -> None:
        if not cond:
            raise AssertionError(what)

    def one_task(ex: Any, **fields: Any) -> Any:
        return ex.submit(BasicTemplate.template, name="tj", exec="date", **fields)

    def long_task(ex: Any) -> Any:  # (one that has not ended when the case looks at it)
        return ex.submit(BasicTemplate.template, name="tj", exec="sleep", args=LONG)

    def create() -> None:
        with QCGPJExecutor(resources="2") as ex:
            res = ex.qcgpj_manager.resources()
            check(res["total_nodes"] == 1 and res["total_cores"] == 2, f"resources {res}")

    def template() -> None:
        text, defaults = BasicTemplate.template()
        check(text is not None and defaults is not None, "a template and its defaults")

    def submit_basic() -> None:
        with QCGPJExecutor() as ex:
            one_task(ex)
        try:
            with QCGPJExecutor() as ex:
                ex.submit(BasicTemplate.template, name="tj")
        except KeyError as exc:
            check("exec" in str(exc), f"the KeyError names exec: {exc!r}")
        else:
            raise AssertionError("a template without a value for exec was submitted")
        with QCGPJExecutor() as ex:
            ex.submit(BasicTemplate.template, name="tj", exec="cat", args='["-v", "/etc/hostname"]')
        ex = QCGPJExecutor()
        one_task(ex)
        ex.shutdown()

    def own_template() -> Tuple[str, Dict[str, Any]]:
        return ("{'name': '${name}', 'execution': {'exec': '${exec}', 'args': ${args}, "
                "'stdout': '${stdout}', 'stderr': '${stderr}'}}",
                {"args": [], "stdout": "out.txt", "stderr": "err.txt"})

    def custom_with_defaults() -> None:
        with QCGPJExecutor() as ex:
            check(ex.submit(own_template, name="tj", exec="date").result() == {"tj": "SUCCEED"}, "result")

    def custom_without_defaults() -> None:
        with QCGPJExecutor() as ex:
            f = ex.submit(lambda: "{'name': 'tj', 'execution': {'exec': 'date', 'stdout': 'out.txt'}}")
            check(f.result() == {"tj": "SUCCEED"}, "result")

    def run_basic() -> None:
        with QCGPJExecutor() as ex:
            check(one_task(ex).result() == {"tj": "SUCCEED"}, "result")

    def done() -> None:
        with QCGPJExecutor() as ex:
            f = one_task(ex)
            check(f.result() == {"tj": "SUCCEED"} and f.done(), "done once ended")
        with QCGPJExecutor() as ex:
            f = long_task(ex)
            check(not f.done(), "not done while it sleeps")

    def running() -> None:
        with QCGPJExecutor() as ex:
            f = one_task(ex)
            check(f.result() == {"tj": "SUCCEED"} and not f.running(), "not running once ended")
        with QCGPJExecutor() as ex:
            f = long_task(ex)
            check(f.running(), "running while it sleeps")

    def cancel() -> None:
        with QCGPJExecutor() as ex:
            f = one_task(ex)
            check(f.result() == {"tj": "SUCCEED"} and not f.cancelled(), "not cancelled")
        with QCGPJExecutor() as ex:
            f = long_task(ex)
            f.cancel()
            check(f.cancelled(), "cancelled")

    def dict_args() -> None:
        with QCGPJExecutor() as ex:
            f = ex.submit(BasicTemplate.template, {"exec": "date", "name": "tj"})
            check(f.result() == {"tj": "SUCCEED"}, "one dict")
        with QCGPJExecutor() as ex:
            f = ex.submit(BasicTemplate.template, {"exec": "date"}, {"name": "tj"})
            check(f.result() == {"tj": "SUCCEED"}, "two dicts")

    def dict_and_kwargs() -> None:
        with QCGPJExecutor() as ex:
            f = ex.submit(BasicTemplate.template, {"exec": "date"}, name="tj")
            check(f.result() == {"tj": "SUCCEED"}, "a dict and a keyword")

    def rt_stats() -> None:
        with QCGPJExecutor(resources="2", enable_rt_stats=True) as ex:
            check(one_task(ex).result() == {"tj": "SUCCEED"}, "result with run-time statistics on")

    return {"create": create, "template": template, "submit_basic": submit_basic,
            "custom_with_defaults": custom_with_defaults, "custom_without_defaults": custom_without_defaults,
            "run_basic": run_basic, "done": done, "running": running, "cancel": cancel, "dict_args": dict_args,
            "dict_and_kwargs": dict_and_kwargs, "rt_stats": rt_stats}


def main(argv: List[str]) -> None:
    _select(argv)
    from qcg.pilotjob.executor_api import qcgpj_executor

    out: Dict[str, Any] = {"module": qcgpj_executor.__file__, "cases": {}}
    for name, case in _cases().items():
        try:
            case()
            out["cases"][name] = "ok"
        except BaseException as exc:  # (a case's failure, whatever it is, is its result)
            out["cases"][name] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-1500:]}"
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv)
