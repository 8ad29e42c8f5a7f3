"""Experiments: run a pattern on a broker, record a ledger, summarise it."""

from queuelab.experiments.away import AwayRun, pubsub_away, stream_away
from queuelab.experiments.priority import (
    OrderRun,
    PriorityRun,
    arrival_order,
    collapse,
    priority_latency,
    repeated_payloads,
)
from queuelab.experiments.redis_kill import (
    KillRun,
    RestartRun,
    kill_workers,
    restart_redis,
    slow_tasks,
)
from queuelab.experiments.roundtrip import (
    RoundTrip,
    rabbitmq_roundtrip,
    redis_list_roundtrip,
    workload,
)

__all__ = [
    "AwayRun",
    "KillRun",
    "OrderRun",
    "PriorityRun",
    "RestartRun",
    "RoundTrip",
    "arrival_order",
    "collapse",
    "kill_workers",
    "priority_latency",
    "pubsub_away",
    "rabbitmq_roundtrip",
    "redis_list_roundtrip",
    "repeated_payloads",
    "restart_redis",
    "slow_tasks",
    "stream_away",
    "workload",
]
