"""Stopping an Airflow component stops what it started: a scheduler's LocalExecutor workers and log
server outlived it once (found after `bench.task_gap`), so components lead their own process group."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from pipelines.processes import stop_groups

CHILD = "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); " \
        "print(flush=True); time.sleep(600)"  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie waiting for init counts as gone
        return stat.read().split()[2] != "Z"


def test_stopping_a_component_stops_the_processes_it_started():
    leader = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)  # fmt: skip
    leader.stdout.readline()  # the child has been started
    members = [int(p) for p in os.listdir("/proc") if p.isdigit() and _in_group(int(p), leader.pid)]
    assert len(members) == 2  # the leader and its child
    stop_groups([leader], timeout_s=10)
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in members) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in members)


def _in_group(pid: int, pgid: int) -> bool:
    try:
        return os.getpgid(pid) == pgid
    except ProcessLookupError:
        return False
