"""The gateway's own health as readings."""
from zaas_edge.drivers.system.driver import SystemDriver, SystemOptions

__all__ = ["SystemDriver", "SystemOptions"]
