"""A simulated EV charger (Heidelberg Energy Control) with a car: the current limit, the states, the watchdog.

The behaviour is a small pure model (``ChargerModel``: what the box does
given its registers, the car and the time since its last Modbus
transaction); ``EvCharger`` puts it on a ``SimBus`` (``hil.modbus_sim``), so
the real driver reads and writes it over Modbus TCP or RTU.

What it models, from the register table (``firmware_notes/heidelberg-energy-control.md``):

- the current limit (holding 261, 0.1 A): 0 pauses; a value below the
  hardware minimum is stored as 0 and one above the hardware maximum as the
  maximum, so a read-back tells the gateway what the box really took;
- the charging state (input 5): A no car, B car plugged not asking, C car
  charging; the odd code when the box allows charging (A2/B2/C2), the even
  one when it does not; F (10) while the remote lock (259) is 0;
- power = amps x 230 V x the car's phases, the currents and voltages to
  match, the energy counters growing with it;
- the watchdog: no Modbus transaction for ``watchdog_timeout`` (257, ms; 0
  disables) and the fail-safe current (262) replaces the limit until the next
  transaction.

Every write is kept in ``commands`` with the moment it landed.
"""

from __future__ import annotations

__all__ = ["ChargerModel", "ChargerCommand", "EvCharger", "state_code", "accepted_current", "VOLTAGE"]

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from zaas_edge.drivers.modbus.decode import encode_value
from zaas_edge.drivers.modbus.plan import Table
from zaas_edge.drivers.modbus.profile import Profile, get_profile

from hil.modbus_sim import SimMeter

PROFILE = "heidelberg-energy-control"
VOLTAGE = 230.0
_REG = {"watchdog_timeout": 257, "standby_mode": 258, "remote_lock": 259, "current_limit": 261,
        "failsafe_current": 262}
_LAYOUT_VERSION = 0x108  # 1.0.8: the layout with the watchdog and fail-safe registers


def accepted_current(raw: int, hw_min_a: int, hw_max_a: int) -> int:
    """What the box stores for a current command in 0.1 A: 0, or within the hardware limits."""
    if raw <= 0:
        return 0
    if raw < hw_min_a * 10:
        return 0
    return min(raw, hw_max_a * 10)


def state_code(plugged: bool, requesting: bool, allowed_a: float, locked: bool) -> int:
    """The charging-state register: 2/3 A, 4/5 B, 6/7 C (odd: charging allowed), 10 F (locked)."""
    if locked:
        return 10
    base = 2 if not plugged else 4 if not requesting else 6
    return base + (1 if allowed_a > 0 else 0)


@dataclass
class ChargerModel:
    """The box and its car; ``step`` advances the energy and the watchdog to ``now`` (seconds)."""

    hw_min_a: int = 6
    hw_max_a: int = 16
    car_phases: int = 3
    car_max_a: float = 16.0
    plugged: bool = False
    requesting: bool = False
    current_limit: int = 160  # 0.1 A
    failsafe_current: int = 0  # 0.1 A
    watchdog_ms: int = 15_000
    remote_lock: int = 1  # 1 unlocked
    standby_mode: int = 0
    last_transaction: float = 0.0
    failsafe: bool = False
    energy_wh: float = 0.0
    session_wh: float = 0.0
    _t: float | None = None

    def allowed_a(self) -> float:
        """The current the box offers: the fail-safe current while the watchdog has fired."""
        raw = self.failsafe_current if self.failsafe else self.current_limit
        return raw / 10.0

    def amps(self) -> float:
        """What the car draws per phase: only in state C2."""
        if self.remote_lock == 0 or not (self.plugged and self.requesting):
            return 0.0
        return min(self.allowed_a(), self.car_max_a)

    def power_w(self) -> float:
        return self.amps() * VOLTAGE * self.car_phases

    def state(self) -> int:
        return state_code(self.plugged, self.requesting, self.allowed_a(), self.remote_lock == 0)

    def step(self, now: float) -> None:
        if self._t is not None and now > self._t:
            wh = self.power_w() * (now - self._t) / 3600.0
            self.energy_wh += wh
            self.session_wh += wh
        self._t = now
        if self.watchdog_ms > 0 and now - self.last_transaction > self.watchdog_ms / 1000.0:
            self.failsafe = True

    def transaction(self, now: float) -> None:
        """A Modbus request reached the box: the watchdog restarts and the limit applies again."""
        self.step(now)
        self.last_transaction = now
        self.failsafe = False

    def write(self, quantity: str, raw: int) -> int:
        """Store a holding register as the box does; returns what it keeps."""
        if quantity in ("current_limit", "failsafe_current"):
            raw = accepted_current(raw, self.hw_min_a, self.hw_max_a)
        elif quantity == "remote_lock":
            raw = 1 if raw else 0
        setattr(self, {"watchdog_timeout": "watchdog_ms"}.get(quantity, quantity), raw)
        return raw


@dataclass(frozen=True, slots=True)
class ChargerCommand:
    """One register write as the box received it."""

    t: float  # time.monotonic() when it landed
    unit: int
    quantity: str
    asked: int  # raw register value written
    kept: int  # what the box stored


class EvCharger(SimMeter):
    """The model's registers on a simulated bus, refreshed on every request."""

    def __init__(self, unit: int, *, model: ChargerModel | None = None, profile: Profile | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.model = model or ChargerModel()
        self.model.last_transaction = clock()
        self.commands: list[ChargerCommand] = []
        self.listeners: list[Callable[[ChargerCommand], None]] = []
        super().__init__(profile or get_profile(PROFILE), unit)
        self._publish()

    # -- the car --------------------------------------------------------------------------------

    def plug(self, *, requesting: bool = True, phases: int | None = None, max_a: float | None = None) -> None:
        m = self.model
        m.step(self.clock())
        m.plugged, m.requesting = True, requesting
        if phases is not None:
            m.car_phases = phases
        if max_a is not None:
            m.car_max_a = max_a
        self._publish()

    def unplug(self) -> None:
        self.model.step(self.clock())
        self.model.plugged = self.model.requesting = False
        self.model.session_wh = 0.0
        self._publish()

    @property
    def power_w(self) -> float:
        self.model.step(self.clock())
        return self.model.power_w()

    # -- the datastore side -------------------------------------------------------------------

    def update(self, t: float) -> None:
        """Time passes (``SimServer.start_moving``): energy grows, the watchdog may fire."""
        if hasattr(self, "model"):
            self.model.step(self.clock())
            self._publish()

    def read(self, table: Table, address: int, count: int) -> list[int]:
        self.model.transaction(self.clock())
        self._publish()
        return super().read(table, address, count)

    def write(self, table: Table, address: int, values: Sequence[int]) -> None:
        now = self.clock()
        self.model.transaction(now)
        if table is Table.HOLDING:
            by_address = {a: q for q, a in _REG.items()}
            for i, v in enumerate(values):
                q = by_address.get(address + i)
                if q is None:
                    continue  # a register the box does not have: ignored
                kept = self.model.write(q, int(v))
                cmd = ChargerCommand(now, self.unit, q, int(v), kept)
                self.commands.append(cmd)
                for listener in self.listeners:
                    listener(cmd)
        self._publish()

    def _publish(self) -> None:
        m = self.model
        amps = m.amps()
        values = {
            "register_layout_version": _LAYOUT_VERSION, "charging_state": m.state(),
            "temperature_pcb": 28.5 + amps / 4, "external_lock_state": 1, "power": round(m.power_w()),
            "energy_since_power_on": int(m.session_wh) / 1000.0, "energy_import": int(m.energy_wh) / 1000.0,
            "hardware_max_current": m.hw_max_a, "hardware_min_current": m.hw_min_a,
            "watchdog_timeout": m.watchdog_ms / 1000.0, "standby_mode": m.standby_mode,
            "remote_lock": m.remote_lock, "current_limit": m.current_limit / 10.0,
            "failsafe_current": m.failsafe_current / 10.0,
        }
        for ph in (1, 2, 3):
            values[f"current_l{ph}"] = amps if ph <= m.car_phases else 0.0
            values[f"voltage_l{ph}"] = VOLTAGE
        for p in self.profile.points:
            if p.quantity in values:
                spec = self.profile.register_spec(p)
                self._put(self.profile.table_of(p), p.address, encode_value(float(values[p.quantity]), spec, 0))
        self._refresh_served()
