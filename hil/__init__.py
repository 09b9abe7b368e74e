"""Simulated devices, the reference central API and the scenario runner (run from the source tree)."""
