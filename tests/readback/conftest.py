"""Fixtures: the auditlake binary, a simulator process, and a lake exported from it."""

import contextlib
import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

BIN = os.environ.get("AUDITLAKE_BIN", str(Path(__file__).resolve().parents[2] / "target/debug/auditlake"))
TOKEN = "sim-token"
SINCE = "2024-01-01"
UNTIL = "2024-01-09"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, env_extra=None, **kwargs):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENDESK_", "AUDITLAKE_", "AWS_"))}
    env["ZENDESK_OAUTH_TOKEN"] = TOKEN
    env.update(env_extra or {})
    return subprocess.run([BIN, *args], env=env, capture_output=True, text=True, timeout=600, **kwargs)


@contextlib.contextmanager
def serve(*extra):
    """The tests' simulated account (40,000 records over SINCE..UNTIL, seed 7) served by a
    simulator process, with `extra` flags (`--hide-from T`: the same account, its records from T
    not arrived yet); yields its base URL."""
    port = free_port()
    proc = subprocess.Popen(
        [BIN, "simulate", "--bind", f"127.0.0.1:{port}", "--records", "40000", "--from", SINCE,
         "--to", UNTIL, "--extra-fields", "--rate-limit", "10000000", "--seed", "7", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def simulator():
    with serve() as url:
        yield url


@pytest.fixture(scope="session")
def lake(simulator, tmp_path_factory):
    dest = tmp_path_factory.mktemp("lake")
    summary = dest.parent / "summary.json"
    done = run(["export", "--subdomain", "acme", "--dest", str(dest), "--since", SINCE, "--until", UNTIL,
                "--window", "1d", "--base-url", simulator, "--summary-json", str(summary)])
    assert done.returncode == 0, done.stderr
    return dest, json.loads(summary.read_text())


@pytest.fixture(scope="session")
def source(simulator):
    """Ground truth through the API's list operation (not through the lake's code path)."""
    listed = run(["list", "--since", SINCE, "--until", UNTIL, "--subdomain", "acme", "--base-url", simulator])
    assert listed.returncode == 0, listed.stderr
    return [json.loads(line) for line in listed.stdout.splitlines()]
