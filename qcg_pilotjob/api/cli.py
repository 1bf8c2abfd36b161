"""``qcg-pm``: a command-line client for a running service.

The service is found by ``--address``/``-a``, or the ``address`` file of an aux dir
(``--aux``), or the newest aux dir below ``--wd``/``-p`` (default: the current
directory), or ``QCG_PM_ZMQ_ADDRESS``. QCG-PilotJob 0.14's ``qcg-pm`` options work as
they did: ``-p``/``--path`` (``QCG_PJM_DIR``), ``-a``/``--address`` (``QCG_PJM_ADDRESS``;
without a port, 21000), ``-d``/``--debug`` (``QCG_CLIENT_DEBUG``), and ``status``
without names prints the service's status, from its ``final_status`` once it has ended.

    qcg-pm list
    qcg-pm --wd /scratch/run status sweep post
    qcg-pm -p /scratch/run status
    qcg-pm info sweep --childs --json
    qcg-pm --wd /scratch/run top
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import click

from ..auxdir import AUX_PREFIX, newest_aux_dir
from ..protocol.transport import parse_address
from .errors import QCGPJMAError
from .manager import Manager
from .top import CLEAR, TopView

__all__ = ["find_address", "main"]

#: the port QCG-PilotJob's qcg-pm adds to an address given without one
CLI_DEFAULT_PORT = 21000


def cli_address(address: str) -> str:
    """An address as QCG-PilotJob's ``qcg-pm -a`` reads it: ``tcp://`` and port 21000
    unless given.

    >>> cli_address("node7"), cli_address("10.0.0.1:2345"), cli_address("ipc:///tmp/s")
    ('tcp://node7:21000', 'tcp://10.0.0.1:2345', 'ipc:///tmp/s')
    """
    return parse_address(address, CLI_DEFAULT_PORT)


def locate(address: Optional[str], aux: Optional[str], wd: Optional[str]) -> Tuple[Optional[str], Optional[str]]:
    """The service's address (None if none is found) and its aux dir (None if unknown)."""
    if address:
        return cli_address(address), aux
    base = wd or "."
    where = aux or newest_aux_dir(base, "address")
    if where is not None and os.path.isfile(os.path.join(where, "address")):
        with open(os.path.join(where, "address"), encoding="utf-8") as fh:
            return fh.read().strip(), where
    if aux:
        return None, aux
    env = os.environ.get(Manager.DEFAULT_ADDRESS_ENV)
    if env and wd is None:
        return env, None
    return None, newest_aux_dir(base)


def find_address(address: Optional[str], aux: Optional[str], wd: Optional[str]) -> str:
    """Where the service listens, from the options (see the module docstring)."""
    found, _ = locate(address, aux, wd)
    if found is not None:
        return found
    if aux:
        raise click.UsageError(f"no address file in {aux}: was the service started with --net?")
    raise click.UsageError(f"no running service found: no {AUX_PREFIX}*/address below {os.path.abspath(wd or '.')}; "
                           f"give --address, --aux or --wd")


def _table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[str(c) for c in header]] + [[("" if c is None else str(c)) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


class _Ctx:
    def __init__(self, address: Optional[str], aux: Optional[str], wd: Optional[str], as_json: bool,
                 timeout: float) -> None:
        self.located, self.aux_dir = locate(address, aux, wd)
        self._where = (address, aux, wd)
        self.as_json = as_json
        self.timeout = timeout
        self._manager: Optional[Manager] = None

    @property
    def address(self) -> str:
        """The located address; a usage error naming where it was looked for if none."""
        return self.located if self.located is not None else find_address(*self._where)

    @property
    def manager(self) -> Manager:
        if self._manager is None:
            self._manager = Manager(self.address, {"request_timeout": self.timeout})
        return self._manager

    def out(self, data: Any, human: str) -> None:
        click.echo(json.dumps(data, indent=2, default=str) if self.as_json else human)


def _debug_log(aux_dir: Optional[str]) -> None:
    """``-d``: the client's log at DEBUG (each request and reply) to ``qcgpjmclient.log`` in
    the aux dir (the service's, or one below the current directory; else the current
    directory), as QCG-PilotJob's qcg-pm writes it."""
    path = os.path.join(aux_dir or ".", "qcgpjmclient.log")
    logging.basicConfig(level=logging.DEBUG, filename=path, filemode="w",
                        format="%(asctime)s %(name)-12s %(levelname)-8s %(message)s")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-a", "--address", envvar="QCG_PJM_ADDRESS",
              help=f"service address, [tcp://]host[:port] (port {CLI_DEFAULT_PORT} if none)")
@click.option("--aux", type=click.Path(file_okay=False), help="the service's aux dir (.qcgpjm-service-<id>)")
@click.option("--wd", "-p", "--path", "wd", type=click.Path(file_okay=False), envvar="QCG_PJM_DIR",
              help="the service's working dir (newest aux dir is used)")
@click.option("--json", "as_json", is_flag=True, help="print the service's reply data as JSON")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="seconds to wait for a reply")
@click.option("-d", "--debug", is_flag=True, envvar="QCG_CLIENT_DEBUG",
              help="log each request and reply to qcgpjmclient.log in the aux dir")
@click.pass_context
def cli(ctx: click.Context, address: Optional[str], aux: Optional[str], wd: Optional[str], as_json: bool,
        timeout: float, debug: bool) -> None:
    """Query and control a running qcg_pilotjob service."""
    given = click.core.ParameterSource.COMMANDLINE
    if ctx.get_parameter_source("address") is not given and given in (ctx.get_parameter_source("aux"),
                                                                       ctx.get_parameter_source("wd")):
        address = None  # (a directory given on the command line wins over QCG_PJM_ADDRESS)
    ctx.obj = _Ctx(address, aux, wd, as_json, timeout)
    if debug:
        _debug_log(ctx.obj.aux_dir or newest_aux_dir("."))
    if not (ctx.invoked_subcommand == "status" and _final_status_path(ctx.obj)):
        _ = ctx.obj.address  # (a usage error if there is nothing to talk to and no final status to show)


@cli.command("list")
@click.pass_obj
def list_cmd(c: _Ctx) -> None:
    """List every job with its state."""
    jobs = c.manager.list()
    rows = [(name, d.get("status"), d.get("messages", "")) for name, d in jobs.items()]
    c.out(jobs, _table(rows, ("NAME", "STATE", "MESSAGES")) + f"\n{len(rows)} jobs")


def _per_job(data: Dict[str, Any]) -> List[Any]:
    return list(data.get("jobs", {}).items())


@cli.command()
@click.argument("names", nargs=-1)
@click.pass_obj
def status(c: _Ctx, names: Sequence[str]) -> None:
    """State of jobs (NAME or NAME:ITERATION); without names, the service's status (once
    it has ended: its final_status)."""
    if not names:
        _service_status(c)
        return
    data = c.manager.status(list(names))
    rows = []
    failed = False
    for name, entry in _per_job(data):
        if entry.get("status") == 0:
            rows.append((name, entry["data"]["status"], ""))
        else:
            failed = True
            rows.append((name, "-", entry.get("message", "")))
    c.out(data, _table(rows, ("NAME", "STATE", "ERROR")))
    if failed:
        sys.exit(1)


@cli.command()
@click.argument("names", nargs=-1, required=True)
@click.option("--childs", is_flag=True, help="also list every iteration")
@click.pass_obj
def info(c: _Ctx, names: Sequence[str], childs: bool) -> None:
    """Details of jobs: runtime, iterations, history."""
    data = c.manager.info(list(names), withChilds=True) if childs else c.manager.info(list(names))
    parts = []
    failed = False
    for name, entry in _per_job(data):
        if entry.get("status") != 0:
            failed = True
            parts.append(f"{name}: {entry.get('message')}")
            continue
        d = entry["data"]
        lines = [f"{name}: {d.get('status')}"]
        if "messages" in d:
            lines.append(f"  messages: {d['messages']}")
        if "iterations" in d:
            it = d["iterations"]
            lines.append(f"  iterations: {it['start']}..{it['stop'] - 1}, {it['finished']} of {it['total']} "
                         f"finished, {it['failed']} failed")
        for key, val in (d.get("runtime") or {}).items():
            lines.append(f"  {key}: {val}")
        hist = [h for h in d.get("history", "").split("\n") if h]
        if hist:
            lines.append("  history:")
            lines.extend(f"    {h}" for h in hist)
        if childs and "childs" in d:
            rows = [(ch.get("iteration"), ch.get("state"), (ch.get("runtime") or {}).get("allocation", ""),
                     ch.get("messages", "")) for ch in d["childs"]]
            lines.append("  " + _table(rows, ("ITER", "STATE", "ALLOCATION", "MESSAGES")).replace("\n", "\n  "))
        parts.append("\n".join(lines))
    c.out(data, "\n".join(parts))
    if failed:
        sys.exit(1)


def _service_status(c: _Ctx) -> None:
    """QCG-PilotJob's ``qcg-pm status``: ``[Section]`` then ``key=value`` lines."""
    data: Optional[Dict[str, Any]] = None
    final = _final_status_path(c)
    if c.located is not None:
        try:
            data = c.manager.system_status()
        except QCGPJMAError:
            if final is None:
                raise
    if data is None:
        assert final is not None  # (the group checked there is a service or a final status)
        with open(final, encoding="utf-8") as fh:
            data = json.load(fh)
    human = []
    for section, values in data.items():
        human.append(f"[{section}]")
        if isinstance(values, dict):
            human.extend(f"{key}={val}" for key, val in values.items())
        else:
            human.append(str(values))
    c.out(data, "\n".join(human))


def _final_status_path(c: _Ctx) -> Optional[str]:
    if c.aux_dir is None:
        return None
    path = os.path.join(c.aux_dir, "final_status.json")
    return path if os.path.isfile(path) else None


def _errors_out(c: _Ctx, data: Dict[str, Any], verb: str, count_key: str) -> None:
    errors = data.get("errors") or {}
    human = f"{data.get(count_key, 0)} {verb}"
    if errors:
        human += "\n" + "\n".join(f"{n}: {m}" for n, m in errors.items())
    c.out(data, human)
    if errors:
        sys.exit(1)


@cli.command()
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def cancel(c: _Ctx, names: Sequence[str]) -> None:
    """Cancel jobs or single iterations (NAME:ITERATION)."""
    _errors_out(c, c.manager.cancel(list(names)), "canceled", "canceled")


@cli.command()
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def remove(c: _Ctx, names: Sequence[str]) -> None:
    """Remove finished jobs from the registry."""
    _errors_out(c, c.manager.remove(list(names)), "removed", "removed")


@cli.command()
@click.pass_obj
def resources(c: _Ctx) -> None:
    """Total, used and free cores."""
    data = c.manager.resources()
    c.out(data, _table([(data["total_nodes"], data["total_cores"], data["used_cores"], data["free_cores"])],
                       ("NODES", "CORES", "USED", "FREE")))


@cli.command()
@click.pass_obj
def finish(c: _Ctx) -> None:
    """Finish the service (running jobs are stopped)."""
    c.manager.finish()
    c.out({"finished": True}, "finish requested")


@cli.command()
@click.option("--interval", type=float, default=2.0, show_default=True, help="seconds between refreshes")
@click.option("--count", type=int, default=0, help="stop after this many refreshes (0: until the service ends)")
@click.option("--nodes", "max_nodes", type=int, default=32, show_default=True, help="nodes shown at most")
@click.pass_obj
def top(c: _Ctx, interval: float, count: int, max_nodes: int) -> None:
    """A live view: tasks queued, running, done and failed, overall and per partition; cores
    in use per node; tasks per second and ETA. Redrawn in place on a terminal, plain lines
    otherwise; ends when the service ends."""
    view = TopView(max_nodes)
    tty = sys.stdout.isatty()
    shown = 0
    while True:
        try:
            reply = c.manager.send_request({"request": "status", "options": {"partitions": True}})
        except QCGPJMAError:
            if shown:  # it was there: it ended
                click.echo("the service ended")
                return
            raise
        data = reply.get("data") or {}
        if c.as_json:
            click.echo(json.dumps({**view.figures(data), "time": time.time()}, default=str))
        else:
            lines = view.render(data)
            click.echo((CLEAR if tty else "") + "\n".join(lines) + ("" if tty else "\n"))
        shown += 1
        if count and shown >= count:
            return
        time.sleep(interval)


def main(argv: Optional[List[str]] = None) -> None:
    try:
        cli.main(args=argv, prog_name="qcg-pm", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        sys.exit(130)
    except QCGPJMAError as exc:
        click.echo(f"qcg-pm: error: {exc} (is the service still running?)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
