"""Fixtures that run the real `batchgate` and `mock-vllm` binaries.

Each gateway gets its own mock vLLM upstream, config file and data directory
in a temp dir; both processes bind port 0 and the fixture reads the port from
the "listening on http://HOST:PORT" line they print on stdout. Processes are
killed when the fixture's scope ends; their logs stay in the temp dir and are
shown when a process fails to start.

Binaries: $BATCHGATE_BIN / $MOCK_VLLM_BIN, else <workspace>/target/debug/*
(tests/python/run.sh builds them and sets both).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

# litellm downloads a model price map at import time unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import openai  # noqa: E402
import pytest  # noqa: E402

WORKSPACE = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
SEED_FILE = DATA / "batch_requests.jsonl"

MASTER_KEY = "sk-1234"
PUBLIC_MODEL = "my-vllm-model"
SERVED_MODEL = "meta-llama/Llama-2-7b-chat-hf"
START_TIMEOUT_S = 30.0

_LISTENING = re.compile(r"listening on (http://[0-9A-Za-z.\[\]:-]+)")


def _binary(env_name: str, name: str) -> Path:
    path = Path(os.environ.get(env_name) or WORKSPACE / "target" / "debug" / name)
    if not path.is_file():
        pytest.exit(
            f"{path} not found: build it with `cargo build -p batchgate -p batchgate-mock-vllm` "
            f"or run tests/python/run.sh (or set ${env_name})",
            returncode=2,
        )
    return path


def _die_with_parent() -> None:
    """Linux: SIGTERM the child if pytest dies without running teardown."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Process:
    """A child process whose stdout is drained into a log file by a thread."""

    def __init__(self, name: str, argv: list[str], log_dir: Path):
        self.name = name
        self.argv = argv
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "w", buffering=1)
        self._url: str | None = None
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self._reader = threading.Thread(target=self._drain, name=f"{name}-stdout", daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._log.write(line)
            if self._url is None:
                m = _LISTENING.search(line)
                if m:
                    self._url = m.group(1)
                    self._ready.set()
        self._ready.set()

    def wait_listening(self, timeout: float = START_TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ready.wait(0.05):
                break
        if self._url is None:
            rc = self.proc.poll()
            self.stop()
            raise RuntimeError(
                f"{self.name} did not print 'listening on' within {timeout}s "
                f"(exit code {rc}); argv={self.argv}\n--- log ---\n{self.log_tail()}"
            )
        return self._url

    def log_tail(self, n: int = 60) -> str:
        try:
            self._log.flush()
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "<no log>"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._reader.join(timeout=5)
        self._log.close()


@dataclass
class Gateway:
    url: str  # http://127.0.0.1:PORT (no /v1)
    mock_url: str
    data_dir: Path
    config_path: Path
    gateway: Process
    mock: Process

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    def client(self, **kwargs) -> openai.OpenAI:
        kwargs.setdefault("api_key", MASTER_KEY)
        kwargs.setdefault("base_url", self.v1)
        # No SDK retries: a 5xx or 409 must surface as such, not be retried away.
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 30.0)
        return openai.OpenAI(**kwargs)

    def stop(self) -> None:
        self.gateway.stop()
        self.mock.stop()


def start_gateway(
    workdir: Path,
    *,
    latency_ms: int = 0,
    max_parallel_requests: int | None = None,
    models: tuple[str, ...] = (PUBLIC_MODEL,),
    mock_args: tuple[str, ...] = (),
) -> Gateway:
    """Starts mock-vllm and batchgate in front of it.

    Every public name in `models` is a deployment of the same mock upstream.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    mock = Process(
        "mock-vllm",
        [
            str(_binary("MOCK_VLLM_BIN", "mock-vllm")),
            "--host", "127.0.0.1",
            "--port", "0",
            "--model", SERVED_MODEL,
            "--latency-ms", str(latency_ms),
            *mock_args,
        ],
        workdir,
    )
    mock_url = mock.wait_listening()

    params: dict[str, object] = {"model": f"hosted_vllm/{SERVED_MODEL}", "api_base": mock_url}
    if max_parallel_requests is not None:
        params["max_parallel_requests"] = max_parallel_requests
    config = {
        "model_list": [{"model_name": name, "litellm_params": params} for name in models],
        "general_settings": {"master_key": MASTER_KEY},
    }
    config_path = workdir / "config.yaml"
    # JSON is YAML: no YAML library needed.
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    data_dir = workdir / "data"

    gw = Process(
        "batchgate",
        [
            str(_binary("BATCHGATE_BIN", "batchgate")),
            "--config", str(config_path),
            "--host", "127.0.0.1",
            "--port", "0",
            "--data-dir", str(data_dir),
        ],
        workdir,
    )
    try:
        url = gw.wait_listening()
    except Exception:
        mock.stop()
        raise
    return Gateway(url=url, mock_url=mock_url, data_dir=data_dir, config_path=config_path, gateway=gw, mock=mock)


@pytest.fixture(scope="session")
def gateway_factory(tmp_path_factory) -> Iterator[Callable[..., Gateway]]:
    """Starts extra gateways (e.g. with a slow upstream); all stopped at session end."""
    started: list[Gateway] = []

    def make(name: str, **kwargs) -> Gateway:
        gw = start_gateway(tmp_path_factory.mktemp(name), **kwargs)
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()


@pytest.fixture(scope="session")
def gateway(gateway_factory) -> Gateway:
    """The shared gateway: one model, a mock upstream with no added latency."""
    return gateway_factory("gw")


@pytest.fixture(scope="session")
def gw(gateway: Gateway) -> str:
    """Base URL of the shared gateway, without /v1."""
    return gateway.url


@pytest.fixture
def client(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER_KEY, max_retries=0, timeout=30.0)


@pytest.fixture(scope="session")
def seed_file() -> Path:
    return SEED_FILE


def batch_line(custom_id: str, content: str = "Hello!", model: str = PUBLIC_MODEL, **body) -> str:
    return json.dumps(
        {
            "custom_id": custom_id,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": model, "messages": [{"role": "user", "content": content}], **body},
        }
    )


def wait_for_batch(
    client: openai.OpenAI,
    batch_id: str,
    until: Callable[[object], bool],
    *,
    timeout: float = 60.0,
    interval: float = 0.1,
):
    """Polls `client.batches.retrieve` until `until(batch)` holds; returns the batch."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        batch = client.batches.retrieve(batch_id)
        if not seen or seen[-1] != batch.status:
            seen.append(batch.status)
        if until(batch):
            return batch
        if time.monotonic() > deadline:
            raise AssertionError(
                f"batch {batch_id} did not reach the expected state in {timeout}s; "
                f"statuses seen: {seen}; last: {batch.model_dump_json()}"
            )
        time.sleep(interval)
