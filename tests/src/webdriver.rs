//! A small W3C WebDriver client for the console's browser tests: Debian's
//! `chromedriver` driving headless `chromium`, spoken to over HTTP with the
//! harness's own reqwest (no extra crates). Waits poll the page's DOM state;
//! nothing sleeps a fixed time.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How often a wait looks at the page again.
const POLL: Duration = Duration::from_millis(100);

/// Where Debian installs the browser and its driver.
pub fn browser_paths() -> Option<(PathBuf, PathBuf)> {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())?;
    let driver = PathBuf::from("/usr/bin/chromedriver");
    driver.exists().then_some((chromium, driver))
}

/// A running `chromedriver` (killed on drop) and one browser session.
#[derive(Debug)]
pub struct Browser {
    _driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

/// A found element.
#[derive(Debug, Clone)]
pub struct El(String);

impl Browser {
    /// Starts chromedriver and a headless Chromium `width`×`height` that
    /// saves downloads into `downloads`.
    pub async fn start(width: u32, height: u32, downloads: &Path) -> Result<Browser> {
        let (chromium, driver_bin) =
            browser_paths().ok_or_else(|| anyhow!("chromium / chromedriver not installed"))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("spawn chromedriver")?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while http.get(format!("{base}/status")).send().await.is_err() {
            if Instant::now() > deadline {
                bail!("chromedriver did not answer in 30 s");
            }
            tokio::time::sleep(POLL).await;
        }
        let dir = downloads.to_string_lossy();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-extensions", "--no-first-run", "--lang=en-US",
                         format!("--window-size={width},{height}")],
                "prefs": {"download.default_directory": dir, "download.prompt_for_download": false}
            }
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await?
            .json()
            .await?;
        let session = r["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no session: {r}"))?
            .to_string();
        let browser = Browser {
            _driver: driver,
            base,
            session,
            http,
        };
        // Headless Chromium saves downloads only when told where.
        browser
            .cmd(
                reqwest::Method::POST,
                "goog/cdp/execute",
                json!({"cmd": "Browser.setDownloadBehavior", "params": {"behavior": "allow", "downloadPath": dir}}),
            )
            .await?;
        Ok(browser)
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Value) -> Result<Value> {
        let url = format!("{}/session/{}/{path}", self.base, self.session);
        let mut req = self.http.request(method.clone(), url);
        if method != reqwest::Method::GET {
            req = req.json(&body);
        }
        let r: Value = req.send().await?.json().await?;
        if let Some(err) = r["value"]["error"].as_str() {
            bail!("webdriver {path}: {err}: {}", r["value"]["message"]);
        }
        Ok(r["value"].clone())
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        self.cmd(reqwest::Method::POST, "url", json!({ "url": url }))
            .await
            .map(drop)
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns
    /// its value.
    pub async fn js(&self, script: &str, args: Value) -> Result<Value> {
        self.cmd(
            reqwest::Method::POST,
            "execute/sync",
            json!({"script": script, "args": args}),
        )
        .await
    }

    /// Polls `script` until it returns something other than null/false and
    /// returns that; fails with the last value after `timeout`.
    pub async fn wait_js(&self, what: &str, script: &str, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.js(script, json!([])).await?;
            if !(v.is_null() || v == Value::Bool(false)) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                let page = self
                    .js("return document.body.innerText.slice(0, 2000)", json!([]))
                    .await
                    .unwrap_or_default();
                bail!("timed out after {timeout:?} waiting for {what}; page text: {page}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until `css` matches an element and returns it.
    pub async fn find(&self, css: &str, timeout: Duration) -> Result<El> {
        let script = format!("return document.querySelector({})", json!(css));
        let v = self.wait_js(css, &script, timeout).await?;
        v[ELEMENT]
            .as_str()
            .map(|id| El(id.to_string()))
            .ok_or_else(|| anyhow!("{css}: not an element: {v}"))
    }

    pub async fn click(&self, el: &El) -> Result<()> {
        self.cmd(
            reqwest::Method::POST,
            &format!("element/{}/click", el.0),
            json!({}),
        )
        .await
        .map(drop)
    }

    /// Waits for `css`, then clicks it.
    pub async fn click_on(&self, css: &str, timeout: Duration) -> Result<()> {
        let el = self.find(css, timeout).await?;
        self.click(&el).await
    }

    pub async fn type_into(&self, el: &El, text: &str) -> Result<()> {
        self.cmd(
            reqwest::Method::POST,
            &format!("element/{}/value", el.0),
            json!({ "text": text }),
        )
        .await
        .map(drop)
    }

    /// Presses keys on whatever has focus (e.g. "\u{E004}" is Tab).
    pub async fn keys(&self, keys: &str) -> Result<()> {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                let c = c.to_string();
                [
                    json!({"type": "keyDown", "value": c}),
                    json!({"type": "keyUp", "value": c}),
                ]
            })
            .collect();
        self.cmd(
            reqwest::Method::POST,
            "actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        )
        .await
        .map(drop)
    }

    pub async fn set_size(&self, width: u32, height: u32) -> Result<()> {
        self.cmd(
            reqwest::Method::POST,
            "window/rect",
            json!({"width": width, "height": height}),
        )
        .await
        .map(drop)
    }

    /// Saves a PNG of the viewport to `path`.
    pub async fn screenshot(&self, path: &Path) -> Result<()> {
        let v = self
            .cmd(reqwest::Method::GET, "screenshot", Value::Null)
            .await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().ok_or_else(|| anyhow!("no screenshot"))?)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }

    /// Ends the session (the browser exits); the driver goes on drop.
    pub async fn quit(self) -> Result<()> {
        let url = format!("{}/session/{}", self.base, self.session);
        self.http.delete(url).send().await?;
        Ok(())
    }
}
