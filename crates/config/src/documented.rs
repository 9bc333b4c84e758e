//! docs/configuration.md lists every key the config reads: a key added
//! here without its row there fails this test.

use serde_json::Value;

use crate::{BatchSettings, GeneralSettings, ServerSettings};

/// The `litellm_params` keys `raw::RawParams` reads by name.
const LITELLM_PARAMS: [&str; 7] = [
    "model",
    "api_base",
    "api_key",
    "max_parallel_requests",
    "timeout",
    "batch_api",
    "endpoints",
];

fn docs() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The text of the section whose heading starts with `## heading`.
fn section<'a>(docs: &'a str, heading: &str) -> &'a str {
    let start = docs.find(&format!("## {heading}")).unwrap_or(docs.len());
    let rest = &docs[start..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    &rest[..end]
}

fn keys_of(value: impl serde::Serialize) -> Vec<String> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

#[test]
fn every_settings_key_has_a_row() {
    let docs = docs();
    assert!(!docs.is_empty(), "docs/configuration.md not found");
    let sections = [
        ("`general_settings`", keys_of(GeneralSettings::default())),
        ("`batch_settings`", keys_of(BatchSettings::default())),
        ("`server_settings`", keys_of(ServerSettings::default())),
    ];
    for (heading, keys) in sections {
        assert!(keys.len() >= 3, "{heading}: {keys:?}");
        let text = section(&docs, heading);
        for key in keys {
            assert!(
                text.contains(&format!("| `{key}` |")),
                "docs/configuration.md, section {heading}, has no row for `{key}`"
            );
        }
    }
    let models = section(&docs, "`model_list[]`");
    for key in LITELLM_PARAMS {
        assert!(
            models.contains(&format!("`litellm_params.{key}`")),
            "docs/configuration.md lists no `litellm_params.{key}`"
        );
    }
}
