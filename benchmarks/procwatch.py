"""Runs one benchmark variant as a subprocess and watches it: wall time, progress, peak RSS.

- Wall time runs from spawn to exit, so whole-process figures include interpreter start-up,
  imports and model loading.
- Progress: the child's stderr is a pseudo-terminal, so the pipeline's own progress line
  (silent unless stderr is a terminal) redraws "scored N/TOTAL images" twice a second; every
  variant prints a "scored N images" line. Each line is timestamped on arrival; steady-state
  throughput is the rate between the first mark at or past 20% of the images and the last mark.
- CPU: user + system seconds of the child and its descendants (``RUSAGE_CHILDREN``).
- Memory: the summed RSS of the child and all its descendants, polled from ``/proc`` every
  0.1 s (Beam may start worker processes); its peak is reported.
"""

from __future__ import annotations

import dataclasses
import os
import pty
import re
import resource
import select
import subprocess
import threading
import time

_PROGRESS = re.compile(rb"scored ([\d,]+)(?:/[\d,?]+)? images")
_PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclasses.dataclass
class Outcome:
    returncode: int
    wall_seconds: float
    peak_rss_mib: float
    cpu_seconds: float  # user + system of the child and its descendants
    marks: list[tuple[int, float]]  # (images scored, seconds since spawn)
    tail: str

    def steady_rate(self, total: int) -> float | None:
        """Images/s between the first mark at >= 20% of ``total`` and the last mark."""
        start = next((m for m in self.marks if m[0] >= 0.2 * total), None)
        end = self.marks[-1] if self.marks else None
        if start is None or end is None or end[1] - start[1] < 1.0:
            return None
        return (end[0] - start[0]) / (end[1] - start[1])


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces; fields after the closing parenthesis are fixed.
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def tree_rss_kib(root: int) -> int:
    """Summed resident set of ``root`` and its descendants, in KiB."""
    tree, total, stack = _children(), 0, [root]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * _PAGE_KB
        except OSError:
            pass
        stack.extend(tree.get(pid, ()))
    return total


def run(
    command: list[str], env: dict | None = None, log_path: str | None = None, cwd=None
) -> Outcome:
    """Runs ``command`` to completion under watch."""
    master, slave = pty.openpty()
    # Children run one at a time, so the change in RUSAGE_CHILDREN is this child's CPU time:
    # on a shared machine, CPU seconds per image are steadier than wall-clock rates.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    log = open(log_path, "wb") if log_path else None  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=cwd,
        close_fds=True,
    )
    os.close(slave)
    peak = [0]
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss_kib(process.pid))
            stop.wait(0.1)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    marks: list[tuple[int, float]] = []
    captured = bytearray()
    while True:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            if not chunk:
                break
            now = time.monotonic() - start
            captured += chunk
            if log:
                log.write(chunk)
            for match in _PROGRESS.finditer(chunk):
                marks.append((int(match.group(1).replace(b",", b"")), now))
        elif process.poll() is not None:
            break
    returncode = process.wait()
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    stop.set()
    poller.join()
    os.close(master)
    if log:
        log.close()
    return Outcome(
        returncode, wall, peak[0] / 1024, cpu, marks, captured[-3000:].decode("utf-8", "replace")
    )
