//! How the gateway drives a model's servers, for the progress view: its
//! `batchgate_deployment_*` gauges from `GET /metrics`, summed over the
//! model's deployments (replicas).

/// The gauges of one model.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Upstream {
    /// Requests the gateway may have in flight (the adaptive limit).
    pub limit: f64,
    /// Requests waiting at the servers.
    pub queue: f64,
    /// Answered requests per second.
    pub per_second: f64,
}

impl Upstream {
    /// `model`'s gauges in Prometheus text; `None` if it has none (an
    /// older gateway, or a forwarded batch).
    pub fn of_model(metrics: &str, model: &str) -> Option<Upstream> {
        let mut found = false;
        let mut u = Upstream::default();
        for line in metrics.lines() {
            let Some((name, labels, value)) = sample(line) else {
                continue;
            };
            let slot = match name {
                "batchgate_deployment_concurrency_limit" => &mut u.limit,
                "batchgate_deployment_queue_estimate" => &mut u.queue,
                "batchgate_deployment_requests_per_second" => &mut u.per_second,
                _ => continue,
            };
            if label(labels, "model").as_deref() == Some(model) {
                *slot += value;
                found = true;
            }
        }
        found.then_some(u)
    }

    /// `, upstream limit 64, queue 0` for the progress line.
    pub fn suffix(&self) -> String {
        format!(
            ", upstream limit {:.0}, queue {:.0}",
            self.limit,
            self.queue.max(0.0)
        )
    }
}

/// `name{labels} value`.
fn sample(line: &str) -> Option<(&str, &str, f64)> {
    let (name, rest) = line.split_once('{')?;
    let end = rest.rfind('}')?;
    let value = rest[end + 1..].split_whitespace().next()?.parse().ok()?;
    Some((name, &rest[..end], value))
}

/// The unescaped value of label `key` in `a="x",b="y"`.
fn label(labels: &str, key: &str) -> Option<String> {
    let mut rest = labels;
    loop {
        let (k, after) = rest.split_once('=')?;
        let mut chars = after.strip_prefix('"')?.char_indices();
        let mut value = String::new();
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
        // Past the closing quote (1 for the opening one) and the comma.
        rest = after.get(end + 2..)?.trim_start_matches(',');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = "# TYPE batchgate_deployment_concurrency_limit gauge
batchgate_deployment_concurrency_limit{deployment=\"a1\",model=\"llama\"} 120
batchgate_deployment_concurrency_limit{deployment=\"a2\",model=\"llama\"} 64
batchgate_deployment_concurrency_limit{deployment=\"b\",model=\"llama-big\"} 8
batchgate_deployment_queue_estimate{deployment=\"a1\",model=\"llama\"} 2.5
batchgate_deployment_queue_estimate{deployment=\"a2\",model=\"llama\"} 0
batchgate_deployment_requests_per_second{deployment=\"a1\",model=\"llama\"} 40.5
batchgate_lines_total{model=\"llama\",outcome=\"completed\"} 7
";

    #[test]
    fn sums_the_replicas_of_one_model() {
        let u = Upstream::of_model(METRICS, "llama");
        assert_eq!(
            u,
            Some(Upstream {
                limit: 184.0,
                queue: 2.5,
                per_second: 40.5
            })
        );
        assert_eq!(
            u.map(|u| u.suffix()).as_deref(),
            Some(", upstream limit 184, queue 2")
        );
        assert_eq!(
            Upstream::of_model(METRICS, "llama-big").map(|u| u.limit),
            Some(8.0)
        );
        assert_eq!(Upstream::of_model(METRICS, "other"), None);
        assert_eq!(Upstream::of_model("", "llama"), None);
    }

    #[test]
    fn escaped_label_values_are_matched_whole() {
        let text = "batchgate_deployment_concurrency_limit{deployment=\"x\",model=\"a\\\"b\"} 3\n";
        assert_eq!(Upstream::of_model(text, "a\"b").map(|u| u.limit), Some(3.0));
        assert_eq!(Upstream::of_model(text, "a"), None);
    }
}
