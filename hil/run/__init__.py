"""Scenario files: a simulated building, a timeline of faults, and what must hold at the end.

``python -m hil.run FILE`` reads a TOML scenario (:mod:`hil.run.spec`),
boots the building around the real daemon (:mod:`hil.run.runner`, on top of
``hil.scenario.Scenario``) with the uplink behind ``hil.faultproxy``, plays
the timeline (:mod:`hil.run.events`), then accounts for every committed
reading (:mod:`hil.run.ledger`), judges the expectations and writes the
report (:mod:`hil.run.report`). One module, one job.
"""
