//! vLLM's load, read from its Prometheus `/metrics`: the gauges its
//! scheduler exports (`vllm/v1/metrics/loggers.py`), one series per engine
//! core, labelled `model_name` and `engine`.

use batchgate_core::ServerLoad;
use batchgate_upstream_openai::LoadProbe;

/// Where and how adaptive concurrency reads a vLLM server's load.
pub const LOAD_PROBE: LoadProbe = LoadProbe {
    path: "/metrics",
    parse,
};

const RUNNING: &str = "vllm:num_requests_running";
const WAITING: &str = "vllm:num_requests_waiting";
const KV_CACHE: &str = "vllm:kv_cache_usage_perc";
/// The KV-cache gauge's name before vLLM 0.9.
const KV_CACHE_OLD: &str = "vllm:gpu_cache_usage_perc";

/// One sample: the metric name, its `model_name` label, its value.
struct Sample<'a> {
    name: &'a str,
    model: Option<String>,
    value: f64,
}

/// Running and waiting requests summed over the engines serving
/// `served_model` (over every engine if no series names it: the server
/// may know the model by another of its names), and the fullest engine's
/// KV cache. `None` unless both request gauges are there.
pub fn parse(text: &str, served_model: &str) -> Option<ServerLoad> {
    let samples: Vec<Sample<'_>> = text
        .lines()
        .filter(|l| l.starts_with("vllm:"))
        .filter_map(sample)
        .collect();
    let named = samples
        .iter()
        .any(|s| s.name == RUNNING && s.model.as_deref() == Some(served_model));
    let ours = |s: &&Sample<'_>| !named || s.model.as_deref() == Some(served_model);
    let sum = |name: &str| {
        let mut found = samples.iter().filter(ours).filter(|s| s.name == name);
        let first = found.next()?.value;
        Some(found.fold(first, |acc, s| acc + s.value))
    };
    let max = |name: &str| {
        samples
            .iter()
            .filter(ours)
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .reduce(f64::max)
    };
    Some(ServerLoad {
        running: sum(RUNNING)?,
        waiting: sum(WAITING)?,
        kv_cache_usage: max(KV_CACHE).or_else(|| max(KV_CACHE_OLD)),
    })
}

/// `name{labels} value [timestamp]`; `None` for anything else.
fn sample(line: &str) -> Option<Sample<'_>> {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return None,
    };
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(inner) => {
            let end = labels_end(inner)?;
            (&inner[..end], &inner[end + 1..])
        }
        None => ("", rest),
    };
    let value: f64 = rest.split_whitespace().next()?.parse().ok()?;
    value.is_finite().then(|| Sample {
        name,
        model: label(labels, "model_name"),
        value,
    })
}

/// The index of the `}` closing a label set (quotes and escapes skipped).
fn labels_end(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match (quoted, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => quoted = !quoted,
            (false, _, '}') => return Some(i),
            _ => {}
        }
    }
    None
}

/// The unescaped value of label `key` in `a="x",b="y"`.
fn label(labels: &str, key: &str) -> Option<String> {
    let mut rest = labels;
    loop {
        let (k, after) = rest.split_once('=')?;
        let body = after.strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = body.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        if k.trim() == key {
            return Some(value);
        }
        rest = body[end + 1..].trim_start_matches(',');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped as vLLM 0.10 prints it, two engines (data parallel).
    const TWO_ENGINES: &str = r#"# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.1-8B"} 250.0
vllm:num_requests_running{engine="1",model_name="meta-llama/Llama-3.1-8B"} 6.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.1-8B"} 12.0
vllm:num_requests_waiting{engine="1",model_name="meta-llama/Llama-3.1-8B"} 0.0
vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B"} 0.93
vllm:kv_cache_usage_perc{engine="1",model_name="meta-llama/Llama-3.1-8B"} 0.1
vllm:prompt_tokens_total{engine="0",model_name="meta-llama/Llama-3.1-8B"} 1.2e+06
"#;

    #[test]
    fn sums_engines_and_takes_the_fullest_cache() {
        let load = parse(TWO_ENGINES, "meta-llama/Llama-3.1-8B");
        assert_eq!(
            load,
            Some(ServerLoad {
                running: 256.0,
                waiting: 12.0,
                kv_cache_usage: Some(0.93),
            })
        );
        // Served under an alias the labels do not show: every series counts.
        assert_eq!(parse(TWO_ENGINES, "llama").map(|l| l.running), Some(256.0));
    }

    #[test]
    fn reads_the_mock_and_older_vllm_names() {
        let text = "vllm:num_requests_running{model_name=\"m\"} 3\nvllm:num_requests_waiting{model_name=\"m\"} 1 1700000000000\nvllm:gpu_cache_usage_perc{model_name=\"m\"} 0.5\n";
        let load = parse(text, "m");
        assert_eq!(
            load,
            Some(ServerLoad {
                running: 3.0,
                waiting: 1.0,
                kv_cache_usage: Some(0.5),
            })
        );
    }

    #[test]
    fn only_the_served_model_counts_where_labels_tell() {
        let text = "vllm:num_requests_running{model_name=\"a\"} 3\nvllm:num_requests_running{model_name=\"b\\\"}x\"} 40\nvllm:num_requests_waiting{model_name=\"a\"} 0\nvllm:num_requests_waiting{model_name=\"b\\\"}x\"} 9\n";
        assert_eq!(
            parse(text, "a").map(|l| (l.running, l.waiting)),
            Some((3.0, 0.0))
        );
        assert_eq!(parse(text, "b\"}x").map(|l| l.waiting), Some(9.0));
    }

    #[test]
    fn anything_else_is_no_load() {
        for text in [
            "",
            "<html>not metrics</html>",
            "vllm:num_requests_running 3\n",
            "vllm:num_requests_running{model_name=\"m\"} NaN\nvllm:num_requests_waiting 0\n",
            "vllm:num_requests_running{model_name=\"m\" 3\nvllm:num_requests_waiting 0\n",
        ] {
            assert_eq!(parse(text, "m"), None, "{text:?}");
        }
    }
}
