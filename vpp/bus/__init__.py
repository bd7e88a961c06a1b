"""The message bus between the towns' edge agents and the centre: NATS with JetStream.

Modules: :mod:`~vpp.bus.subjects` (subjects and streams), :mod:`~vpp.bus.envelope` (the
message and its validation), :mod:`~vpp.bus.client` (connection, publish with ack, durable
pull consumers), :mod:`~vpp.bus.outbox` (durable, ordered sending), :mod:`~vpp.bus.inbox`
(consumer-side idempotency), :mod:`~vpp.bus.telemetry` (telemetry into the store per town),
:mod:`~vpp.bus.server` (a private ``nats-server`` for tests, benchmarks and the dev setup).

Guarantee: a message committed to an outbox reaches its consumer's effect exactly once,
across a ``kill -9`` of the server, the sender or the consumer (at-least-once delivery +
``Nats-Msg-Id`` de-duplication + the consumer's idempotency record).
"""
