"""The bytes a gateway sends the platform: the batch body format (sans-I/O).

Its own package because both sides of the outbox speak it: the store keeps
upload blocks in this encoding, sync sends it, the reference central reads it.
It needs only the model and the errors, so neither the store nor sync has to
import the other to use it. The body is the Protocol Buffers message of
docs/sync-batch.proto, written and read without the protobuf runtime:
``proto`` (the wire format), ``codec`` (the body), ``codec_v1`` (the body
before the schema, still read), ``batch`` (the decoded forms both give).
The columns are explained in docs/sync-encoding.md.
"""
