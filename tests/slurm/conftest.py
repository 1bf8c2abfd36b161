"""The ``cluster`` fixture for every module here (defined in :mod:`tests.slurm.slurm_helpers`,
with the batch-job and driver helpers the test modules import from there)."""

from .slurm_helpers import cluster  # noqa: F401  (a fixture)
