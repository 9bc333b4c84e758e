"""The Batch API through the official `openai` Python SDK."""

from __future__ import annotations

import json
import time

import openai
import pytest

from conftest import PUBLIC_MODEL, batch_line, wait_for_batch

MODEL_HEADER = {"x-litellm-model": PUBLIC_MODEL}
TERMINAL = {"completed", "failed", "cancelled", "expired"}

BATCH_KEYS = {
    "id": str,
    "object": str,
    "endpoint": str,
    "model": (str, type(None)),
    "errors": (dict, type(None)),
    "input_file_id": str,
    "completion_window": str,
    "status": str,
    "output_file_id": (str, type(None)),
    "error_file_id": (str, type(None)),
    "created_at": int,
    "in_progress_at": (int, type(None)),
    "expires_at": (int, type(None)),
    "finalizing_at": (int, type(None)),
    "completed_at": (int, type(None)),
    "failed_at": (int, type(None)),
    "expired_at": (int, type(None)),
    "cancelling_at": (int, type(None)),
    "cancelled_at": (int, type(None)),
    "request_counts": dict,
    "metadata": (dict, type(None)),
    "usage": (dict, type(None)),
}


def upload_bytes(client: openai.OpenAI, name: str, content: bytes) -> str:
    return client.files.create(file=(name, content), purpose="batch", extra_headers=MODEL_HEADER).id


def create(client: openai.OpenAI, file_id: str, **kwargs):
    return client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h", **kwargs
    )


def raw_batch(client: openai.OpenAI, batch_id: str) -> dict:
    return client.batches.with_raw_response.retrieve(batch_id).http_response.json()


def assert_batch_shape(raw: dict) -> None:
    missing = set(BATCH_KEYS) - set(raw)
    assert not missing, f"batch object lacks keys {sorted(missing)}: {raw}"
    for key, typ in BATCH_KEYS.items():
        # bool is an int subclass: a boolean is never a timestamp.
        assert isinstance(raw[key], typ) and not isinstance(raw[key], bool), (key, raw[key])
    assert raw["object"] == "batch"
    assert raw["id"].startswith("batch_") and len(raw["id"]) <= 64, raw["id"]
    counts = raw["request_counts"]
    assert set(counts) == {"total", "completed", "failed"}
    assert all(isinstance(v, int) and v >= 0 for v in counts.values())
    if raw["usage"] is not None:
        u = raw["usage"]
        assert set(u) >= {"input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details", "total_tokens"}
        assert isinstance(u["input_tokens_details"]["cached_tokens"], int)
        assert isinstance(u["output_tokens_details"]["reasoning_tokens"], int)
        assert u["total_tokens"] == u["input_tokens"] + u["output_tokens"]
    if raw["errors"] is not None:
        assert raw["errors"]["object"] == "list"
        assert isinstance(raw["errors"]["data"], list)


def parse_jsonl(content: bytes) -> list[dict]:
    return [json.loads(line) for line in content.decode().splitlines() if line.strip()]


def assert_output_line(line: dict) -> None:
    assert set(line) >= {"id", "custom_id", "response", "error"}, line
    assert line["id"].startswith("batch_req_"), line["id"]
    assert line["error"] is None
    resp = line["response"]
    assert resp["status_code"] == 200
    assert isinstance(resp["request_id"], str) and resp["request_id"]
    body = resp["body"]
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert body["usage"]["completion_tokens"] == 16


@pytest.fixture(scope="module")
def seed_batch(gateway, seed_file):
    """The seed's 2-line file run to completion once; shared by the tests below."""
    client = gateway.client()
    with open(seed_file, "rb") as fh:
        f = client.files.create(file=fh, purpose="batch", extra_headers=MODEL_HEADER)
    t0 = time.time()
    batch = create(client, f.id, metadata={"team": "a"})
    created_raw = raw_batch(client, batch.id)
    done = wait_for_batch(client, batch.id, lambda b: b.status in TERMINAL, timeout=60)
    return {"file": f, "created": batch, "created_raw": created_raw, "done": done, "t0": t0}


def test_create_returns_validating_batch(seed_batch):
    b = seed_batch["created"]
    f = seed_batch["file"]
    assert b.object == "batch"
    assert b.id.startswith("batch_") and len(b.id) <= 64
    assert b.input_file_id == f.id
    assert b.endpoint == "/v1/chat/completions"
    assert b.completion_window == "24h"
    assert b.metadata == {"team": "a"}
    assert b.model == PUBLIC_MODEL
    # Created batches start validating with zero counts (the background worker
    # may already have moved on by the time a second request is made).
    assert b.status == "validating"
    assert (b.request_counts.completed, b.request_counts.failed) == (0, 0)
    assert b.output_file_id is None and b.error_file_id is None
    assert b.completed_at is None
    assert abs(b.created_at - seed_batch["t0"]) < 60
    assert_batch_shape(seed_batch["created_raw"])


def test_seed_batch_completes(gateway, seed_batch):
    client = gateway.client()
    b = seed_batch["done"]
    assert b.status == "completed", b.model_dump_json()
    raw = raw_batch(client, b.id)
    assert_batch_shape(raw)

    assert raw["request_counts"] == {"total": 2, "completed": 2, "failed": 0}
    usage = raw["usage"]
    # mock-vllm: prompt tokens = words ("Hello!" 1 + "How are you?" 3), 16 completion tokens each.
    assert usage["input_tokens"] == 4
    assert usage["output_tokens"] == 32
    assert usage["total_tokens"] == 36
    assert raw["metadata"] == {"team": "a"}
    assert raw["errors"] is None
    assert raw["model"] == PUBLIC_MODEL
    assert raw["input_file_id"] == seed_batch["file"].id

    created, started, finalizing, completed = (
        raw["created_at"],
        raw["in_progress_at"],
        raw["finalizing_at"],
        raw["completed_at"],
    )
    assert None not in (started, finalizing, completed), raw
    assert created <= started <= finalizing <= completed <= time.time() + 1
    assert raw["expires_at"] == created + 24 * 3600
    for key in ("failed_at", "expired_at", "cancelling_at", "cancelled_at"):
        assert raw[key] is None, (key, raw[key])

    # The SDK's typed view agrees with the wire.
    assert b.request_counts.total == 2 and b.request_counts.completed == 2
    assert b.usage is not None and b.usage.input_tokens == 4 and b.usage.output_tokens == 32

    # Output file: one line per request, each custom_id exactly once.
    assert raw["output_file_id"], raw
    content = client.files.content(raw["output_file_id"]).read()
    lines = parse_jsonl(content)
    assert sorted(line["custom_id"] for line in lines) == ["request-1", "request-2"]
    for line in lines:
        assert_output_line(line)
    by_id = {line["custom_id"]: line for line in lines}
    assert by_id["request-1"]["response"]["body"]["usage"]["prompt_tokens"] == 1
    assert by_id["request-2"]["response"]["body"]["usage"]["prompt_tokens"] == 3
    # The upstream is asked for its served model name, not the public one.
    assert by_id["request-1"]["response"]["body"]["model"] == "meta-llama/Llama-2-7b-chat-hf"

    out = client.files.retrieve(raw["output_file_id"])
    assert out.purpose == "batch_output"
    assert out.bytes == len(content)
    assert out.status == "processed"
    assert out.id.startswith("file-") and len(out.id) <= 64

    # No failures: either no error file, or an empty one.
    if raw["error_file_id"] is not None:
        assert client.files.content(raw["error_file_id"]).read().strip() == b""


def test_batches_list_pagination_shows_the_batch(gateway, seed_batch, seed_file):
    client = gateway.client()
    # A second batch, so that there are at least two pages of one.
    other = create(client, upload_bytes(client, "second.jsonl", seed_file.read_bytes()))

    first = client.batches.with_raw_response.list(limit=1).http_response.json()
    assert first["object"] == "list"
    assert len(first["data"]) == 1
    assert first["has_more"] is True
    assert first["first_id"] == first["last_id"] == first["data"][0]["id"]
    # Newest first.
    assert first["data"][0]["id"] == other.id

    auto = [b.id for b in client.batches.list(limit=1)]
    assert len(auto) == len(set(auto)), auto
    assert seed_batch["done"].id in auto and other.id in auto
    assert auto.index(other.id) < auto.index(seed_batch["done"].id)

    manual, after = [], openai.NOT_GIVEN
    for _ in range(1000):
        page = client.batches.list(limit=1, after=after)
        if not page.data:
            break
        assert len(page.data) == 1
        manual.append(page.data[0].id)
        after = page.data[0].id
    assert manual == auto
    assert client.batches.list(limit=1, after=manual[-1]).data == []


def test_cancel_completed_batch_is_conflict(gateway, seed_batch):
    client = gateway.client()
    with pytest.raises(openai.ConflictError) as e:
        client.batches.cancel(seed_batch["done"].id)
    assert e.value.status_code == 409
    assert client.batches.retrieve(seed_batch["done"].id).status == "completed"


def test_retrieve_unknown_batch_is_not_found(gateway):
    client = gateway.client()
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_doesnotexist")
    with pytest.raises(openai.NotFoundError):
        client.batches.cancel("batch_doesnotexist")


def test_invalid_input_file_id_is_bad_request(gateway):
    client = gateway.client()
    with pytest.raises(openai.BadRequestError) as e:
        create(client, "file-doesnotexist")
    assert e.value.body["param"] == "input_file_id"


def test_metadata_limits(gateway, seed_file):
    client = gateway.client()
    fid = upload_bytes(client, "meta.jsonl", seed_file.read_bytes())
    with pytest.raises(openai.BadRequestError) as e:
        create(client, fid, metadata={f"k{i}": "v" for i in range(17)})
    assert e.value.body["param"] is None or "metadata" in e.value.body["param"]
    with pytest.raises(openai.BadRequestError):
        create(client, fid, metadata={"k" * 65: "v"})
    with pytest.raises(openai.BadRequestError):
        create(client, fid, metadata={"k": "v" * 513})
    # 16 keys at the limits are fine.
    ok = {f"k{i:02d}" + "x" * 61: "v" * 512 for i in range(16)}
    assert all(len(k) == 64 for k in ok)
    b = create(client, fid, metadata=ok)
    assert b.metadata == ok


def test_bad_input_lines_fail_the_batch(gateway):
    client = gateway.client()
    content = "\n".join(
        [
            batch_line("dup"),
            '{"custom_id": "broken", "method": "POST",',  # line 2: not JSON
            batch_line("dup"),  # line 3: duplicate custom_id
            batch_line("fine"),
        ]
    ) + "\n"
    fid = upload_bytes(client, "bad.jsonl", content.encode())
    b = create(client, fid)
    done = wait_for_batch(client, b.id, lambda x: x.status in TERMINAL, timeout=30)
    assert done.status == "failed", done.model_dump_json()
    raw = raw_batch(client, b.id)
    assert_batch_shape(raw)
    assert raw["failed_at"] is not None and raw["completed_at"] is None
    assert raw["output_file_id"] is None
    errors = raw["errors"]["data"]
    assert sorted(e["line"] for e in errors) == [2, 3], errors
    for e in errors:
        assert isinstance(e["code"], str) and e["code"]
        assert isinstance(e["message"], str) and e["message"]
    codes = {e["line"]: e["code"] for e in errors}
    assert codes == {2: "invalid_json_line", 3: "duplicate_custom_id"}


@pytest.fixture(scope="module")
def slow_gateway(gateway_factory):
    """An upstream that takes 300 ms per request, at most 2 in flight."""
    return gateway_factory("slow", latency_ms=300, max_parallel_requests=2)


def test_cancel_in_progress_batch_keeps_partial_results(slow_gateway):
    client = slow_gateway.client()
    n = 100
    ids = [f"req-{i:03d}" for i in range(n)]
    content = ("\n".join(batch_line(cid, f"word {i}") for i, cid in enumerate(ids)) + "\n").encode()
    fid = upload_bytes(client, "hundred.jsonl", content)
    b = create(client, fid)

    running = wait_for_batch(
        client,
        b.id,
        lambda x: x.status in TERMINAL or (x.status == "in_progress" and x.request_counts.completed >= 2),
        timeout=30,
        interval=0.05,
    )
    assert running.status == "in_progress", running.model_dump_json()
    assert running.request_counts.total == n

    cancelling = client.batches.cancel(b.id)
    assert cancelling.id == b.id
    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at is not None

    done = wait_for_batch(client, b.id, lambda x: x.status in TERMINAL, timeout=45)
    assert done.status == "cancelled", done.model_dump_json()
    raw = raw_batch(client, b.id)
    assert_batch_shape(raw)
    assert raw["cancelled_at"] is not None and raw["cancelled_at"] >= raw["cancelling_at"]
    assert raw["completed_at"] is None

    completed = raw["request_counts"]["completed"]
    assert 0 < completed < n, raw["request_counts"]
    assert raw["output_file_id"], raw
    lines = parse_jsonl(client.files.content(raw["output_file_id"]).read())
    got = [line["custom_id"] for line in lines]
    assert len(got) == len(set(got)), "a custom_id appears twice in the output"
    assert set(got) <= set(ids)
    assert len(got) == completed
    for line in lines:
        assert_output_line(line)
    # Billing covers what ran: 2 words + 16 tokens per completed request.
    assert raw["usage"]["input_tokens"] == 2 * completed
    assert raw["usage"]["output_tokens"] == 16 * completed

    # An already cancelled batch cannot be cancelled again.
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(b.id)


def test_upstream_errors_go_to_error_file(gateway):
    """A request vLLM rejects (400) lands in the error file; the rest complete."""
    client = gateway.client()
    lines = [
        batch_line("ok"),
        json.dumps(
            {
                "custom_id": "rejected",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": PUBLIC_MODEL, "messages": "not a list"},
            }
        ),
        batch_line("short", "one two three", max_tokens=4),
    ]
    fid = upload_bytes(client, "mixed.jsonl", ("\n".join(lines) + "\n").encode())
    b = create(client, fid)
    done = wait_for_batch(client, b.id, lambda x: x.status in TERMINAL, timeout=30)
    assert done.status == "completed", done.model_dump_json()
    raw = raw_batch(client, b.id)
    assert_batch_shape(raw)
    assert raw["request_counts"] == {"total": 3, "completed": 2, "failed": 1}
    # Only successes are billed: 1 + 3 prompt words, 16 + 4 completion tokens.
    assert (raw["usage"]["input_tokens"], raw["usage"]["output_tokens"]) == (4, 20)

    out = parse_jsonl(client.files.content(raw["output_file_id"]).read())
    assert sorted(line["custom_id"] for line in out) == ["ok", "short"]
    assert_output_line(next(line for line in out if line["custom_id"] == "ok"))
    short = next(line for line in out if line["custom_id"] == "short")
    assert short["response"]["body"]["usage"]["completion_tokens"] == 4

    assert raw["error_file_id"], raw
    err_file = client.files.retrieve(raw["error_file_id"])
    assert err_file.status == "processed"
    errs = parse_jsonl(client.files.content(raw["error_file_id"]).read())
    assert [line["custom_id"] for line in errs] == ["rejected"]
    e = errs[0]
    assert e["id"].startswith("batch_req_")
    assert e["response"]["status_code"] == 400
    error = e["response"]["body"]["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    # vLLM sends an integer code; the error file carries the OpenAI shape.
    assert error["code"] is None or isinstance(error["code"], str), error


def test_create_rejects_bad_parameters(gateway, seed_file):
    client = gateway.client()
    fid = upload_bytes(client, "params.jsonl", seed_file.read_bytes())
    with pytest.raises(openai.BadRequestError) as e:
        client.batches.create(input_file_id=fid, endpoint="/v1/nope", completion_window="24h")
    assert e.value.body["param"] == "endpoint"
    with pytest.raises(openai.BadRequestError) as e:
        client.batches.create(input_file_id=fid, endpoint="/v1/chat/completions", completion_window="48h")
    assert e.value.body["param"] == "completion_window"
    notes = client.files.create(file=("notes.txt", b"x"), purpose="user_data", extra_headers=MODEL_HEADER)
    with pytest.raises(openai.BadRequestError) as e:
        create(client, notes.id)
    assert e.value.body["param"] == "input_file_id"
    with pytest.raises(openai.BadRequestError):
        client.batches.list(limit=101)


def test_validation_reports_model_and_url_mismatches(gateway):
    client = gateway.client()
    lines = [
        batch_line("a"),
        batch_line("b", model="some-other-model"),
        json.dumps({"custom_id": "c", "method": "POST", "url": "/v1/completions", "body": {"model": PUBLIC_MODEL, "prompt": "x"}}),
    ]
    b = create(client, upload_bytes(client, "mismatch.jsonl", ("\n".join(lines) + "\n").encode()))
    done = wait_for_batch(client, b.id, lambda x: x.status in TERMINAL, timeout=30)
    assert done.status == "failed"
    assert done.errors is not None
    assert sorted((e.line, e.code) for e in done.errors.data) == [(2, "mismatched_model"), (3, "invalid_url")]


def test_empty_input_file_fails_the_batch(gateway):
    client = gateway.client()
    b = create(client, upload_bytes(client, "empty.jsonl", b""))
    done = wait_for_batch(client, b.id, lambda x: x.status in TERMINAL, timeout=30)
    assert done.status == "failed"
    assert [e.code for e in done.errors.data] == ["empty_file"]
