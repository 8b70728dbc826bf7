"""The embedded server's lifecycle as users meet it: killed clients, missing stores, the demo."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgsearch.cli import main

PYTHON_CLI = [sys.executable, "-m", "pgsearch.cli"]


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGSEARCH_")}
    env.update(PGSEARCH_DATA_DIR=str(data_dir), PGSEARCH_EMBEDDER="hashing:64")
    return env


def _cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PYTHON_CLI, *args], env=_env(data_dir), capture_output=True, text=True, timeout=120
    )


def _handles(pgdata: Path) -> list[int]:
    path = pgdata / ".handle_pids.json"
    return list(json.loads(path.read_text())) if path.exists() else []


@pytest.fixture(scope="module")
def migrated_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("embedded") / "store"
    migrated = _cli("migrate", data_dir=directory)
    assert migrated.returncode == 0, migrated.stderr
    return directory


@pytest.fixture
def data_dir(migrated_store: Path) -> Iterator[Path]:
    """A migrated embedded store; its server is stopped after each test whatever it left."""
    yield migrated_store
    postmaster = migrated_store / "pgdata" / "postmaster.pid"
    if postmaster.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(postmaster.read_text().split()[0]), signal.SIGINT)  # fast shutdown
        for _ in range(100):
            if not postmaster.exists():
                break
            time.sleep(0.1)


def _blocked_ingest(data_dir: Path) -> tuple[subprocess.Popen[str], int]:
    """A ``pgsearch ingest`` attached to the server, waiting for input from a FIFO."""
    fifo = data_dir / f"waiting-{time.monotonic_ns()}.jsonl"
    os.mkfifo(fifo)
    child = subprocess.Popen(
        [*PYTHON_CLI, "ingest", str(fifo), "--no-progress"],
        env=_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            # Succeeds once the child opens the FIFO: the store is open, the server attached.
            writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            assert exc.errno == errno.ENXIO, exc
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "pgsearch ingest never opened its input"
            time.sleep(0.05)
        else:
            return child, writer


def test_a_killed_client_does_not_keep_the_server_running(data_dir: Path) -> None:
    pgdata = data_dir / "pgdata"
    child, writer = _blocked_ingest(data_dir)
    assert child.pid in _handles(pgdata)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    child.communicate()
    os.close(writer)
    assert child.pid in _handles(pgdata)  # it had no chance to let go
    assert (pgdata / "postmaster.pid").exists()

    status = _cli("status", "--json", data_dir=data_dir)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["migrated"] is True
    # The next command reaped the dead handle, so it was the last client and stopped the server.
    assert child.pid not in _handles(pgdata)
    assert not (pgdata / "postmaster.pid").exists()


def test_a_terminated_client_lets_go_of_the_server(data_dir: Path) -> None:
    pgdata = data_dir / "pgdata"
    child, writer = _blocked_ingest(data_dir)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    os.close(writer)
    assert child.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert child.pid not in _handles(pgdata)
    assert not (pgdata / "postmaster.pid").exists()


def test_searching_a_missing_store_creates_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "nothing-here"
    data_dir.mkdir()
    result = _cli("search", "hello", data_dir=data_dir)
    assert result.returncode == 1, result.stdout
    assert f"no pgsearch store in {data_dir.resolve()}: run `pgsearch migrate`" in result.stderr
    assert list(data_dir.iterdir()) == []


@pytest.mark.parametrize(
    "command", [["status", "--json"], ["ingest", "missing.txt"], ["downgrade", "base"]]
)
def test_commands_that_need_a_store_create_none(
    tmp_path: Path,
    command: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("PGSEARCH_DATABASE_URL", raising=False)
    data_dir = tmp_path / "not-even-a-directory"
    assert main(["--data-dir", str(data_dir), "--embedder", "hashing:8", *command]) == 1
    assert "run `pgsearch migrate`" in capsys.readouterr().err
    assert not data_dir.exists()


def test_demo_says_where_its_store_is_and_how_to_search_it(data_dir: Path) -> None:
    demo = _cli("demo", "-k", "1", data_dir=data_dir)
    assert demo.returncode == 0, demo.stderr
    assert f"embedded PostgreSQL in {(data_dir / 'pgdata').resolve()}" in demo.stdout
    hints = [line for line in demo.stdout.splitlines() if " search " in line]
    command = shlex.split(hints[-1].split(":", 1)[1])
    assert command[0] == "pgsearch" and command[1] == "search"
    # The same environment, a new process: the demo's store, migrated and filled.
    searched = _cli(*command[1:], "--json", data_dir=data_dir)
    assert searched.returncode == 0, searched.stderr
    assert len(json.loads(searched.stdout)) > 0
