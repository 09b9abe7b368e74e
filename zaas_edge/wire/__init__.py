"""The bytes a gateway sends the platform: the batch body format (sans-I/O).

Its own package because both sides of the outbox speak it: the store keeps
upload blocks in this encoding, sync sends it, the reference central reads it.
It needs only the model and the errors, so neither the store nor sync has to
import the other to use it. The byte layout is in docs/sync-encoding.md.
"""
