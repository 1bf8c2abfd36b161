"""Benchmarks side by side with QCG-PilotJob 0.14.2 (``python -m benchmarks``). Not tests."""
