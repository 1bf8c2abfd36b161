"""``qcg-pm-service``: the command line of the service (click).

Every option of QCG-PilotJob's ``qcg-pm-service --help`` is accepted with its meaning.
"""

from __future__ import annotations

import sys
from typing import Any, List, Optional

import click

from .. import __version__
from ..errors import ConfigError, QCGError, ResourceError
from .config import LOG_LEVELS, ServiceConfig

__all__ = ["cli", "main"]


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--net", is_flag=True, help="enable network interface")
@click.option("--net-port", type=int, help="port to listen for network interface (implies --net)")
@click.option("--net-port-min", type=int,
              help="minimum port range to listen for network interface if exact port number is not "
                   "defined (implies --net)  [default: 2222]")
@click.option("--net-port-max", type=int,
              help="maximum port range to listen for network interface if exact port number is not "
                   "defined (implies --net)  [default: 9999]")
@click.option("--file", "file_", is_flag=True, help="enable file interface")
@click.option("--file-path", help="path to the request file (implies --file)")
@click.option("--wd", default=".", show_default=True, help="working directory for the service")
@click.option("--envschema", default="auto", show_default=True, help="job environment schema [auto|slurm]")
@click.option("--resources", default="auto", show_default=True,
              help="source of information about available resources [auto|slurm|local] as well as a method "
                   "of job execution (through local processes or as a Slurm sub jobs)")
@click.option("--report-format", default="text", show_default=True, help="format of job report file [text|json|none]")
@click.option("--report-file", default="jobs.report", show_default=True, help="name of the job report file")
@click.option("--nodes", help="configuration of available resources (implies --resources local), "
                              "e.g. 4 or n1:4,n2:4")
@click.option("--log", default="info", show_default=True, type=click.Choice(LOG_LEVELS, case_sensitive=False),
              help="log level")
@click.option("--system-core", is_flag=True, help="reserve one of the core for the QCG-PJM")
@click.option("--disable-nl", is_flag=True, help="disable custom launching method")
@click.option("--show-progress", is_flag=True, help="print information about executing tasks")
@click.option("--governor", is_flag=True,
              help="run manager in the governor mode, where jobs will be scheduled to execute to the dependant "
                   "managers")
@click.option("--parent", help="address of the parent manager, current instance will receive jobs from the "
                               "parent manager")
@click.option("--id", "id_", help="optional manager instance identifier - will be generated automatically when "
                                  "not defined")
@click.option("--tags", help="optional manager instance tags separated by commas")
@click.option("--slurm-partition-nodes", type=int,
              help="split Slurm allocation by given number of nodes, where each group will be controlled by "
                   "separate manager (implies --governor)")
@click.option("--slurm-limit-nodes-range-begin", type=int,
              help="limit Slurm allocation to specified range of nodes (starting node)")
@click.option("--slurm-limit-nodes-range-end", type=int,
              help="limit Slurm allocation to specified range of nodes (ending node)")
@click.option("--resume", help="resume a killed run from its auxiliary directory (or a working directory "
                               "holding one)")
@click.option("--kill-grace", type=float, default=10.0, show_default=True,
              help="seconds between SIGTERM and SIGKILL when a task is cancelled or exceeds its wall time")
@click.option("--net-host", help="address to listen on for the network interface: default loopback outside a Slurm "
                                "allocation and the node's own address inside one; * for every interface")
@click.option("--insecure-net", is_flag=True,
              help="turn off the authentication of the network interface (for clients that cannot do CURVE, "
                   "such as QCG-PilotJob 0.14's own); anyone who reaches it can run commands as you")
@click.option("--keep-task-children", is_flag=True, help="leave running the processes a task started when it ends")
@click.option("--prune-finished", is_flag=True,
              help="finished iterations keep their state alone, not their history and runtime (very long runs)")
@click.option("--disable-pub", is_flag=True, help="do not publish status events (clients then poll)")
@click.option("--net-pub-port", type=int, help="port of the status-event publisher (else one of the --net-port range)")
@click.option("--nl-init-timeout", type=float, default=120.0, show_default=True,
              help="seconds to wait for the node agents to start (Slurm)")
@click.option("--nl-ready-threshold", type=float,
              help="fraction of node agents that must start, else the service stops (Slurm; default: go on "
                   "with the nodes whose agent started)")
@click.option("--nl-start-method", type=click.Choice(["slurm", "ssh"]), default="slurm", show_default=True,
              help="how node agents start; they always start with srun here (ssh is taken as slurm)")
@click.option("--slurm-resources-file",
              help="the nodes to use, in QCG-PilotJob's resources JSON (as its governor writes for partitions)")
@click.option("--enable-rt-stats", is_flag=True,
              help="accepted for QCG-PilotJob compatibility: every task's start and end are always recorded "
                   "(jobs.report; qcg-pm-report launch-stats)")
@click.option("--wrapper-rt-stats", help="accepted for QCG-PilotJob compatibility: no launch wrapper is needed")
@click.option("--enable-proc-stats", is_flag=True,
              help="accepted for QCG-PilotJob compatibility: no effect (no process statistics are collected)")
@click.option("--dry-run", is_flag=True, hidden=True)
@click.option("--heartbeat", type=float, default=1.0, hidden=True)
@click.option("--aux-dir", hidden=True)
@click.option("--launcher", hidden=True)
@click.option("--ready-fd", type=int, hidden=True)
@click.option("--lifeline-fd", type=int, hidden=True)
@click.version_option(__version__, prog_name="qcg-pm-service")
def cli(**kw: Any) -> None:
    """QCG-PilotJob Manager service: runs many jobs inside one allocation."""
    tags: List[str] = [t.strip() for t in (kw["tags"] or "").split(",") if t.strip()]
    cfg = ServiceConfig(
        net=kw["net"], net_port=kw["net_port"], net_port_min=kw["net_port_min"], net_port_max=kw["net_port_max"],
        net_host=kw["net_host"], insecure_net=kw["insecure_net"],
        file=kw["file_"], file_path=kw["file_path"], wd=kw["wd"], envschema=kw["envschema"],
        resources=kw["resources"], report_format=kw["report_format"], report_file=kw["report_file"],
        nodes=kw["nodes"], log=kw["log"].lower(), system_core=kw["system_core"], disable_nl=kw["disable_nl"],
        show_progress=kw["show_progress"], governor=kw["governor"], parent=kw["parent"], id=kw["id_"], tags=tags,
        slurm_partition_nodes=kw["slurm_partition_nodes"],
        slurm_limit_nodes_range_begin=kw["slurm_limit_nodes_range_begin"],
        slurm_limit_nodes_range_end=kw["slurm_limit_nodes_range_end"],
        resume=kw["resume"], kill_grace=kw["kill_grace"], ready_fd=kw["ready_fd"], lifeline_fd=kw["lifeline_fd"],
        keep_task_children=kw["keep_task_children"], prune_finished=kw["prune_finished"],
        dry_run=kw["dry_run"], heartbeat=kw["heartbeat"], aux_dir=kw["aux_dir"], launcher=kw["launcher"],
        disable_pub=kw["disable_pub"], net_pub_port=kw["net_pub_port"], nl_init_timeout=kw["nl_init_timeout"],
        nl_ready_threshold=kw["nl_ready_threshold"], nl_start_method=kw["nl_start_method"],
        slurm_resources_file=kw["slurm_resources_file"], enable_rt_stats=kw["enable_rt_stats"],
        wrapper_rt_stats=kw["wrapper_rt_stats"], enable_proc_stats=kw["enable_proc_stats"],
    )
    code = run(cfg)
    sys.exit(code)


def run(cfg: ServiceConfig) -> int:
    from ..gctune import tune
    from ..partition.entry import run_partition
    from .runtime import Service

    tune()

    from ..protocol.transport import release

    try:
        try:
            cfg = cfg.validate()
            if cfg.parent is not None:
                return run_partition(cfg)
            service = Service(cfg)
        except QCGError as exc:
            sys.stderr.write(f"qcg-pm-service: error: {exc}\n")
            return 2 if isinstance(exc, (ConfigError, ResourceError)) else 1
        return service.run()
    finally:
        release()  # (what is still queued leaves before the process exits)


def main(argv: Optional[List[str]] = None) -> None:
    cli.main(args=argv, prog_name="qcg-pm-service")
