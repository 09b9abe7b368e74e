"""Moved to ``hil.daemon_harness`` (the benchmarks start the daemon the same way); kept while imports move."""

from hil.daemon_harness import CLI, ROOT, SYSTEM_DRIVER, DaemonProcess, write_config

__all__ = ["CLI", "ROOT", "SYSTEM_DRIVER", "DaemonProcess", "write_config"]
