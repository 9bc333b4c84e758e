"""The Files API through the official `openai` Python SDK."""

from __future__ import annotations

import io
import time

import openai
import pytest

from conftest import PUBLIC_MODEL, batch_line

MODEL_HEADER = {"x-litellm-model": PUBLIC_MODEL}


def jsonl(n: int, prefix: str = "req") -> bytes:
    return ("\n".join(batch_line(f"{prefix}-{i}") for i in range(n)) + "\n").encode()


def upload(client: openai.OpenAI, name: str, content: bytes, purpose: str = "batch"):
    return client.files.create(file=(name, io.BytesIO(content)), purpose=purpose, extra_headers=MODEL_HEADER)


def assert_file_object(f, *, bytes_: int, filename: str, purpose: str) -> None:
    assert f.object == "file"
    assert f.id.startswith("file-"), f.id
    assert len(f.id) <= 64, f"id longer than 64 chars: {f.id!r} ({len(f.id)})"
    assert f.bytes == bytes_
    assert f.filename == filename
    assert f.purpose == purpose
    assert f.status == "processed"
    assert isinstance(f.created_at, int) and abs(f.created_at - time.time()) < 300


def test_upload_retrieve_content_delete(client, seed_file):
    raw = seed_file.read_bytes()
    with open(seed_file, "rb") as fh:
        created = client.files.create(file=fh, purpose="batch", extra_headers=MODEL_HEADER)
    assert_file_object(created, bytes_=len(raw), filename="batch_requests.jsonl", purpose="batch")
    # Batch uploads expire after 30 days by default.
    assert created.expires_at is not None
    assert created.expires_at - created.created_at == 30 * 24 * 3600

    got = client.files.retrieve(created.id)
    assert got.model_dump() == created.model_dump()
    # Already processed: the SDK helper returns at once.
    assert client.files.wait_for_processing(created.id, poll_interval=0.1, max_wait_seconds=5).status == "processed"

    assert client.files.content(created.id).read() == raw

    deleted = client.files.delete(created.id)
    assert deleted.id == created.id
    assert deleted.deleted is True
    assert deleted.object == "file"

    with pytest.raises(openai.NotFoundError) as e:
        client.files.retrieve(created.id)
    assert e.value.status_code == 404
    with pytest.raises(openai.NotFoundError):
        client.files.content(created.id)
    with pytest.raises(openai.NotFoundError):
        client.files.delete(created.id)


def test_model_selection_with_two_models(gateway_factory):
    """With two models configured the upload must name one: header, form field or query."""
    gw = gateway_factory("two-models", models=(PUBLIC_MODEL, "other-model"))
    client = gw.client()
    content = jsonl(1, "sel")

    with pytest.raises(openai.BadRequestError):
        client.files.create(file=("none.jsonl", content), purpose="batch")

    by_header = client.files.create(
        file=("header.jsonl", content), purpose="batch", extra_headers={"x-litellm-model": "other-model"}
    )
    by_form = client.files.create(file=("form.jsonl", content), purpose="batch", extra_body={"model": "other-model"})
    by_query = client.files.create(file=("query.jsonl", content), purpose="batch", extra_query={"model": "other-model"})
    default = client.files.create(file=("default.jsonl", content), purpose="batch", extra_headers=MODEL_HEADER)
    for f, name in [(by_header, "header"), (by_form, "form"), (by_query, "query"), (default, "default")]:
        assert_file_object(f, bytes_=len(content), filename=f"{name}.jsonl", purpose="batch")
        assert client.files.content(f.id).read() == content

    # The model chosen at upload travels in the file ID and routes the batch.
    def batch_model(file_id: str) -> str | None:
        b = client.batches.create(input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h")
        return b.model

    assert batch_model(default.id) == PUBLIC_MODEL
    for f in (by_header, by_form, by_query):
        assert batch_model(f.id) == "other-model", f.filename


def test_unknown_model_header_is_rejected(client):
    with pytest.raises(openai.APIStatusError) as e:
        client.files.create(
            file=("x.jsonl", jsonl(1)), purpose="batch", extra_headers={"x-litellm-model": "no-such-model"}
        )
    assert e.value.status_code in (400, 404), e.value


def test_list_pagination(gateway_factory):
    """A gateway of its own, so that the listing holds exactly these files."""
    gw = gateway_factory("files-pagination")
    client = gw.client()
    uploaded = [upload(client, f"part-{i}.jsonl", jsonl(i + 1, f"p{i}")) for i in range(5)]
    other = client.files.create(
        file=("notes.txt", b"not a batch"), purpose="user_data", extra_headers=MODEL_HEADER
    )
    assert other.purpose == "user_data"
    batch_ids = {f.id for f in uploaded}
    all_ids = batch_ids | {other.id}

    # Manually, following `after` until a page comes back empty.
    pages: list[list[str]] = []
    after = openai.NOT_GIVEN
    for _ in range(20):
        page = client.files.list(limit=2, after=after)
        ids = [f.id for f in page.data]
        assert len(ids) <= 2
        if not ids:
            break
        pages.append(ids)
        after = ids[-1]
    else:
        pytest.fail(f"pagination did not end: {pages}")
    manual = [i for p in pages for i in p]
    assert len(manual) == len(set(manual)), f"an id came twice: {pages}"
    assert set(manual) == all_ids
    assert [len(p) for p in pages] == [2, 2, 2]

    # Default order is newest first.
    listed = {f.id: f for f in client.files.list().data}
    created = [listed[i].created_at for i in manual]
    assert created == sorted(created, reverse=True)

    # has_more / first_id / last_id on the wire.
    raw = client.files.with_raw_response.list(limit=2).http_response.json()
    assert raw["object"] == "list"
    assert raw["has_more"] is True
    assert raw["first_id"] == raw["data"][0]["id"] == manual[0]
    assert raw["last_id"] == raw["data"][-1]["id"] == manual[1]
    last = client.files.with_raw_response.list(limit=2, after=manual[3]).http_response.json()
    assert [d["id"] for d in last["data"]] == manual[4:]
    assert last["has_more"] is False

    # An exhausted cursor (what older SDKs send after the last page) is empty.
    assert client.files.list(limit=2, after=manual[-1]).data == []

    # The SDK's auto-pagination yields the same sequence.
    auto = [f.id for f in client.files.list(limit=2)]
    assert auto == manual

    # Ascending order is the exact reverse, page by page too.
    asc = [f.id for f in client.files.list(limit=2, order="asc")]
    assert asc == manual[::-1]

    # Purpose filter.
    assert {f.id for f in client.files.list(purpose="batch")} == batch_ids
    assert [f.id for f in client.files.list(purpose="user_data")] == [other.id]

    # A deleted file leaves the listing.
    assert client.files.delete(manual[2]).deleted is True
    assert [f.id for f in client.files.list(limit=2)] == manual[:2] + manual[3:]


def test_expires_after(client):
    content = jsonl(1, "exp")
    f = client.files.create(
        file=("exp.jsonl", content),
        purpose="batch",
        extra_headers=MODEL_HEADER,
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert f.expires_at == f.created_at + 3600
    with pytest.raises(openai.BadRequestError) as e:
        client.files.create(
            file=("exp.jsonl", content),
            purpose="batch",
            extra_headers=MODEL_HEADER,
            expires_after={"anchor": "created_at", "seconds": 10},
        )
    assert "expires_after" in e.value.body["param"]


@pytest.mark.parametrize(
    "params, param",
    [({"limit": 0}, "limit"), ({"limit": 10001}, "limit"), ({"order": "sideways"}, "order")],
)
def test_list_rejects_bad_parameters(client, params, param):
    with pytest.raises(openai.BadRequestError) as e:
        client.files.list(**params)
    assert e.value.body["param"] == param


def test_routes_without_v1_prefix(gateway, seed_file):
    client = gateway.client(base_url=gateway.url)
    raw = seed_file.read_bytes()
    f = client.files.create(file=("seed.jsonl", raw), purpose="batch", extra_headers=MODEL_HEADER)
    assert_file_object(f, bytes_=len(raw), filename="seed.jsonl", purpose="batch")
    assert client.files.retrieve(f.id).id == f.id
    assert client.files.content(f.id).read() == raw
    assert f.id in {x.id for x in client.files.list()}
    assert client.files.delete(f.id).deleted is True


def test_bad_purpose_is_bad_request(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.files.create(file=("a.jsonl", jsonl(1)), purpose="nonsense", extra_headers=MODEL_HEADER)
    assert e.value.status_code == 400
    err = e.value.body
    assert isinstance(err, dict) and set(err) >= {"message", "type", "param", "code"}, err
    assert err["type"] == "invalid_request_error"


def test_batch_purpose_needs_jsonl(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.files.create(file=("data.txt", jsonl(1)), purpose="batch", extra_headers=MODEL_HEADER)
    assert ".jsonl" in e.value.body["message"]


def test_wrong_key_is_authentication_error(gateway, client, seed_file):
    f = upload(client, "auth.jsonl", seed_file.read_bytes())
    bad = gateway.client(api_key="sk-wrong")
    with pytest.raises(openai.AuthenticationError) as e:
        bad.files.retrieve(f.id)
    assert e.value.status_code == 401
    assert e.value.body["code"] == "invalid_api_key"
    assert e.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.AuthenticationError):
        bad.files.list()
    with pytest.raises(openai.AuthenticationError):
        bad.files.create(file=("x.jsonl", jsonl(1)), purpose="batch", extra_headers=MODEL_HEADER)
    with pytest.raises(openai.AuthenticationError):
        bad.batches.list()
    # Nothing was deleted by the failed calls.
    assert client.files.retrieve(f.id).id == f.id


def test_request_id_header(client, seed_file):
    f = upload(client, "rid.jsonl", seed_file.read_bytes())
    response = client.files.with_raw_response.retrieve(f.id)
    rid = response.headers["x-request-id"]
    assert rid
    assert response.parse().id == f.id
    other = client.files.with_raw_response.retrieve(f.id).headers["x-request-id"]
    assert other and other != rid
    # Errors carry one too, and the SDK exposes it.
    with pytest.raises(openai.NotFoundError) as e:
        client.files.retrieve("file-doesnotexist")
    assert e.value.request_id
    assert e.value.response.headers["x-request-id"] == e.value.request_id
