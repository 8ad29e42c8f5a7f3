"""Simulated messages per second of wall time (target: 50,000 or more).

queuelab's model is measured next to the floor for the same traffic: a bare
SimPy producer, simpy.Store and consumers with no ledger, no crashes and no
guarantee logic. Two regimes: consumers idle between arrivals (every message
wakes a waiting consumer) and a backlog (consumers never wait).
"""

import time
from collections.abc import Sequence

import pandas as pd
import simpy

from queuelab.experiments import arrivals
from queuelab.guarantees import Guarantee
from queuelab.sim import SimSpec, simulate

TARGET_PER_S = 50_000


def bare_simpy(times: Sequence[float], consumers: int, task_s: float) -> None:
    env = simpy.Environment()
    store = simpy.Store(env)
    left = [len(times)]
    done = env.event()

    def producer():  # type: ignore[no-untyped-def]
        for at in times:
            if at > env.now:
                yield env.timeout(at - env.now)
            store.put(at)

    def consumer():  # type: ignore[no-untyped-def]
        while True:
            yield store.get()
            yield env.timeout(task_s)
            left[0] -= 1
            if not left[0]:
                done.succeed()

    env.process(producer())
    for _ in range(consumers):
        env.process(consumer())
    env.run(until=done)


def main(quick: bool = False) -> pd.DataFrame:
    duration_s = 2 if quick else 20
    rows = []
    for regime, rate, task_s in (("idle", 5_000, 0.0002), ("backlog", 5_000, 0.001)):
        times = arrivals.poisson(rate, duration_s, seed=1)
        spec = SimSpec(
            times,
            Guarantee.AT_LEAST_ONCE,
            consumers=4,
            task_s=task_s,
            crash_p=0.01,
            crash_after_effect=0.5,
            seed=2,
        )
        for name, run in (
            ("queuelab simulate (with ledger)", lambda s=spec: simulate(s)),
            ("bare SimPy store", lambda t=times, d=task_s: bare_simpy(t, 4, d)),
        ):
            started = time.perf_counter()
            run()
            elapsed = time.perf_counter() - started
            rows.append(
                {
                    "regime": regime,
                    "what": name,
                    "messages": len(times),
                    "wall_s": round(elapsed, 3),
                    "messages_per_s": round(len(times) / elapsed),
                    "target_per_s": TARGET_PER_S,
                }
            )
    return pd.DataFrame(rows)
