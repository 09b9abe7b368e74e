"""Stopping the child processes the harnesses start (simulators, brokers, the daemon, the central)."""

from __future__ import annotations

import signal
import subprocess


def stop_process(proc: subprocess.Popen, timeout: float = 5.0, sig: int = signal.SIGTERM) -> int:
    """Ask ``proc`` to stop with ``sig`` (SIGTERM), wait up to ``timeout`` seconds, then kill it.

    Returns its exit status; a process already gone is only reaped.
    """
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def kill_process(proc: subprocess.Popen) -> int:
    """SIGKILL ``proc`` (no code of its own runs) and reap it; returns its exit status."""
    if proc.poll() is None:
        proc.kill()
    return proc.wait()
