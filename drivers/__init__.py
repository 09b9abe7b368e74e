"""Protocol drivers and device profiles, installed as ``zaas_edge.drivers``.

Each driver lives in its own subpackage and is registered under the
``zaas_edge.drivers`` entry-point group, exactly like a third-party driver.
"""
