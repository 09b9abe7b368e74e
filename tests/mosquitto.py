"""The tests' side of ``hil.mosquitto``: a broker where mosquitto is missing skips the test."""

from __future__ import annotations

from pathlib import Path

import pytest

import hil.mosquitto as _hil
from hil.mosquitto import MOSQUITTO, Collector, TlsFiles, available, free_port

__all__ = ["MOSQUITTO", "Collector", "Mosquitto", "TlsFiles", "available", "free_port", "mosquitto"]


class Mosquitto(_hil.Mosquitto):
    """``hil.mosquitto.Mosquitto``, skipping the test instead of raising where there is no broker."""

    def __init__(self, directory: Path, **kw) -> None:
        if not available():
            pytest.skip(str(_hil.MosquittoMissing()))
        super().__init__(directory, **kw)


@pytest.fixture
def mosquitto(tmp_path: Path):
    """A fresh anonymous broker per test."""
    with Mosquitto(tmp_path / "broker") as broker:
        yield broker
