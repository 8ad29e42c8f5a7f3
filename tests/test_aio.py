"""run_sync works from plain code and from inside a running loop (a notebook)."""

import asyncio

from queuelab.aio import run_sync


async def answer() -> int:
    await asyncio.sleep(0)
    return 42


def test_run_sync_without_a_loop() -> None:
    assert run_sync(answer()) == 42


async def test_run_sync_inside_a_running_loop() -> None:
    assert run_sync(answer()) == 42
