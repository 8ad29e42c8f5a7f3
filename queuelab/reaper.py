"""Stop a private server whose owner died without stopping it.

A private broker runs in its own session, so it survives its owner: a notebook
kernel that was restarted, a script killed with SIGKILL. Next to each server
runs this small watcher: ``python -m queuelab.reaper OWNER_PID PGID FOLDER``.
When the owner is gone it stops the server's process group (SIGTERM, then
SIGKILL) and deletes the server's folder. An owner that stops its server
normally also stops the watcher.
"""

import os
import shutil
import signal
import sys
import time
from pathlib import Path

POLL_S = 0.5
GRACE_S = 15.0


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap(owner: int, pgid: int, folder: Path) -> None:
    while alive(owner) and group_alive(pgid):
        time.sleep(POLL_S)
    if group_alive(pgid):
        os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + GRACE_S
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)
    if not alive(owner):
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C is for the owner
    reap(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
