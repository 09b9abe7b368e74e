"""M-Bus application layer (EN 13757-3) from the specification: hand-built records
for every DIF coding, VIF range, DIFE chain, date type, special function and CI."""

from __future__ import annotations

import math

import pytest
from zaas_edge.drivers.mbus import (
    AlarmStatus,
    ApplicationError,
    Coding,
    FixedDataTelegram,
    Function,
    LongHeader,
    MBusError,
    RecordSpec,
    ShortHeader,
    VariableDataTelegram,
    convert,
    decode_manufacturer,
    decode_telegram,
    decode_user_data,
    encode_manufacturer,
    medium_name,
    parse_records,
    rsp_ud,
)
from zaas_edge.drivers.mbus.encode import encode_fixed_data, encode_record
from zaas_edge.drivers.mbus.header import status_flags

from zaas_edge.errors import ProtocolError


def one(record_hex: str):  # noqa: ANN201
    block = parse_records(bytes.fromhex(record_hex.replace(" ", "")))
    assert len(block.records) == 1
    return block.records[0]


def test_standard_example_telegram() -> None:
    """The worked RSP_UD example of EN 1434-3 / EN 13757-3 (water meter, PAD)."""
    raw = bytes.fromhex("681F1F680802727856341224400107550000000313153100DA023B13018B60043718021816")
    t = decode_telegram(raw)
    assert isinstance(t, VariableDataTelegram)
    h = t.header
    assert isinstance(h, LongHeader)
    assert (h.identification, h.manufacturer, h.version, h.medium_name) == ("12345678", "PAD", 1, "water")
    assert (h.access_no, h.status, h.signature) == (0x55, 0, 0)
    assert h.secondary_address == "1234567840240107"
    volume, flow, energy = t.records
    assert (volume.key, volume.value, volume.unit) == ("volume", 12.565, "m3")
    assert (flow.key, flow.value, flow.unit, flow.function, flow.storage) == (
        "volume_flow.max.s5",
        0.113,
        "m3/h",
        Function.MAXIMUM,
        5,
    )
    assert (energy.key, energy.value, energy.unit) == ("energy.t2.u1", 218370, "Wh")
    assert (energy.tariff, energy.subunit, energy.storage) == (2, 1, 0)
    assert (
        energy.dif == 0x8B and energy.dife == b"\x60" and energy.vif == 0x04 and energy.data == bytes.fromhex("371802")
    )


@pytest.mark.parametrize(
    ("record", "value", "coding"),
    [
        ("01 03 FF", -1, Coding.INT8),
        ("02 03 3412", 0x1234, Coding.INT16),
        ("03 03 FEFFFF", -2, Coding.INT24),
        ("04 03 78563412", 0x12345678, Coding.INT32),
        ("05 03 0000C03F", 1.5, Coding.REAL32),
        ("06 03 010000000080", -(2**47) + 1, Coding.INT48),
        ("07 03 FFFFFFFFFFFFFF7F", 2**63 - 1, Coding.INT64),
        ("09 03 42", 42, Coding.BCD2),
        ("0A 03 34F2", -234, Coding.BCD4),
        ("0B 03 563412", 123456, Coding.BCD6),
        ("0C 03 78563412", 12345678, Coding.BCD8),
        ("0E 03 120090785634", 345678900012, Coding.BCD12),
        ("0D 03 C2 3412", 1234, Coding.VARIABLE),
        ("0D 03 D2 3412", -1234, Coding.VARIABLE),
        ("0D 03 E3 010203", 0x030201, Coding.VARIABLE),
        ("00 03", None, Coding.NONE),
        ("08 03", None, Coding.SELECTION),
    ],
)
def test_every_dif_coding(record: str, value: object, coding: Coding) -> None:
    r = one(record)  # VIF 0x03: energy in Wh, exponent 0
    assert r.coding == coding
    assert r.value == value
    assert r.unit == "Wh" and r.quantity == "energy"


def test_lvar_text_and_errors() -> None:
    r = one("0D 78 06 35 33 32 44 56 52")
    assert (r.quantity, r.value) == ("fabrication_no", "RVD235")
    bad = one("0C 03 EEEEEEEE")
    assert bad.value is None and bad.error == "invalid BCD digits"
    with pytest.raises(ProtocolError, match="reserved LVAR 0xF8"):
        parse_records(bytes.fromhex("0D03F8"))
    with pytest.raises(ProtocolError, match="needs 5 bytes"):
        parse_records(bytes.fromhex("0D0305414243"))


@pytest.mark.parametrize(
    ("vib", "raw", "value", "unit", "quantity"),
    [
        ("00", 5, 0.005, "Wh", "energy"),
        ("07", 5, 50000, "Wh", "energy"),
        ("0E", 5, 5_000_000, "J", "energy"),
        ("10", 5, 5e-6, "m3", "volume"),
        ("17", 5, 50, "m3", "volume"),
        ("1B", 5, 5, "kg", "mass"),
        ("22", 5, 18000, "s", "on_time"),
        ("27", 2, 172800, "s", "operating_time"),
        ("2B", 5, 5, "W", "power"),
        ("33", 5, 5000, "J/h", "power"),
        ("3B", 5, 0.005, "m3/h", "volume_flow"),
        ("43", 5, 5e-4 * 60, "m3/h", "volume_flow"),
        ("4B", 5, 5e-6 * 3600, "m3/h", "volume_flow"),
        ("53", 5, 5, "kg/h", "mass_flow"),
        ("59", 2150, 21.5, "degC", "flow_temperature"),
        ("5E", 215, 21.5, "degC", "return_temperature"),
        ("61", 5, 0.05, "K", "temperature_difference"),
        ("67", 5, 5, "degC", "external_temperature"),
        ("69", 105, 1.05, "bar", "pressure"),
        ("6E", 5, 5, "", "hca"),
        ("71", 5, 300, "s", "averaging_duration"),
        ("74", 5, 5, "s", "actuality_duration"),
        ("7A", 5, 5, "", "bus_address"),
        ("FB00", 5, 500_000, "Wh", "energy"),
        ("FB01", 5, 5_000_000, "Wh", "energy"),
        ("FB09", 5, 5_000_000_000, "J", "energy"),
        ("FB11", 5, 5000, "m3", "volume"),
        ("FB29", 5, 5_000_000, "W", "power"),
        ("FB5B", 212, 100.0, "degC", "flow_temperature"),
        ("FB63", 9, 5.0, "K", "temperature_difference"),
        ("FD08", 5, 5, "", "access_number"),
        ("FD0E", 5, 5, "", "firmware_version"),
        ("FD17", 0xFFFF, 0xFFFF, "", "error_flags"),
        ("FD1B", 3, 3, "", "digital_input"),
        ("FD47", 2301, 23.01, "V", "voltage"),
        ("FD59", 1500, 1.5, "A", "current"),
        ("FD26", 1, 3600, "s", "storage_interval"),
        ("FD28", 1, 1, "month", "storage_interval"),
        ("FD74", 10, 864000, "s", "battery_remaining"),
        ("7F", 7, 7, "", "manufacturer_specific"),
    ],
)
def test_vif_ranges(vib: str, raw: int, value: float, unit: str, quantity: str) -> None:
    r = one("02" + vib + raw.to_bytes(2, "little", signed=raw < 0x8000).hex())
    assert r.quantity == quantity and r.unit == unit
    assert math.isclose(r.value, value, rel_tol=1e-12), (r.value, value)


def test_combinable_vifes() -> None:
    fwd = one("04 86 3B 23000000")
    bwd = one("04 86 3C 23000000")
    assert (fwd.key, fwd.value) == ("energy_forward", 35000)
    assert (bwd.key, bwd.value) == ("energy_backward", 35000)
    assert one("02 DB 73 2300").value == pytest.approx(0.035)  # 10^(3-6) correction
    assert one("02 AB 7D 0200").value == 2000  # x 1000
    none = one("02 AB 15 0000")
    assert none.error == "no data available" and none.value == 0
    per_h = one("02 96 22 0500")
    assert (per_h.quantity, per_h.unit) == ("volume_per_h", "m3/h")
    phase = one("02 FD C9 FF 01 E6 00")
    assert (phase.key, phase.value, phase.unit, phase.manufacturer_vife) == ("voltage.m01", 230, "V", b"\x01")
    date_of_max = one("94 10 DA 6F 32147A18")
    assert (date_of_max.key, date_of_max.value) == ("flow_temperature_date_last_end.max.t1", "2011-08-26T20:50:00")


def test_plain_text_vif_before_its_vifes() -> None:
    r = one("02 FC 03 48 52 25 74 2215")
    assert (r.text_unit, r.unit, r.quantity, r.value) == ("%RH", "%RH", "plain_text", 54.1)


def test_dife_chain_storage_tariff_subunit() -> None:
    r = one("C4 BF 4A 03 01000000")
    assert (r.storage, r.tariff, r.subunit) == (1 | 0xF << 1 | 0xA << 5, 3, 2)
    assert r.key == "energy.s351.t3.u2"
    for dif, function in (
        (0x04, Function.INSTANTANEOUS),
        (0x14, Function.MAXIMUM),
        (0x24, Function.MINIMUM),
        (0x34, Function.ERROR),
    ):
        assert one(f"{dif:02X} 03 01000000").function == function
    with pytest.raises(ProtocolError, match="more than 10 DIFEs"):
        parse_records(bytes.fromhex("84" + "80" * 10 + "00 03 01000000".replace(" ", "")))
    with pytest.raises(ProtocolError, match="more than 10 VIFEs"):
        parse_records(bytes.fromhex("04 83" + "F0" * 10 + "70 01000000".replace(" ", "")))


@pytest.mark.parametrize(
    ("record", "value", "error"),
    [
        ("02 6C DF 1C", "2014-12-31", None),  # type G
        ("04 6D 17 2E CC 13", "2014-03-12T14:23:00", None),  # type F
        ("04 6D A1 15 E9 17", "2015-07-09T21:33:00", "time invalid"),  # type F, IV set
        ("06 6D 05 17 2E CC 13 0B", "2014-03-12T14:23:05", None),  # type I
        ("03 6D 05 17 0E", "14:23:05", None),  # type J
        ("02 6C 00 00", None, "invalid date"),
        ("04 6D 00 00 00 00", None, "invalid date"),
        ("04 FD 70 0C 0C BD 16", "2013-06-29T12:12:00", None),  # battery change date, type F
    ],
)
def test_date_types(record: str, value: str | None, error: str | None) -> None:
    r = one(record)
    assert r.value == value and r.error == error and r.unit == ""


def test_special_functions() -> None:
    block = parse_records(bytes.fromhex("2F 2F 04 03 01000000 2F 0F AA BB CC".replace(" ", "")))
    assert [r.quantity for r in block.records] == ["energy", "manufacturer_data"]
    assert block.manufacturer_data == bytes.fromhex("AABBCC")
    assert block.records[1].value == bytes.fromhex("AABBCC")
    assert not block.more_records_follow
    more = parse_records(bytes.fromhex("1F"))
    assert more.more_records_follow and more.manufacturer_data == b""
    for dif in ("3F", "7F", "8F"):
        with pytest.raises(ProtocolError, match="reserved special DIF"):
            parse_records(bytes.fromhex(dif))


@pytest.mark.parametrize(
    ("data", "code", "message"),
    [
        ("", None, "unspecified error"),
        ("00", 0, "unspecified error"),
        ("01", 1, "unimplemented CI field"),
        ("03", 3, "too many records"),
        ("05", 5, "more than 10 DIFEs"),
        ("06", 6, "more than 10 VIFEs"),
        ("08", 8, "application too busy for handling readout request"),
        ("63", 0x63, "reserved error code 99"),
    ],
)
def test_application_error_ci_70(data: str, code: int | None, message: str) -> None:
    t = decode_user_data(0x70, bytes.fromhex(data))
    assert isinstance(t, ApplicationError)
    assert (t.code, t.message) == (code, message)


def test_other_ci_fields() -> None:
    short = decode_user_data(0x7A, bytes.fromhex("2A 14 0000 04 03 01000000".replace(" ", "")))
    assert isinstance(short, VariableDataTelegram)
    assert short.header == ShortHeader(0x2A, 0x14, 0)
    assert short.header.flags == ("power_low", "temporary_error") and short.header.has_error
    bare = decode_user_data(0x78, bytes.fromhex("0403 01000000".replace(" ", "")))
    assert bare.header is None and bare.records[0].value == 1
    msb = decode_user_data(0x76, bytes.fromhex("12345678 4024 01 07 55 00 0000 04 03 00000102".replace(" ", "")))
    assert msb.header.identification == "12345678" and msb.header.manufacturer == "PAD"
    assert msb.records[0].value == 0x0102
    assert decode_user_data(0x71, b"\x01") == AlarmStatus(0x71, b"\x01")
    with pytest.raises(ProtocolError, match="unsupported CI field 0xB8"):
        decode_user_data(0xB8, b"")
    with pytest.raises(ProtocolError, match="long data header needs 12 bytes"):
        decode_user_data(0x72, bytes(11))


def test_fixed_data_structure() -> None:
    data = encode_fixed_data("90919293", 0x10, 0x00, 4, (0x05, 6531), (0x29, 69))
    t = decode_user_data(0x73, data)
    assert isinstance(t, FixedDataTelegram)
    assert (t.identification, t.access_no, t.medium_name) == ("90919293", 0x10, "heat")
    energy, volume = t.records
    assert (energy.quantity, energy.value, energy.unit) == ("energy", 6_531_000, "Wh")
    assert (volume.quantity, volume.value, volume.unit) == ("volume", 0.069, "m3")
    binary_historic = decode_user_data(0x73, encode_fixed_data("00000001", 1, 0xC0, 7, (0x2C, 300), (0x3E, 200)))
    first, second = binary_historic.records
    assert (first.value, first.storage, second.value, second.storage, second.unit) == (300, 1, 200, 1, "m3")


def test_header_fields() -> None:
    assert decode_manufacturer(0x4024) == "PAD"
    assert encode_manufacturer("els") == 0x1593
    assert decode_manufacturer(encode_manufacturer("ZZZ")) == "ZZZ"
    assert decode_manufacturer(0) == "@@@"
    with pytest.raises(MBusError):
        encode_manufacturer("A1B")
    assert medium_name(0x04) == "heat_outlet" and medium_name(0x7E) == "reserved_0x7e"
    assert status_flags(0x01) == ("application_busy",)
    assert status_flags(0x0B) == ("abnormal_condition", "permanent_error")


def test_by_key_keeps_repeated_records() -> None:
    header = LongHeader(0, 0, 0, "00000001", "ABC", 1, 7)
    raw = rsp_ud(1, header, [RecordSpec(b"\xfd\x17", 1, Coding.INT8), RecordSpec(b"\xfd\x17", 2, Coding.INT8)])
    keyed = decode_telegram(raw).by_key()
    assert {k: r.value for k, r in keyed.items()} == {"error_flags": 1, "error_flags#2": 2}


def test_encoder_rejects_what_it_cannot_code() -> None:
    with pytest.raises(MBusError, match="cannot code"):
        encode_record(RecordSpec(b"\x03", 300, Coding.INT8))
    with pytest.raises(MBusError, match="cannot code"):
        encode_record(RecordSpec(b"\x03", 1000, Coding.BCD2))
    with pytest.raises(MBusError, match="extension bit"):
        encode_record(RecordSpec(b"\x83", 1))
    with pytest.raises(MBusError, match="DIFEs"):
        encode_record(RecordSpec(b"\x03", 1, storage=2**45))
    assert encode_record(RecordSpec(b"\x03", -7, Coding.BCD4)) == bytes.fromhex("0A0307F0")


def test_unit_conversion() -> None:
    assert convert(218370, "Wh", "kWh") == pytest.approx(218.37)
    assert convert(1, "m3", "l") == pytest.approx(1000)
    assert convert(3600, "s", "h") == 1
    with pytest.raises(ValueError, match="cannot convert"):
        convert(1, "Wh", "m3")
