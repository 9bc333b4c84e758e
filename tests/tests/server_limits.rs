//! The HTTP server's limits against the real binary: silent and stalled
//! connections are closed, idle keep-alive connections too, a connection
//! cap holds extra clients back until a slot frees, and an over-large JSON
//! body is answered 413 in a way ordinary clients get to read.
//!
//! Waits are on events (the server closing a socket, an answer arriving)
//! with generous upper bounds; no test asserts how long anything took.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use batchgate_tests::{assert_error_envelope, config, Gateway, MASTER_KEY};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NOWHERE: &str = "http://127.0.0.1:9";
/// Upper bound for events that should happen within a second or two.
const EVENTUALLY: Duration = Duration::from_secs(60);

async fn start(server_settings: &str) -> Gateway {
    let cfg = config(
        &[("m", NOWHERE)],
        &format!("server_settings:\n{server_settings}"),
    );
    Gateway::start(&cfg).await.unwrap()
}

async fn connect(gw: &Gateway) -> TcpStream {
    TcpStream::connect(gw.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Waits until the server closes `conn` (EOF or a reset), discarding
/// anything it sends first. Fails after [`EVENTUALLY`].
async fn closed_by_server(mut conn: TcpStream, what: &str) {
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(EVENTUALLY, conn.read_to_end(&mut sink)).await;
    assert!(
        closed.is_ok(),
        "{what}: the server kept the connection open"
    );
}

/// Writes one keep-alive GET and reads its whole response (status, body).
async fn get_on(conn: &mut TcpStream, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    read_response(conn).await
}

/// Reads one response with a `content-length` from `conn`.
async fn read_response(conn: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = conn.read(&mut byte).await.unwrap();
        assert!(n > 0, "connection closed mid-response: {buf:?}");
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    conn.read_exact(&mut body).await.unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn silent_and_stalled_connections_are_closed_and_health_still_answers() {
    let gw = start("  header_read_timeout_seconds: 1\n  keep_alive_timeout_seconds: 300\n").await;
    let mut held = Vec::new();
    for i in 0..50 {
        held.push((connect(&gw).await, format!("silent #{i}")));
        let mut stalled = connect(&gw).await;
        stalled
            .write_all(b"GET /health/liveliness HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        held.push((stalled, format!("stalled mid-header #{i}")));
    }
    // With all of them open, a new client is still served.
    let answer = reqwest::get(gw.url("/health/liveliness")).await.unwrap();
    assert_eq!(answer.status(), 200);
    let closing = held
        .into_iter()
        .map(|(conn, what)| async move { closed_by_server(conn, &what).await });
    futures::future::join_all(closing).await;
    let answer = reqwest::get(gw.url("/health/liveliness")).await.unwrap();
    assert_eq!(answer.status(), 200);
}

#[tokio::test]
async fn idle_keep_alive_connections_close_on_their_own_timeout() {
    // The header timeout is far longer than the wait below: only the
    // keep-alive timeout can close this connection in time.
    let gw = start("  header_read_timeout_seconds: 600\n  keep_alive_timeout_seconds: 1\n").await;
    let mut conn = connect(&gw).await;
    assert_eq!(get_on(&mut conn, "/health/liveliness").await.0, 200);
    assert_eq!(
        get_on(&mut conn, "/health/liveliness").await.0,
        200,
        "kept alive"
    );
    closed_by_server(conn, "an idle kept-alive connection").await;
}

#[tokio::test]
async fn at_the_connection_cap_an_extra_client_waits_for_a_free_slot() {
    let gw = start(
        "  header_read_timeout_seconds: 600\n  keep_alive_timeout_seconds: 600\n  max_connections: 2\n",
    )
    .await;
    // Two clients hold both slots (served once, then kept alive).
    let mut first = connect(&gw).await;
    let mut second = connect(&gw).await;
    assert_eq!(get_on(&mut first, "/health/liveliness").await.0, 200);
    assert_eq!(get_on(&mut second, "/health/liveliness").await.0, 200);
    // A third connects (the kernel's backlog) but is not served...
    let mut third = connect(&gw).await;
    third
        .write_all(b"GET /health/liveliness HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut byte)).await;
    assert!(early.is_err(), "a connection over the cap was served");
    // ...until one of the others leaves.
    drop(first);
    let served = tokio::time::timeout(EVENTUALLY, read_response(&mut third)).await;
    let (status, body) = served.expect("the waiting client was never served");
    assert_eq!(status, 200, "{body}");
    assert_eq!(get_on(&mut second, "/health/liveliness").await.0, 200);
}

/// Writes a whole request with a `size`-byte JSON-ish body to `path`, then
/// reads the answer, like curl or python-requests do: a server that closes
/// early makes the write fail (EPIPE/ECONNRESET).
async fn write_all_then_read(gw: &Gateway, path: &str, size: usize) -> (u16, Value) {
    let mut body = b"{\"pad\": \"".to_vec();
    body.resize(size - 2, b'x');
    body.extend(b"\"}");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {MASTER_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut conn = connect(gw).await;
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body)
        .await
        .expect("the gateway reset the connection while the body was sent");
    let (status, text) = read_response(&mut conn).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_over_large_json_body_gets_a_readable_413() {
    let gw = start("  max_connections: 64\n").await;
    for path in ["/v1/batches", "/key/generate", "/team/new"] {
        let (status, body) = write_all_then_read(&gw, path, 20 * 1024 * 1024).await;
        assert_eq!(status, 413, "{path}: {body}");
        assert_error_envelope(&body);
        assert_eq!(body["error"]["code"], "request_too_large", "{body}");
    }
    // The same through reqwest, with a length and streamed without one.
    let big = vec![b' '; 20 * 1024 * 1024];
    let sized = gw
        .http
        .post(gw.url("/v1/batches"))
        .bearer_auth(MASTER_KEY)
        .header("content-type", "application/json")
        .body(big.clone());
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let streamed = gw
        .http
        .post(gw.url("/v1/batches"))
        .bearer_auth(MASTER_KEY)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)));
    for request in [sized, streamed] {
        let r = request
            .send()
            .await
            .expect("the client saw a broken connection");
        assert_eq!(r.status(), 413);
        let body: Value = r.json().await.unwrap();
        assert_error_envelope(&body);
    }
    // A body at the limit is read (and refused only for what it says).
    let (status, body) = write_all_then_read(&gw, "/v1/batches", 2 * 1024 * 1024).await;
    assert_eq!(status, 400, "{body}");
}
