"""Experiments: run a pattern on a broker, record a ledger, summarise it.

The exports load on first use, so that a worker process importing one
submodule does not pay for pandas, tqdm and the rest.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "AwayRun": "away",
    "pubsub_away": "away",
    "stream_away": "away",
    "DeadLetterRun": "deadletter",
    "process_default_run": "deadletter",
    "retry_run": "deadletter",
    "PriorityRun": "priority",
    "priority_run": "priority",
    "publish_rates": "publishing",
    "FanoutRun": "pubsub",
    "fanout_run": "pubsub",
    "LimitedRun": "ratelimit",
    "rate_limited_run": "ratelimit",
    "KillRun": "redis_kill",
    "RestartRun": "redis_kill",
    "kill_workers": "redis_kill",
    "restart_redis": "redis_kill",
    "slow_tasks": "redis_kill",
    "OrderRun": "redis_priority",
    "PriorityLatencyRun": "redis_priority",
    "arrival_order": "redis_priority",
    "collapse": "redis_priority",
    "priority_latency": "redis_priority",
    "repeated_payloads": "redis_priority",
    "RoundTrip": "roundtrip",
    "rabbitmq_roundtrip": "roundtrip",
    "redis_list_roundtrip": "roundtrip",
    "workload": "roundtrip",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'queuelab.experiments' has no attribute {name!r}")
    return getattr(import_module(f"queuelab.experiments.{_EXPORTS[name]}"), name)
