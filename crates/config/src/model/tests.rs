#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::Router;

const PROVIDERS: &[&str] = &["hosted_vllm"];

fn no_env(_: &str) -> Option<String> {
    None
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_yaml(text, PROVIDERS, &no_env)
}

#[test]
fn the_seed_config_works_as_written() {
    let cfg = parse(
        "model_list:\n- model_name: my-vllm-model\n  litellm_params:\n    model: hosted_vllm/meta-llama/Llama-2-7b-chat-hf\n    api_base: http://localhost:8000 # your vLLM server\n",
    )
    .unwrap();
    let d = &cfg.deployments[0];
    assert_eq!(d.model_name, "my-vllm-model");
    assert_eq!(d.provider, "hosted_vllm");
    assert_eq!(d.served_model, "meta-llama/Llama-2-7b-chat-hf");
    assert_eq!(
        d.url("/chat/completions"),
        "http://localhost:8000/v1/chat/completions"
    );
    assert_eq!(cfg.general.max_file_size_mb, 512);
}

#[test]
fn api_base_with_or_without_v1_means_the_same_server() {
    for base in [
        "http://h:8000",
        "http://h:8000/",
        "http://h:8000/v1",
        "http://h:8000/v1/",
    ] {
        let cfg = parse(&format!(
            "model_list:\n- model_name: m\n  litellm_params:\n    model: hosted_vllm/x\n    api_base: {base}\n"
        ))
        .unwrap();
        assert_eq!(cfg.deployments[0].api_base, "http://h:8000", "{base}");
    }
}

#[test]
fn unknown_provider_names_the_field_path() {
    let err = parse(
        "model_list:\n- model_name: a\n  litellm_params: {model: hosted_vllm/x, api_base: 'http://a'}\n- model_name: b\n  litellm_params: {model: foo/bar, api_base: 'http://b'}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("model_list[1].litellm_params.model: unknown provider \"foo\""),
        "{err}"
    );
}

#[test]
fn type_errors_name_the_field_path() {
    let err = parse(
        "model_list:\n- model_name: a\n  litellm_params: {model: hosted_vllm/x, api_base: 'http://a', max_parallel_requests: lots}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("model_list[0].litellm_params.max_parallel_requests"),
        "{err}"
    );
}

#[test]
fn os_environ_values_and_env_fallbacks_are_resolved() {
    let env = |name: &str| match name {
        "MY_KEY" => Some("sk-from-env".to_string()),
        "HOSTED_VLLM_API_BASE" => Some("http://fallback:9000/v1".to_string()),
        "HOSTED_VLLM_API_KEY" => Some("vllm-key".to_string()),
        _ => None,
    };
    let cfg = Config::from_yaml(
        "general_settings:\n  master_key: os.environ/MY_KEY\nmodel_list:\n- model_name: m\n  litellm_params:\n    model: hosted_vllm/x\n",
        PROVIDERS,
        &env,
    )
    .unwrap();
    assert_eq!(cfg.general.master_key.as_deref(), Some("sk-from-env"));
    assert_eq!(cfg.deployments[0].api_base, "http://fallback:9000");
    assert_eq!(cfg.deployments[0].api_key.as_deref(), Some("vllm-key"));

    let err = Config::from_yaml(
        "general_settings:\n  master_key: os.environ/MISSING\n",
        PROVIDERS,
        &env,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("general_settings.master_key: environment variable MISSING"),
        "{err}"
    );
}

#[test]
fn missing_api_base_is_reported() {
    let err = parse("model_list:\n- model_name: m\n  litellm_params:\n    model: hosted_vllm/x\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("model_list[0].litellm_params.api_base"),
        "{err}"
    );
}

#[test]
fn replicas_share_a_model_name_and_are_picked_in_turn() {
    let cfg = parse(
        "model_list:\n- model_name: m\n  litellm_params: {model: hosted_vllm/x, api_base: 'http://a'}\n- model_name: m\n  litellm_params: {model: hosted_vllm/x, api_base: 'http://b'}\n- model_name: other\n  litellm_params: {model: hosted_vllm/y, api_base: 'http://c'}\n",
    )
    .unwrap();
    let router = Router::new(cfg.deployments);
    assert_eq!(router.group("m").map(|g| g.len()), Some(2));
    let first = router.pick("m").unwrap().api_base.clone();
    let second = router.pick("m").unwrap().api_base.clone();
    assert_ne!(first, second);
    assert_eq!(router.sole_model(), None);
    let d = router.pick("other").unwrap();
    assert_eq!(
        router.by_tag(&Router::tag_of(&d)).unwrap().api_base,
        "http://c"
    );
    assert_eq!(router.model_names(), ["m".to_string(), "other".to_string()]);
}

#[test]
fn extra_params_and_model_info_are_kept() {
    let cfg = parse(
        "model_list:\n- model_name: m\n  litellm_params: {model: hosted_vllm/x, api_base: 'http://a', rpm: 10}\n  model_info: {input_cost_per_token: 0.000001, id: dep-1}\n",
    )
    .unwrap();
    let d = &cfg.deployments[0];
    assert_eq!(d.id, "dep-1");
    assert!(d.extra_params.contains_key("rpm"));
    assert!(d.model_info.contains_key("input_cost_per_token"));
}

#[test]
fn bad_completion_window_is_rejected() {
    let err = parse("batch_settings:\n  completion_windows: ['24h', 'soon']\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("batch_settings.completion_windows[1]"),
        "{err}"
    );
    assert_eq!(window_seconds("24h"), Some(86_400));
    assert_eq!(window_seconds("30s"), Some(30));
    assert_eq!(window_seconds("h"), None);
}

#[test]
fn server_settings_default_and_are_range_checked() {
    let cfg = parse("").unwrap();
    assert_eq!(cfg.server.header_read_timeout_seconds, 30.0);
    assert_eq!(cfg.server.keep_alive_timeout_seconds, 75.0);
    assert_eq!(cfg.server.max_connections, 4096);
    let cfg = parse("server_settings:\n  header_read_timeout_seconds: 0.5\n  max_connections: 2\n")
        .unwrap();
    assert_eq!(
        cfg.server.header_read_timeout(),
        std::time::Duration::from_millis(500)
    );
    assert_eq!(cfg.server.max_connections, 2);
    for (yaml, field) in [
        (
            "header_read_timeout_seconds: 0",
            "header_read_timeout_seconds",
        ),
        (
            "header_read_timeout_seconds: -1",
            "header_read_timeout_seconds",
        ),
        (
            "header_read_timeout_seconds: .nan",
            "header_read_timeout_seconds",
        ),
        (
            "keep_alive_timeout_seconds: 1e9",
            "keep_alive_timeout_seconds",
        ),
        ("max_connections: 0", "max_connections"),
        ("max_connections: 2000000", "max_connections"),
    ] {
        let err = parse(&format!("server_settings:\n  {yaml}\n"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("server_settings.{field}")),
            "{err}"
        );
    }
}

#[test]
fn concurrency_is_adaptive_by_default_and_max_parallel_requests_caps_it() {
    let cfg = parse(
        "model_list:\n- model_name: a\n  litellm_params: {model: hosted_vllm/x, api_base: 'http://a'}\n- model_name: b\n  litellm_params: {model: hosted_vllm/x, api_base: 'http://b', max_parallel_requests: 32, batch_priority: 10}\n- model_name: c\n  litellm_params: {model: hosted_vllm/x, api_base: 'http://c', adaptive_concurrency: false}\n",
    )
    .unwrap();
    let [a, b, c] = &cfg.deployments[..] else {
        panic!("three deployments");
    };
    assert!(a.adaptive_concurrency && b.adaptive_concurrency);
    assert_eq!(a.max_parallel_requests, BatchSettings::ADAPTIVE_CEILING);
    assert_eq!(a.batch_priority, None);
    assert_eq!((b.max_parallel_requests, b.batch_priority), (32, Some(10)));
    assert!(!c.adaptive_concurrency);
    assert_eq!(c.max_parallel_requests, 64);
    // Neither key leaks into the params passed on.
    assert!(b.extra_params.is_empty(), "{:?}", b.extra_params);
}

#[test]
fn batch_settings_set_the_concurrency_defaults() {
    let cfg = parse(
        "model_list:\n- model_name: a\n  litellm_params: {model: hosted_vllm/x, api_base: 'http://a'}\n- model_name: b\n  litellm_params: {model: hosted_vllm/x, api_base: 'http://b', adaptive_concurrency: true}\nbatch_settings: {adaptive_concurrency: false, default_max_parallel_requests: 8}\n",
    )
    .unwrap();
    let [a, b] = &cfg.deployments[..] else {
        panic!("two deployments");
    };
    assert_eq!(
        (a.adaptive_concurrency, a.max_parallel_requests),
        (false, 8)
    );
    assert_eq!((b.adaptive_concurrency, b.max_parallel_requests), (true, 8));
    let err = parse("batch_settings: {default_max_parallel_requests: 0}\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("batch_settings.default_max_parallel_requests"),
        "{err}"
    );
    let err = parse(
        "model_list:\n- model_name: a\n  litellm_params: {model: hosted_vllm/x, api_base: 'http://a', batch_priority: low}\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("model_list[0].litellm_params.batch_priority"),
        "{err}"
    );
}

#[test]
fn database_url_comes_from_the_config_or_a_postgres_database_url() {
    let pg = "postgres://gw@db:5432/batchgate";
    let from = |yaml: &str, env_url: Option<&str>| {
        let env = move |name: &str| {
            (name == "DATABASE_URL")
                .then(|| env_url.map(str::to_string))
                .flatten()
        };
        Config::from_yaml(yaml, PROVIDERS, &env).map(|c| c.general.database_url)
    };
    assert_eq!(
        from("", None).unwrap(),
        None,
        "the embedded store by default"
    );
    assert_eq!(from("", Some(pg)).unwrap().as_deref(), Some(pg));
    let own = "general_settings:\n  database_url: postgresql://other/db\n";
    assert_eq!(
        from(own, Some(pg)).unwrap().as_deref(),
        Some("postgresql://other/db"),
        "the config wins"
    );
    assert_eq!(
        from("", Some("sqlite:///tmp/x.db")).unwrap(),
        None,
        "a DATABASE_URL for something else is left alone"
    );
    let err = from("general_settings:\n  database_url: mysql://h/db\n", None)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("general_settings.database_url: must be a postgres://"),
        "{err}"
    );
    assert_eq!(
        from("general_settings:\n  database_url: ''\n", None).unwrap(),
        None
    );
}
