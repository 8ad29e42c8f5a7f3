"""Experiments: run a pattern on a broker, record a ledger, summarise it."""

from queuelab.experiments.roundtrip import (
    RoundTrip,
    rabbitmq_roundtrip,
    redis_list_roundtrip,
    workload,
)

__all__ = ["RoundTrip", "rabbitmq_roundtrip", "redis_list_roundtrip", "workload"]
