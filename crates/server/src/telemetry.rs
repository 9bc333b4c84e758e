//! Logs and traces: the process-wide `tracing` subscriber.
//!
//! [`init`] installs a fmt layer (stderr, filtered by `RUST_LOG`, default
//! `info`) and, only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, a `tracing-opentelemetry`
//! layer that exports spans over OTLP HTTP/protobuf through a batch span
//! processor. Without an endpoint no OpenTelemetry code runs at all, and the
//! per-call spans of the engine (at `DEBUG`) are disabled at their callsite.
//!
//! The HTTP span of every request ([`HttpMakeSpan`]) carries the
//! `x-request-id` as `request_id`, so log lines written while serving a
//! request and the exported span share that id.

use std::fmt;
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Key, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter};
use opentelemetry_sdk::Resource;
use tower_http::trace::{DefaultOnResponse, MakeSpan, OnResponse};
use tracing::field::Empty;
use tracing::{Level, Span, Subscriber};
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Default OTLP request timeout, as in the OpenTelemetry spec.
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Keeps the OpenTelemetry pipeline alive; dropping it flushes the spans
/// still queued and shuts the exporter down (call it at graceful shutdown).
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether spans are being exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("batchgate: flushing traces failed: {e}");
            }
        }
    }
}

/// The OTLP settings read from the environment (the standard `OTEL_*`
/// variables; everything else the exporter reads itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OtlpSettings {
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or else `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: Option<String>,
    /// `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` or else `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub protocol: Option<String>,
    /// `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
    pub disabled: bool,
    /// `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` / `OTEL_EXPORTER_OTLP_TIMEOUT` (ms).
    pub timeout: Option<Duration>,
}

impl OtlpSettings {
    /// Reads the process environment.
    pub fn from_env() -> OtlpSettings {
        OtlpSettings::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads variables through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> OtlpSettings {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let either = |a: &str, b: &str| get(a).or_else(|| get(b));
        OtlpSettings {
            endpoint: either(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "OTEL_EXPORTER_OTLP_ENDPOINT",
            ),
            protocol: either(
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ),
            disabled: get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
                || get("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none")),
            timeout: either(
                "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
                "OTEL_EXPORTER_OTLP_TIMEOUT",
            )
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis),
        }
    }

    /// Whether spans are exported at all.
    pub fn enabled(&self) -> bool {
        self.endpoint.is_some() && !self.disabled
    }
}

/// Installs the global subscriber (see the module docs). Call once, before
/// anything logs; keep the guard until the process ends.
pub fn init() -> TelemetryGuard {
    let settings = OtlpSettings::from_env();
    let mut warning = None;
    let otel = match otlp_exporter(&settings) {
        Ok(Some(exporter)) => Some(otel_layer_with(exporter)),
        Ok(None) => None,
        Err(e) => {
            warning = Some(format!("OpenTelemetry export disabled: {e}"));
            None
        }
    };
    let (layer, provider) = match otel {
        Some((layer, provider)) => (Some(layer), Some(provider)),
        None => (None, None),
    };
    let installed = tracing_subscriber::registry()
        .with(fmt_layer())
        .with(layer)
        .try_init();
    if let Err(e) = installed {
        eprintln!("batchgate: cannot install the log subscriber: {e}");
    }
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    if let Some(p) = settings
        .protocol
        .as_deref()
        .filter(|p| *p != "http/protobuf")
    {
        if settings.enabled() {
            tracing::warn!(
                protocol = p,
                "only the http/protobuf OTLP protocol is supported; using it"
            );
        }
    }
    TelemetryGuard { provider }
}

/// The log layer: human-readable lines on stderr, filtered by `RUST_LOG`
/// (default `info`), coloured only where [`colour`] says so.
pub fn fmt_layer<S>() -> impl Layer<S> + Send + Sync
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,opentelemetry=warn"));
    tracing_subscriber::fmt::layer()
        .with_ansi(colour(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .with_writer(std::io::stderr)
        .with_filter(filter)
}

/// Whether log lines carry ANSI colours: only on a terminal, and never when
/// `NO_COLOR` is set to anything but the empty string (no-color.org).
/// Escape codes in a log file or a collector's pipe are noise.
pub fn colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// The OTLP HTTP/protobuf exporter the settings ask for, or `None` when
/// export is off.
pub fn otlp_exporter(
    settings: &OtlpSettings,
) -> Result<Option<opentelemetry_otlp::SpanExporter>, String> {
    if !settings.enabled() {
        return Ok(None);
    }
    let client = ExportClient::new(settings.timeout.unwrap_or(DEFAULT_EXPORT_TIMEOUT))?;
    opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_http_client(client)
        .build()
        .map(Some)
        .map_err(|e| e.to_string())
}

/// What reaches OpenTelemetry: spans and events at `INFO` and above, the
/// engine's per-attempt upstream spans (`DEBUG`), and nothing from the
/// OpenTelemetry crates themselves.
pub fn otel_filter() -> Targets {
    Targets::new()
        .with_default(Level::INFO)
        .with_target("batchgate_engine::batch::upstream", Level::DEBUG)
        .with_target("opentelemetry", LevelFilter::OFF)
}

/// A `tracing-opentelemetry` layer (filtered by [`otel_filter`]) sending
/// spans through a batch span processor to `exporter`, and the provider to
/// flush or shut down. Tests pass the SDK's in-memory exporter.
pub fn otel_layer_with<S, E>(exporter: E) -> (Box<dyn Layer<S> + Send + Sync>, SdkTracerProvider)
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    E: SpanExporter + 'static,
{
    let provider = SdkTracerProvider::builder()
        .with_resource(resource())
        .with_batch_exporter(exporter)
        .build();
    let tracer = provider.tracer("batchgate");
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
        .with_filter(otel_filter());
    (Box::new(layer), provider)
}

/// `service.name` = `batchgate` unless `OTEL_SERVICE_NAME` or
/// `OTEL_RESOURCE_ATTRIBUTES` names the service; `service.version`.
fn resource() -> Resource {
    let named = Resource::builder()
        .build()
        .get(&Key::new("service.name"))
        .is_some_and(|v| !v.as_str().starts_with("unknown_service"));
    let builder = Resource::builder()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if named {
        builder.build()
    } else {
        builder.with_service_name("batchgate").build()
    }
}

/// The OTLP exporter's HTTP client: the workspace's reqwest on a small
/// runtime of its own, so exports work from the batch processor's thread
/// and still complete while the main runtime shuts down.
#[derive(Debug)]
struct ExportClient {
    client: reqwest::Client,
    runtime: Option<tokio::runtime::Runtime>,
}

impl ExportClient {
    fn new(timeout: Duration) -> Result<ExportClient, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-export")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the export runtime: {e}"))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot build the export HTTP client: {e}"))?;
        Ok(ExportClient {
            client,
            runtime: Some(runtime),
        })
    }
}

impl Drop for ExportClient {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ExportClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let runtime = self.runtime.as_ref().ok_or("export client is shut down")?;
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let answer = runtime.spawn(async move {
            let response = client.execute(request).await?;
            let (status, headers) = (response.status(), response.headers().clone());
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, body))
        });
        let (status, headers, body) = answer.await??;
        let mut response = http::Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

/// Makes the server span of an HTTP request: `{method} {route}`, kind
/// server, with `http.request.method`, `url.path`, `http.route` (when a
/// route matched) and `request_id` (the `x-request-id` set before it).
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpMakeSpan;

impl<B> MakeSpan<B> for HttpMakeSpan {
    fn make_span(&mut self, req: &http::Request<B>) -> Span {
        let route = req
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map(axum::extract::MatchedPath::as_str);
        let request_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok());
        tracing::info_span!(
            "http_request",
            otel.name = %SpanName(req.method().as_str(), route),
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = req.method().as_str(),
            url.path = req.uri().path(),
            http.route = route,
            request_id = request_id,
            http.response.status_code = Empty,
            error.type = Empty,
        )
    }
}

/// `{method} {route}`, or `{method}` alone when no route matched.
struct SpanName<'a>(&'a str, Option<&'a str>);

impl fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(route) => write!(f, "{} {route}", self.0),
            None => f.write_str(self.0),
        }
    }
}

/// Records `http.response.status_code` (and the error status for a 5xx) on
/// the request's span, then logs like tower-http's default.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpOnResponse;

impl<B> OnResponse<B> for HttpOnResponse {
    fn on_response(self, response: &http::Response<B>, latency: Duration, span: &Span) {
        let status = response.status();
        span.record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "error");
            span.record("error.type", status.as_str());
        }
        DefaultOnResponse::default().on_response(response, latency, span);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> OtlpSettings {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        OtlpSettings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn no_endpoint_means_no_exporter() {
        let s = settings(&[
            ("OTEL_SERVICE_NAME", "x"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "  "),
        ]);
        assert!(!s.enabled());
        assert!(otlp_exporter(&s).unwrap().is_none());
        assert!(!TelemetryGuard::default().exporting());
    }

    #[test]
    fn endpoint_builds_an_exporter_unless_disabled() {
        let s = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")]);
        assert!(s.enabled());
        assert!(otlp_exporter(&s).unwrap().is_some());
        let off = settings(&[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://127.0.0.1:4318/v1/traces",
            ),
            ("OTEL_TRACES_EXPORTER", "none"),
        ]);
        assert!(!off.enabled());
        assert!(otlp_exporter(&off).unwrap().is_none());
        let timed = settings(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")]);
        assert_eq!(timed.timeout, Some(Duration::from_millis(2500)));
    }

    #[test]
    fn span_names_follow_http_semconv() {
        assert_eq!(
            SpanName("GET", Some("/v1/files/{file_id}")).to_string(),
            "GET /v1/files/{file_id}"
        );
        assert_eq!(SpanName("POST", None).to_string(), "POST");
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(true, Some(OsStr::new("1"))));
        assert!(!colour(false, None));
    }
}
