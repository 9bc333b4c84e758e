"""/v1/responses batches and the Batch fields OpenAI added lately, through
the official `openai` SDK: `model`, `usage` with cached and reasoning
tokens, `output_expires_after`, `expires_after` on upload, list `limit`,
and `models.list()` telling which endpoints a model accepts.

mock-vllm's Responses usage (one token per word): input = words of
`instructions` + words of `input`; cached = words of `instructions` when the
request has a `prompt_cache_key`; output = 16, plus 8 reasoning tokens when
`reasoning` is asked for.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from conftest import MASTER_KEY, PUBLIC_MODEL, SERVED_MODEL, wait_for_batch

MODEL_HEADER = {"x-litellm-model": PUBLIC_MODEL}
TERMINAL = {"completed", "failed", "cancelled", "expired"}
INSTRUCTIONS = "You answer in one short line."  # 6 words

LINES = [
    # input 2, output 16
    {"model": PUBLIC_MODEL, "input": "Say hello"},
    # input 6 + 5, cached 6, output 16
    {
        "model": PUBLIC_MODEL,
        "instructions": INSTRUCTIONS,
        "prompt_cache_key": "team-a",
        "input": [{"role": "user", "content": [{"type": "input_text", "text": "What is two plus two?"}]}],
    },
    # input 2, output 16 + 8 reasoning
    {"model": PUBLIC_MODEL, "input": "Think first", "reasoning": {"effort": "low"}},
]
USAGE = {
    "input_tokens": 15,
    "input_tokens_details": {"cached_tokens": 6},
    "output_tokens": 56,
    "output_tokens_details": {"reasoning_tokens": 8},
    "total_tokens": 71,
}


def responses_file(lines: list[dict]) -> bytes:
    rows = [
        json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/responses", "body": body})
        for i, body in enumerate(lines)
    ]
    return ("\n".join(rows) + "\n").encode()


@pytest.fixture(scope="module")
def responses_batch(gateway):
    client = gateway.client()
    f = client.files.create(file=("responses.jsonl", responses_file(LINES)), purpose="batch", extra_headers=MODEL_HEADER)
    created = client.batches.create(
        input_file_id=f.id,
        endpoint="/v1/responses",
        completion_window="24h",
        output_expires_after={"anchor": "created_at", "seconds": 3600},
    )
    done = wait_for_batch(client, created.id, lambda b: b.status in TERMINAL, timeout=60)
    return created, done


def test_responses_batch_completes_with_usage_and_model(gateway, responses_batch):
    created, done = responses_batch
    assert created.endpoint == "/v1/responses"
    assert created.model == PUBLIC_MODEL
    assert created.usage is None
    assert done.status == "completed", done.model_dump_json()
    assert done.model == PUBLIC_MODEL
    assert (done.request_counts.total, done.request_counts.completed) == (3, 3)
    # Typed access, as SDK users read it.
    assert done.usage is not None
    assert done.usage.input_tokens_details.cached_tokens == 6
    assert done.usage.output_tokens_details.reasoning_tokens == 8
    raw = gateway.client().batches.with_raw_response.retrieve(done.id).http_response.json()
    assert raw["usage"] == USAGE


def test_responses_output_lines_carry_vllms_response_objects(gateway, responses_batch):
    _, done = responses_batch
    client = gateway.client()
    lines = [json.loads(x) for x in client.files.content(done.output_file_id).read().decode().splitlines()]
    assert sorted(line["custom_id"] for line in lines) == ["r0", "r1", "r2"]
    by_id = {line["custom_id"]: line["response"]["body"] for line in lines}
    assert all(r["object"] == "response" and r["status"] == "completed" for r in by_id.values())
    # The served name went upstream, not the public one.
    assert all(r["model"] == SERVED_MODEL for r in by_id.values())
    message = by_id["r0"]["output"][-1]
    assert message["type"] == "message" and message["content"][0]["text"].startswith("mock reply")
    assert by_id["r1"]["usage"]["input_tokens_details"]["cached_tokens"] == 6
    assert by_id["r2"]["usage"]["output_tokens_details"]["reasoning_tokens"] == 8
    assert by_id["r2"]["output"][0]["type"] == "reasoning"


def test_output_expires_after_applies_to_the_output_file(gateway, responses_batch):
    _, done = responses_batch
    out = gateway.client().files.retrieve(done.output_file_id)
    assert out.purpose == "batch_output"
    assert out.expires_at == out.created_at + 3600
    with pytest.raises(openai.BadRequestError) as e:
        gateway.client().batches.create(
            input_file_id=done.input_file_id,
            endpoint="/v1/responses",
            completion_window="24h",
            output_expires_after={"anchor": "created_at", "seconds": 59},
        )
    assert e.value.body["param"] == "output_expires_after"


def test_models_list_tells_the_batch_endpoints(gateway):
    models = gateway.client().models.list()
    ours = [m for m in models.data if m.id == PUBLIC_MODEL]
    assert len(ours) == 1
    endpoints = ours[0].to_dict()["batch_endpoints"]
    assert "/v1/responses" in endpoints and "/v1/chat/completions" in endpoints
    assert "/v1/moderations" not in endpoints
    assert gateway.client().models.retrieve(PUBLIC_MODEL).id == PUBLIC_MODEL
    with pytest.raises(openai.BadRequestError) as e:
        f = gateway.client().files.create(file=("x.jsonl", responses_file(LINES[:1])), purpose="batch", extra_headers=MODEL_HEADER)
        gateway.client().batches.create(input_file_id=f.id, endpoint="/v1/moderations", completion_window="24h")
    assert e.value.body["code"] == "unsupported_endpoint"
    assert "/v1/responses" in e.value.body["message"]


def test_expires_after_as_one_json_form_field(gateway):
    """Some clients send expires_after as one JSON field, not the SDK's brackets."""
    r = httpx.post(
        f"{gateway.v1}/files",
        headers={"Authorization": f"Bearer {MASTER_KEY}", **MODEL_HEADER},
        data={"purpose": "batch", "expires_after": json.dumps({"anchor": "created_at", "seconds": 7200})},
        files={"file": ("json-expiry.jsonl", responses_file(LINES[:1]))},
    )
    assert r.status_code == 200, r.text
    f = r.json()
    assert f["expires_at"] == f["created_at"] + 7200


def test_batch_list_limit_is_1_to_100(gateway, responses_batch):
    client = gateway.client()
    assert len(client.batches.list(limit=100).data) >= 1
    for bad in (0, 101):
        with pytest.raises(openai.BadRequestError) as e:
            client.batches.list(limit=bad)
        assert e.value.body["param"] == "limit"
