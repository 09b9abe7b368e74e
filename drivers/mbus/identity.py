"""Who an M-Bus meter says it is: maker, kind, serial and version from its long data header.

The header of every RSP_UD with CI 0x72/0x76 carries the identification
number (the serial printed on the meter), the manufacturer's three-letter
FLAG code (the three-letter manufacturer id of the FLAG Association's registry), a
version byte and the medium (EN 13757-3 Table 3). This turns them into a
``zaas_edge.driver.DeviceIdentity`` for people and for Home Assistant: the
common makers by name, an unknown code as its three letters, the medium in
the header's own words so a water meter and a gas meter are told apart
whatever their ids. Pure.
"""

from __future__ import annotations

__all__ = ["MANUFACTURERS", "manufacturer_name", "meter_kind", "meter_identity"]

from zaas_edge.drivers.mbus.header import LongHeader

from zaas_edge.driver import DeviceIdentity

# FLAG codes of the makers of meters met on wired M-Bus in buildings. Several makers hold more
# than one code (one per former company or product line): each is named by the brand it is now.
MANUFACTURERS: dict[str, str] = {
    "ABB": "ABB",
    "ACE": "Itron",  # Actaris electricity
    "ACG": "Itron",  # Actaris gas
    "ACW": "Itron",  # Actaris water and heat
    "AMT": "Aquametro",
    "APA": "Apator",
    "AXI": "Axioma Metering",
    "BMT": "B Meters",
    "DFS": "Danfoss",
    "DME": "Diehl Metering",
    "DZG": "DZG Metering",
    "EFE": "Engelmann",
    "ELS": "Elster (Honeywell)",
    "ELV": "Elvaco",
    "EMH": "EMH metering",
    "EMU": "EMU Electronic",
    "GWF": "GWF",
    "HYD": "Diehl Metering",  # Hydrometer
    "ISK": "Iskraemeco",
    "IST": "ista",
    "ITR": "Itron",
    "ITW": "Itron",
    "KAM": "Kamstrup",
    "LAS": "Lansen",
    "LGB": "Landis+Gyr",
    "LGD": "Landis+Gyr",
    "LGZ": "Landis+Gyr",
    "LSZ": "Siemens",  # Siemens Building Technologies
    "LUG": "Landis+Gyr",
    "MAD": "Maddalena",
    "NZR": "NZR",
    "QDS": "Qundis",
    "RAS": "Diehl Metering",  # Hydrometer
    "REL": "Relay",
    "SAP": "Diehl Metering",  # Sappel
    "SEN": "Sensus",
    "SIE": "Siemens",
    "SON": "Sontex",
    "SPL": "Diehl Metering",  # Sappel
    "SPX": "Sensus",  # Spanner-Pollux
    "TCH": "Techem",
    "VES": "ista",  # Viterra Energy Services
    "ZRI": "Zenner",
    "ZRM": "Zenner",
}

# What people call a meter of each medium (EN 13757-3 names, as in header.MEDIUM_NAMES).
_KINDS: dict[str, str] = {
    "electricity": "electricity meter",
    "gas": "gas meter",
    "heat_outlet": "heat meter",
    "heat_inlet": "heat meter (inlet)",
    "heat_cooling": "heat and cooling meter",
    "cooling_outlet": "cooling meter",
    "cooling_inlet": "cooling meter (inlet)",
    "water": "water meter",
    "cold_water": "cold water meter",
    "warm_water": "warm water meter",
    "hot_water": "hot water meter",
    "dual_water": "dual water meter",
    "waste_water": "waste water meter",
    "heat_cost_allocator": "heat cost allocator",
    "oil": "oil meter",
    "steam": "steam meter",
    "compressed_air": "compressed air meter",
}


def manufacturer_name(code: str) -> str:
    """The maker behind a FLAG code; the code itself (its three letters) when it is not a known one."""
    return MANUFACTURERS.get(code.upper(), code)


def _said(medium: str) -> bool:
    """Whether a medium name says what is measured (not "other", "unknown" or a reserved code)."""
    return medium not in ("other", "unknown") and not medium.startswith("reserved_")


def meter_kind(medium: str) -> str:
    """"water meter", "heat meter", ... from a medium name; the name in words for other devices,
    "meter" when the medium says nothing."""
    return _KINDS.get(medium) or (medium.replace("_", " ") if _said(medium) else "meter")


def meter_identity(header: LongHeader) -> DeviceIdentity:
    """The identity a long header gives: ``model`` is the kind of meter and its FLAG code, so an
    unlisted maker or a second product line stays recognisable ("water meter (SEN, M-Bus)"). A
    medium that says nothing ("other", "unknown", reserved) is left empty, for the names to tell."""
    medium = header.medium_name
    return DeviceIdentity(
        manufacturer=manufacturer_name(header.manufacturer),
        model=f"{meter_kind(medium)} ({header.manufacturer}, M-Bus)",
        serial=header.identification,
        sw_version=str(header.version),
        medium=medium if _said(medium) else "",
    )
