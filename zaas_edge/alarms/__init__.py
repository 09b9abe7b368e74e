"""The daemon's alarm service: the alarm rules (:mod:`zaas_edge.rules.alarms`) run on the hub's readings.

Each alarm it raises is an incident ready to file (:mod:`zaas_edge.alarms.incident`);
consumption baselines come from the store's history (:mod:`zaas_edge.alarms.baseline`).
"""
