"""Slurm: node lists, allocation discovery, srun command lines."""
