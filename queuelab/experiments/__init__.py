"""Experiments: run a pattern on a broker, record a ledger, summarise it."""

from queuelab.experiments.deadletter import (
    DeadLetterRun,
    process_default_run,
    retry_run,
)
from queuelab.experiments.priority import PriorityRun, priority_run
from queuelab.experiments.publishing import publish_rates
from queuelab.experiments.pubsub import FanoutRun, fanout_run
from queuelab.experiments.ratelimit import LimitedRun, rate_limited_run
from queuelab.experiments.roundtrip import (
    RoundTrip,
    rabbitmq_roundtrip,
    redis_list_roundtrip,
    workload,
)

__all__ = ["RoundTrip", "rabbitmq_roundtrip", "redis_list_roundtrip", "workload"]
__all__ += [
    "DeadLetterRun",
    "FanoutRun",
    "LimitedRun",
    "PriorityRun",
    "fanout_run",
    "priority_run",
    "process_default_run",
    "publish_rates",
    "rate_limited_run",
    "retry_run",
]
