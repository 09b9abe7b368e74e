"""Load shedding in the daemon: the engine's I/O side.

The decisions are pure and live in ``zaas_edge.rules``; this package feeds
the engine from the hub, carries its actions out on the actuators, keeps the
manual overrides and reports what it did.
"""
