"""A real render farm on loopback for the farm tests: a redis-server in a temporary folder and
``avatar-studio worker`` processes, each with its own work folder, on one shared data folder."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from studio_support import free_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Redis:
    port: int
    folder: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        # appendonly: queued tasks survive a restart (what docs/farm.md asks of production too)
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if _ping(self.port):
                return
            if self.proc.poll() is not None:
                pytest.fail(f"redis-server exited at start with code {self.proc.returncode}")
            time.sleep(0.05)
        pytest.fail("redis-server did not answer")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)
        self.proc = None


def _ping(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(folder: Path) -> Redis:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (Debian package redis-server; scripts/setup installs it)")
    pytest.importorskip("celery", reason="celery is not installed (pip install -e .; scripts/setup installs it)")
    folder.mkdir(parents=True, exist_ok=True)
    redis = Redis(port=free_port(), folder=folder)
    redis.start()
    return redis


@dataclass
class Worker:
    name: str
    work_dir: Path
    log: Path
    proc: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.proc.pid


@dataclass
class Farm:
    home: Path
    redis: Redis
    env: dict[str, str]
    workers: list[Worker] = field(default_factory=list)

    def start_worker(self, name: str) -> Worker:
        work_dir = self.home.parent / f"work-{name}"
        log = self.home.parent / f"{name}.log"
        env = dict(self.env, STUDIO_WORK_DIR=str(work_dir))
        proc = subprocess.Popen(
            [sys.executable, "-m", "studio.cli", "worker", "--name", f"{name}@%h", "--loglevel", "INFO"],
            env=env, stdout=subprocess.DEVNULL, stderr=open(log, "ab"), cwd=self.home.parent,
        )
        worker = Worker(name, work_dir, log, proc)
        self.workers = [w for w in self.workers if w.name != name] + [worker]
        return worker

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Until every worker logged that it is ready to consume."""
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            while b"ready." not in worker.log.read_bytes():
                if worker.proc.poll() is not None:
                    pytest.fail(f"worker {worker.name} exited: {worker.log.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"worker {worker.name} was not ready: {worker.log.read_text()[-3000:]}")
                time.sleep(0.1)

    def stop(self) -> None:
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.proc.kill()
                worker.proc.wait()


def farm_env(home: Path, redis: Redis, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "STUDIO_WORK_DIR")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        STUDIO_HOME=str(home),
        STUDIO_BROKER_URL=redis.url,
        GRADIO_ANALYTICS_ENABLED="False",
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
    )
    env.update(extra)
    return env
