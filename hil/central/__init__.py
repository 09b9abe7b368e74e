"""The reference central API (aiohttp): enrollment, batches, time, signed configuration bundles."""

from hil.central.ca import TestCA, sign_bundle
from hil.central.server import Central, decode_body

__all__ = ["Central", "TestCA", "sign_bundle", "decode_body"]
