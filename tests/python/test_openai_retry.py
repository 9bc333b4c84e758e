"""batchgate's retry extension (`POST /v1/batches/{id}/retry`) through the
official `openai` SDK's generic `client.post`."""

from __future__ import annotations

import json

import openai
import pytest

from conftest import PUBLIC_MODEL, batch_line, wait_for_batch

MODEL_HEADER = {"x-litellm-model": PUBLIC_MODEL}
TERMINAL = {"completed", "failed", "cancelled", "expired"}


def upload(client: openai.OpenAI, content: str) -> str:
    return client.files.create(
        file=("in.jsonl", content.encode()), purpose="batch", extra_headers=MODEL_HEADER
    ).id


def run(client: openai.OpenAI, content: str, **kwargs) -> openai.types.Batch:
    b = client.batches.create(
        input_file_id=upload(client, content), endpoint="/v1/chat/completions", completion_window="24h", **kwargs
    )
    return b


def retry(client: openai.OpenAI, batch_id: str, **body) -> openai.types.Batch:
    return client.post(f"/batches/{batch_id}/retry", body=body, cast_to=openai.types.Batch)


def lines_of(client: openai.OpenAI, file_id: str) -> list[dict]:
    return [json.loads(x) for x in client.files.content(file_id).read().decode().splitlines() if x.strip()]


def test_retry_of_lines_the_upstream_refused_needs_all(client):
    rejected = json.dumps(
        {
            "custom_id": "rejected",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": PUBLIC_MODEL, "messages": "not a list"},
        }
    )
    b = run(client, "\n".join([batch_line("ok"), rejected]) + "\n", metadata={"team": "a"})
    done = wait_for_batch(client, b.id, lambda x: x.status in TERMINAL, timeout=30)
    assert done.request_counts.failed == 1, done.model_dump_json()

    # The upstream refused the request itself (400): not retried by default.
    with pytest.raises(openai.BadRequestError) as e:
        retry(client, b.id)
    assert e.value.body["code"] == "nothing_to_retry"

    again = retry(client, b.id, all=True)
    assert again.status == "validating"
    assert again.metadata == {"team": "a", "retry_of": b.id}
    assert [line["custom_id"] for line in lines_of(client, again.input_file_id)] == ["rejected"]
    assert client.files.retrieve(again.input_file_id).purpose == "batch"


def test_retry_needs_an_ended_batch_and_resends_what_a_cancel_left(gateway_factory):
    slow = gateway_factory("retry-slow", latency_ms=300, max_parallel_requests=1)
    client = slow.client()
    ids = [f"req-{i:02d}" for i in range(20)]
    b = run(client, "\n".join(batch_line(i) for i in ids) + "\n")
    wait_for_batch(
        client,
        b.id,
        lambda x: x.status in TERMINAL or x.request_counts.completed >= 1,
        timeout=30,
        interval=0.05,
    )
    with pytest.raises(openai.ConflictError):
        retry(client, b.id)

    client.batches.cancel(b.id)
    done = wait_for_batch(client, b.id, lambda x: x.status in TERMINAL, timeout=45)
    assert done.status == "cancelled", done.model_dump_json()
    ran = {line["custom_id"] for line in lines_of(client, done.output_file_id)}
    assert 0 < len(ran) < len(ids)

    again = retry(client, b.id)
    assert again.metadata == {"retry_of": b.id}
    resent = [line["custom_id"] for line in lines_of(client, again.input_file_id)]
    assert resent == [i for i in ids if i not in ran]
    client.batches.cancel(again.id)


def test_retry_of_an_unknown_batch_is_not_found(client):
    with pytest.raises(openai.NotFoundError):
        retry(client, "batch_nope")
