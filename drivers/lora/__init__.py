"""LoRaWAN through Semtech UDP packet forwarders: pure codecs.

``gwmp`` speaks the forwarder protocol, ``lorawan`` parses, checks and
decrypts LoRaWAN 1.0.x frames, ``fcnt`` rebuilds 32-bit frame counters and
rejects replays, ``dedup`` merges copies heard by several gateways. None of
them does I/O; the UDP server and the driver build on them.
"""
