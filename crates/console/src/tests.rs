#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use super::*;

/// What the first load may weigh at most: far under the 1 MB the console
/// promises, so growth is noticed long before it matters.
const BUDGET: usize = 300 * 1024;

fn assets_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets")
}

fn files_under(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, base, out);
        } else {
            let rel = path.strip_prefix(base).unwrap().to_string_lossy();
            out.insert(rel.replace('\\', "/"));
        }
    }
}

#[test]
fn every_asset_file_is_embedded_and_nothing_else() {
    let mut on_disk = BTreeSet::new();
    files_under(&assets_dir(), &assets_dir(), &mut on_disk);
    let embedded: BTreeSet<String> = ASSETS.iter().map(|a| a.path.to_string()).collect();
    assert_eq!(on_disk, embedded);
}

#[test]
fn the_first_load_stays_small() {
    let bytes = first_load_bytes();
    assert!(bytes < BUDGET, "console weighs {bytes} bytes");
}

/// Every relative `import … from './x.js'` names an embedded module, so a
/// renamed or forgotten file breaks this test rather than the page.
#[test]
fn every_module_import_resolves() {
    let names: BTreeSet<&str> = ASSETS.iter().map(|a| a.path).collect();
    for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
        let text = std::str::from_utf8(a.body).unwrap();
        let dir = a.path.rsplit_once('/').map_or("", |(d, _)| d);
        for spec in text
            .split("from '")
            .skip(1)
            .filter_map(|s| s.split('\'').next())
        {
            let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
            for seg in spec.split('/') {
                match seg {
                    "." => {}
                    ".." => {
                        parts.pop();
                    }
                    s => parts.push(s),
                }
            }
            let target = parts.join("/");
            assert!(
                names.contains(target.as_str()),
                "{} imports {spec} ({target}), which is not embedded",
                a.path
            );
        }
    }
    let index = std::str::from_utf8(ASSETS[0].body).unwrap();
    for needed in ["app.js", "style.css", "icon.svg"] {
        assert!(index.contains(needed), "index.html does not load {needed}");
    }
}

async fn get(path: &str, etag: Option<&str>) -> axum::response::Response {
    let mut req = Request::get(path);
    if let Some(e) = etag {
        req = req.header(header::IF_NONE_MATCH, e);
    }
    router::<()>()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn serves_the_page_and_its_modules_with_validators_and_a_strict_policy() {
    let page = get("/ui/", None).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()[header::CONTENT_TYPE], HTML);
    let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"));
    assert!(!csp.contains("unsafe"), "{csp}");
    let etag = page.headers()[header::ETAG].to_str().unwrap().to_string();
    let body = page.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], ASSETS[0].body);

    let again = get("/ui/", Some(&etag)).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    let module = get("/ui/views/batch.js", None).await;
    assert_eq!(module.status(), StatusCode::OK);
    assert_eq!(module.headers()[header::CONTENT_TYPE], JS);
    assert_ne!(module.headers()[header::ETAG].to_str().unwrap(), etag);

    let bare = get("/ui", None).await;
    assert_eq!(bare.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(bare.headers()[header::LOCATION], "/ui/");
}

#[tokio::test]
async fn anything_not_embedded_is_not_found() {
    for path in [
        "/ui/nope.js",
        "/ui/../Cargo.toml",
        "/ui/views",
        "/ui/src/lib.rs",
    ] {
        assert_eq!(
            get(path, None).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
}
