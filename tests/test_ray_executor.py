"""The ``ray`` executor on a local Ray instance (2 CPUs, 127.0.0.1 only, no dashboard, no usage statistics, its
session folder and home folder temporary): the smoke suite gives the local executor's metrics, and a run whose
worker is killed mid-run is retried and resumes from its checkpoint to the uninterrupted run's metrics.

Skipped when Ray is not importable (``pip install -e ".[ray]"``; .ci/run installs it). One Ray instance serves the
module (about 10 s to start)."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e \".[ray]\"): the ray executor is "
                                      "optional and these tests need it")

from effbench.matrix import execute, make_executor, plan_runs  # noqa: E402
from effbench.matrix.ray_executor import RayExecutor, init_local  # noqa: E402
from effbench.progress import SuiteProgress  # noqa: E402
from effbench.results import checkpoint_path  # noqa: E402
from effbench.suite_run import plan_suite, run_suite  # noqa: E402
from effbench.train import TrainConfig  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def ray_instance(tmp_path_factory):
    """A local Ray instance for the module; Ray's token, caches and logs go to temporary folders, removed after."""
    home = tmp_path_factory.mktemp("home")
    # Short: Ray's socket paths live under it and a Unix socket path has a length limit (107 bytes).
    session = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    saved = {name: os.environ.get(name) for name in ("HOME", "RAY_USAGE_STATS_ENABLED")}
    os.environ.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0")  # Ray's processes inherit both
    try:
        init_local(2, session, object_store_memory=100 * 2**20)
        yield home
    finally:
        ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(session, ignore_errors=True)


def _listening_addresses(pids) -> set[str]:
    """The local addresses of the TCP sockets that ``pids`` listen on (from /proc/net/tcp and tcp6)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                    found.add(cols[1].split(":")[0])
    return found


#: 127.0.0.1 as /proc/net/tcp writes it, and as tcp6 writes ::ffff:127.0.0.1 and ::1.
LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F", "00000000000000000000000001000000"}


@pytest.mark.skipif(not os.path.isdir("/proc/net"), reason="reads listening sockets from /proc (Linux)")
def test_local_instance_listens_on_loopback_only(ray_instance):
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    assert ray.cluster_resources()["CPU"] == 2
    addresses = _listening_addresses(_descendants())
    assert addresses and addresses <= LOOPBACK, addresses


def test_smoke_suite_on_ray_gives_the_local_executors_records(ray_instance, tmp_path):
    common = dict(latency=False, progress=False, log=lambda _: None)
    local = run_suite("smoke", tmp_path / "local", jobs=1, **common)
    on_ray = run_suite("smoke", tmp_path / "ray", executor="ray", **common)
    assert local.exit_code == 0 and on_ray.exit_code == 0, local.failed + on_ray.failed
    import json

    for cfg in plan_suite("smoke").configs:
        a = json.loads((tmp_path / "local" / "runs" / f"{cfg.hash()}.json").read_text())
        b = json.loads((tmp_path / "ray" / "runs" / f"{cfg.hash()}.json").read_text())
        assert b["status"] == "ok", b["error"]
        assert b["metrics"] == a["metrics"] and b["curve"] == a["curve"]
    assert (tmp_path / "ray" / "report.md").is_file()


def _descendants() -> dict[int, str]:
    """This process's descendants (Ray's raylet and its workers) and their command lines, from /proc."""
    parent, title = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    title[int(entry)] = f.read().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, IndexError, ValueError):
                continue
    mine, grew = {os.getpid()}, True
    while grew:
        more = {pid for pid, ppid in parent.items() if ppid in mine} - mine
        mine |= more
        grew = bool(more)
    return {pid: title.get(pid, "") for pid in mine - {os.getpid()}}


def _kill_after_first_checkpoint(path, title: str, killed: list[int], stop: threading.Event) -> None:
    """Wait for the run's first checkpoint, then SIGKILL the Ray worker process training it (Ray titles a worker
    process ``ray::<task name>`` while it runs the task)."""
    while not stop.is_set() and not path.exists():
        time.sleep(0.01)
    for pid, cmdline in _descendants().items():
        if cmdline.startswith(title):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the Ray worker's process in /proc (Linux)")
def test_killed_worker_is_retried_and_resumes_from_its_checkpoint(ray_instance, tmp_path):
    cfg = TrainConfig(model="tiny_hand", aux=True, seed=0, steps=80, batch_size=8, warmup_steps=2, train_size=96,
                      val_size=0, test_size=32, eval_batch_size=32, checkpoint_every=10).validate()
    runs = plan_runs([cfg], lambda _: 1.0)
    bar = SuiteProgress("kill", 0, 1, enabled=False)
    uninterrupted = execute(runs, tmp_path / "local", make_executor(jobs=1), bar).records[cfg.hash()]

    shared = tmp_path / "shared"  # the checkpoint folder every worker reaches
    killed: list[int] = []
    stop = threading.Event()
    title = f"ray::effbench {runs[0].tag}"
    killer = threading.Thread(target=_kill_after_first_checkpoint,
                              args=(checkpoint_path(shared, cfg.hash()), title, killed, stop))
    killer.start()
    try:
        events = execute(runs, tmp_path / "store", RayExecutor(checkpoint_dir=shared), bar)
    finally:
        stop.set()
        killer.join()
    assert len(killed) == 1, "no Ray worker was training the run when its first checkpoint appeared"
    record = events.records[cfg.hash()]
    assert record["status"] == "ok", record["error"]
    first, resumed = events.attempts[cfg.hash()]
    assert first == 1  # the first attempt started from scratch
    assert resumed > 10 and (resumed - 1) % cfg.checkpoint_every == 0  # the retry started after a checkpoint
    assert record["metrics"] == uninterrupted["metrics"]
    assert (tmp_path / "store" / f"{cfg.hash()}.json").is_file()


def test_run_whose_worker_keeps_dying_is_recorded_failed_and_the_rest_goes_on(ray_instance, tmp_path, monkeypatch):
    """With no retries left, a killed worker's run is a failed record (Ray's reason in it); the other run is ok."""
    from effbench.matrix import ray_executor

    monkeypatch.setattr(ray_executor, "MAX_RETRIES", 0)
    small = dict(batch_size=8, warmup_steps=2, train_size=96, val_size=0, test_size=32, eval_batch_size=32)
    doomed = TrainConfig(model="tiny_hand", aux=True, seed=1, steps=80, checkpoint_every=10, **small).validate()
    fine = TrainConfig(model="tiny_hand", aux=False, seed=1, steps=5, **small).validate()
    runs = plan_runs([doomed, fine], lambda _: 1.0)
    killed: list[int] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_after_first_checkpoint,
                              args=(checkpoint_path(tmp_path / "store", doomed.hash()),
                                    f"ray::effbench {runs[0].tag}", killed, stop))
    killer.start()
    bar = SuiteProgress("die", 0, 2, enabled=False)
    try:
        events = execute(runs, tmp_path / "store", RayExecutor(), bar)  # a local instance: the store holds checkpoints
    finally:
        stop.set()
        killer.join()
    assert len(killed) == 1
    lost, ok = events.records[doomed.hash()], events.records[fine.hash()]
    assert lost["status"] == "failed" and lost["error"].startswith("failed on Ray after 0 retries: ")
    assert ok["status"] == "ok" and bar.trained == 2 and len(bar.failed) == 1


def test_past_its_time_limit_the_driver_starts_no_task(ray_instance, tmp_path):
    """Runs not started when the time limit passes are paused by the driver, not submitted: nothing is trained or
    stored, and the next run of the plan trains them (a run paused mid-way is tests/test_train.py's)."""
    small = dict(batch_size=8, warmup_steps=2, train_size=96, val_size=0, test_size=32, eval_batch_size=32, steps=5)
    configs = [TrainConfig(model="tiny_hand", aux=aux, seed=2, **small).validate() for aux in (False, True)]
    runs = plan_runs(configs, lambda _: 1.0)
    bar = SuiteProgress("late", 0, 2, enabled=False)
    events = execute(runs, tmp_path / "store", RayExecutor(), bar, deadline=time.time() - 1)
    assert set(events.paused) == {cfg.hash() for cfg in configs} and not events.records
    assert all(p["status"] == "paused" and p["step"] is None for p in events.paused.values())
    assert not events.attempts and not list((tmp_path / "store").glob("*.json"))
