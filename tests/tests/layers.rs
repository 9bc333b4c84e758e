//! The workspace's layering, enforced: each crate may depend (normal and
//! build dependencies) only on the batchgate crates its row allows, every
//! crate lives in `crates/<role>` as `batchgate-<role>`, and a crate nobody
//! listed fails the test until it is given a row. `docs/architecture.md`
//! draws the same table.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Package → the workspace packages it may depend on (dev-dependencies are
/// free: tests may reach anywhere).
const ALLOWED: &[(&str, &[&str])] = &[
    ("batchgate-core", &[]),
    ("batchgate-ids", &[]),
    ("batchgate-mock-vllm", &[]),
    ("batchgate-cli", &[]),
    ("batchgate-console", &[]),
    ("batchgate-config", &["batchgate-core", "batchgate-ids"]),
    ("batchgate-store", &["batchgate-core", "batchgate-cost"]),
    (
        "batchgate-store-postgres",
        &["batchgate-core", "batchgate-cost", "batchgate-store"],
    ),
    ("batchgate-cost", &[]),
    ("batchgate-upstream-openai", &["batchgate-core"]),
    (
        "batchgate-engine",
        &[
            "batchgate-core",
            "batchgate-ids",
            "batchgate-config",
            "batchgate-store",
            "batchgate-cost",
        ],
    ),
    (
        "batchgate-provider-openai",
        &[
            "batchgate-core",
            "batchgate-ids",
            "batchgate-config",
            "batchgate-store",
            "batchgate-engine",
            "batchgate-upstream-openai",
        ],
    ),
    (
        "batchgate-provider-vllm",
        &[
            "batchgate-core",
            "batchgate-ids",
            "batchgate-config",
            "batchgate-store",
            "batchgate-engine",
            "batchgate-provider-openai",
            "batchgate-upstream-openai",
        ],
    ),
    (
        "batchgate-server",
        &[
            "batchgate-core",
            "batchgate-ids",
            "batchgate-config",
            "batchgate-store",
            "batchgate-cost",
            "batchgate-engine",
            "batchgate-console",
        ],
    ),
    (
        "batchgate",
        &[
            "batchgate-core",
            "batchgate-ids",
            "batchgate-config",
            "batchgate-store",
            "batchgate-store-postgres",
            "batchgate-engine",
            "batchgate-provider-openai",
            "batchgate-provider-vllm",
            "batchgate-upstream-openai",
            "batchgate-server",
            "batchgate-cli",
        ],
    ),
    // The harness sits on top, beside the binary: it starts the binary and
    // wires the gateway in process the way the binary does.
    (
        "batchgate-tests",
        &[
            "batchgate-mock-vllm",
            "batchgate-config",
            "batchgate-engine",
            "batchgate-provider-vllm",
            "batchgate-server",
            "batchgate-store",
        ],
    ),
    ("xtask", &["batchgate-mock-vllm"]),
];

struct Package {
    dir: String,
    deps: BTreeSet<String>,
}

fn workspace() -> BTreeMap<String, Package> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packages = meta["packages"].as_array().unwrap();
    let names: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].as_str() != Some("dev"))
                .map(|d| d["name"].as_str().unwrap().to_string())
                .filter(|n| names.contains(n))
                .collect();
            let manifest = std::path::Path::new(p["manifest_path"].as_str().unwrap());
            let dir = manifest.parent().unwrap();
            let dir = dir
                .strip_prefix(meta["workspace_root"].as_str().unwrap())
                .unwrap();
            let package = Package {
                dir: dir.to_string_lossy().into_owned(),
                deps,
            };
            (p["name"].as_str().unwrap().to_string(), package)
        })
        .collect()
}

#[test]
fn crates_depend_only_on_the_layers_below_them() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = ALLOWED
        .iter()
        .map(|(name, deps)| (*name, deps.iter().copied().collect()))
        .collect();
    let mut problems = Vec::new();
    for (name, package) in workspace() {
        let Some(ok) = allowed.get(name.as_str()) else {
            problems.push(format!(
                "{name}: not in the layering table (tests/tests/layers.rs, docs/architecture.md)"
            ));
            continue;
        };
        for dep in &package.deps {
            if !ok.contains(dep.as_str()) {
                problems.push(format!("{name} depends on {dep}, which its layer may not"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layering broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn each_crate_lives_in_the_directory_of_its_role() {
    for (name, package) in workspace() {
        let expected = match name.as_str() {
            "batchgate" => "crates/batchgate".to_string(),
            "batchgate-tests" => "tests".to_string(),
            "xtask" => "xtask".to_string(),
            other => format!("crates/{}", other.trim_start_matches("batchgate-")),
        };
        assert_eq!(package.dir, expected, "{name}");
    }
}
