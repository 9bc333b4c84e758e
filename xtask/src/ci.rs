//! `cargo xtask ci`.

use std::process::Command;

use anyhow::{bail, Context, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Skip the Python SDK suite (it needs PyPI for its first run).
    #[arg(long)]
    no_python: bool,
}

pub fn run(args: Args) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    step(
        "format",
        Command::new(&cargo).args(["fmt", "--all", "--", "--check"]),
    )?;
    step(
        "clippy",
        Command::new(&cargo).args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    step(
        "build binaries",
        Command::new(&cargo).args(["build", "-p", "batchgate", "-p", "batchgate-mock-vllm"]),
    )?;
    // The S3 storage tests run against moto's S3 server, installed in the
    // Python suite's virtualenv; with --no-python they are skipped.
    let mut tests = Command::new(&cargo);
    tests.args(["test", "--workspace", "--all-targets"]);
    // The console's browser test drives Debian's headless Chromium; here it
    // must run, not skip.
    ensure_browser()?;
    tests.env("BATCHGATE_REQUIRE_BROWSER", "1");
    let _s3 = if args.no_python {
        None
    } else {
        step(
            "python virtualenv",
            Command::new("bash")
                .arg("tests/python/run.sh")
                .env("BATCHGATE_SETUP_ONLY", "1"),
        )?;
        let s3 = S3Server::start()?;
        tests
            .env("BATCHGATE_TEST_S3_ENDPOINT", &s3.endpoint)
            .env("BATCHGATE_REQUIRE_S3", "1");
        Some(s3)
    };
    step("rust tests", &mut tests)?;
    step(
        "doc tests",
        Command::new(&cargo).args(["test", "--workspace", "--doc"]),
    )?;
    step(
        "quickstart",
        Command::new(&cargo).args([
            "xtask",
            "quickstart",
            "--exit",
            "--port",
            "4100",
            "--mock-port",
            "8100",
        ]),
    )?;
    if !args.no_python {
        step(
            "python SDK tests",
            Command::new("bash").arg("tests/python/run.sh"),
        )?;
    }
    eprintln!("\nxtask ci: all checks passed");
    Ok(())
}

/// moto's S3-compatible server on a free loopback port, stopped on drop.
struct S3Server {
    child: std::process::Child,
    endpoint: String,
}

impl S3Server {
    fn start() -> Result<S3Server> {
        let root = crate::procs::workspace_root();
        let venv = std::env::var_os("BATCHGATE_VENV")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| root.join("target/pyvenv"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("cannot start moto_server (installed by tests/python/run.sh)")?;
        let server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if std::time::Instant::now() > deadline {
                bail!("moto_server did not listen on {port} within 60 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        eprintln!("xtask ci: S3 server (moto) at {}", server.endpoint);
        Ok(server)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Installs Debian's `chromium` and `chromium-driver` when either is
/// missing (CI runs as root on a fresh machine; elsewhere `sudo` is tried).
fn ensure_browser() -> Result<()> {
    let present = |p: &str| std::path::Path::new(p).exists();
    if present("/usr/bin/chromedriver") && present("/usr/bin/chromium") {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let apt = |args: &[&str]| {
        let mut c = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    step("apt-get update", &mut apt(&["update", "-q"]))?;
    step(
        "install chromium",
        &mut apt(&["install", "-y", "-q", "chromium", "chromium-driver"]),
    )
}

fn step(name: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("\n=== {name}: {cmd:?}");
    let status = cmd.status().with_context(|| format!("cannot run {name}"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(())
}
