//! File expiry, in process: the real router and Files API over a gateway
//! whose clock the test moves, so expiry is checked without waiting.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use batchgate_engine::Catalog;
use batchgate_ids::Kind;
use batchgate_tests::in_process::{InProcess, Keys};
use reqwest::multipart::{Form, Part};
use serde_json::Value;

const KEY: &str = "sk-inprocess";
const T0: i64 = 1_700_000_000;
const THIRTY_DAYS: i64 = 30 * 24 * 3600;
const CONFIG: &str = "model_list:\n- model_name: m\n  litellm_params:\n    model: hosted_vllm/x\n    api_base: http://127.0.0.1:9\n";

struct App {
    base: String,
    http: reqwest::Client,
    now: Arc<AtomicI64>,
    catalog: Catalog,
    blobs_dir: PathBuf,
    _app: InProcess,
    _dir: tempfile::TempDir,
}

impl App {
    async fn start() -> App {
        let dir = tempfile::tempdir().unwrap();
        let now = Arc::new(AtomicI64::new(T0));
        let clock_now = now.clone();
        let clock = Arc::new(move || clock_now.load(Ordering::SeqCst));
        let app = InProcess::start(CONFIG, dir.path(), clock, Keys::Master(KEY), false).await;
        App {
            base: app.base.clone(),
            http: reqwest::Client::new(),
            now,
            catalog: app.gateway.catalog().clone(),
            blobs_dir: dir.path().join("blobs"),
            _app: app,
            _dir: dir,
        }
    }

    fn set_time(&self, t: i64) {
        self.now.store(t, Ordering::SeqCst);
    }

    async fn upload(
        &self,
        purpose: &'static str,
        filename: &'static str,
        expires_after: Option<&'static str>,
    ) -> Value {
        let mut form = Form::new().text("purpose", purpose);
        if let Some(secs) = expires_after {
            form = form
                .text("expires_after[anchor]", "created_at")
                .text("expires_after[seconds]", secs);
        }
        form = form.part(
            "file",
            Part::bytes(b"{\"custom_id\":\"x\"}\n".to_vec()).file_name(filename),
        );
        let r = self
            .http
            .post(format!("{}/v1/files", self.base))
            .bearer_auth(KEY)
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn content_status(&self, id: &str) -> u16 {
        let url = format!("{}/v1/files/{id}/content", self.base);
        self.http
            .get(url)
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn listed(&self) -> Vec<String> {
        let (status, list) = self.get("/v1/files").await;
        assert_eq!(status, 200);
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// Where the file's bytes live on disk.
    fn blob_of(&self, id: &str) -> PathBuf {
        let key = self.catalog.route(Kind::File, id).unwrap().local_key;
        self.blobs_dir.join("files").join(key)
    }

    /// Whether the file's row is still in the store, expired or not.
    async fn row_exists(&self, id: &str) -> bool {
        let key = self.catalog.route(Kind::File, id).unwrap().local_key;
        self.catalog
            .files()
            .get_file(&key, i64::MIN)
            .await
            .unwrap()
            .is_some()
    }

    /// The file is served everywhere: retrieve, content, list.
    async fn assert_visible(&self, id: &str) {
        let (status, f) = self.get(&format!("/v1/files/{id}")).await;
        assert_eq!(status, 200, "{f}");
        assert_eq!(self.content_status(id).await, 200);
        assert!(self.listed().await.contains(&id.to_string()));
    }

    /// The file is served nowhere, with 404 envelopes.
    async fn assert_gone(&self, id: &str) {
        let (status, body) = self.get(&format!("/v1/files/{id}")).await;
        assert_eq!(status, 404, "{body}");
        batchgate_tests::assert_error_envelope(&body);
        assert_eq!(self.content_status(id).await, 404);
        assert!(!self.listed().await.contains(&id.to_string()));
        let r = self
            .http
            .delete(format!("{}/v1/files/{id}", self.base))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
}

#[tokio::test]
async fn a_file_with_expires_after_vanishes_then_is_swept() {
    let app = App::start().await;
    let short = app.upload("user_data", "notes.txt", Some("3600")).await;
    let keep = app.upload("user_data", "keep.txt", None).await;
    let (short_id, keep_id) = (short["id"].as_str().unwrap(), keep["id"].as_str().unwrap());
    assert_eq!(short["created_at"], T0);
    assert_eq!(short["expires_at"], T0 + 3600);
    assert!(keep["expires_at"].is_null());
    assert!(app.blob_of(short_id).is_file());

    app.set_time(T0 + 3599);
    app.assert_visible(short_id).await;
    assert_eq!(
        app.catalog.sweep_expired().await.unwrap(),
        0,
        "nothing is due yet"
    );

    app.set_time(T0 + 3601);
    app.assert_gone(short_id).await;
    app.assert_visible(keep_id).await;
    // Hidden at once, removed by the sweep: row and bytes.
    assert!(app.row_exists(short_id).await && app.blob_of(short_id).is_file());
    assert_eq!(app.catalog.sweep_expired().await.unwrap(), 1);
    assert!(!app.row_exists(short_id).await);
    assert!(
        !app.blob_of(short_id).exists(),
        "expired bytes must be deleted"
    );
    assert!(app.blob_of(keep_id).is_file());
    assert_eq!(app.catalog.sweep_expired().await.unwrap(), 0);

    // Even back in time the swept file does not come back.
    app.set_time(T0);
    app.assert_gone(short_id).await;
    app.assert_visible(keep_id).await;
}

#[tokio::test]
async fn batch_files_expire_after_thirty_days_by_default() {
    let app = App::start().await;
    let f = app.upload("batch", "in.jsonl", None).await;
    let id = f["id"].as_str().unwrap();
    assert_eq!(f["expires_at"], T0 + THIRTY_DAYS);
    let custom = app.upload("batch", "in.jsonl", Some("2592000")).await;
    assert_eq!(custom["expires_at"], T0 + THIRTY_DAYS);

    app.set_time(T0 + THIRTY_DAYS - 1);
    app.assert_visible(id).await;
    assert_eq!(app.catalog.sweep_expired().await.unwrap(), 0);

    app.set_time(T0 + THIRTY_DAYS + 1);
    app.assert_gone(id).await;
    assert_eq!(app.catalog.sweep_expired().await.unwrap(), 2);
    assert!(!app.row_exists(id).await);
    assert!(!app.blob_of(id).exists());
    assert!(app.listed().await.is_empty());
}

#[tokio::test]
async fn a_list_cursor_on_an_expired_file_still_pages_on() {
    let app = App::start().await;
    let a = app.upload("user_data", "a.txt", Some("3600")).await;
    let b = app.upload("user_data", "b.txt", None).await;
    app.set_time(T0 + 7200);
    // SDKs keep paging with the last ID they saw, even if it has expired.
    let (status, page) = app
        .get(&format!(
            "/v1/files?order=asc&after={}",
            a["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 200, "{page}");
    let ids: Vec<_> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].clone())
        .collect();
    assert_eq!(ids, [b["id"].clone()]);
}
