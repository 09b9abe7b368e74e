"""Bluetooth Low Energy adverts: pure decoders.

``ruuvi`` decodes RuuviTag data format 5 from manufacturer data; ``bthome``
wraps the bthome-ble library for BTHome v2 service data. Scanning (bleak) and
the driver build on them.
"""
