//! The OpenAI error envelope: `{"error":{"message","type","param","code"}}`.

use serde::{Deserialize, Serialize};

/// An error as a client sees it: an HTTP status plus the OpenAI error body.
///
/// Every failure that reaches a client is one of these, so the four keys of
/// the envelope are always present (`param` and `code` may be `null`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// The body sent under `error`.
    pub body: ErrorBody,
    /// Seconds a client should wait before retrying (sent as `Retry-After`).
    pub retry_after: Option<u64>,
}

/// The object under the envelope's `error` key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

/// `{"error": ErrorBody}` — what goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

impl ApiError {
    /// An error with every field given.
    pub fn new(status: u16, kind: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                message: message.into(),
                kind: kind.to_string(),
                param: None,
                code: None,
            },
            retry_after: None,
        }
    }

    /// Names the request parameter at fault.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.body.param = Some(param.into());
        self
    }

    /// Sets the machine-readable code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.body.code = Some(code.into());
        self
    }

    /// 400 `invalid_request_error`.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", message)
    }

    /// 401 with code `invalid_api_key`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(401, "invalid_request_error", message).with_code("invalid_api_key")
    }

    /// 403: authenticated but not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "permission_error", message)
    }

    /// 404 for an object the caller cannot see — including forged IDs.
    pub fn not_found(object: &str, id: &str) -> Self {
        Self::new(
            404,
            "invalid_request_error",
            format!("No such {object}: '{id}'."),
        )
        .with_code("not_found")
    }

    /// 405 for a known path with the wrong method.
    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "invalid_request_error",
            "Method not allowed for this path.",
        )
        .with_code("method_not_allowed")
    }

    /// 409: the object is not in a state that allows this.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(409, "invalid_request_error", message).with_code("conflict")
    }

    /// 413 for an upload over the limit.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "invalid_request_error", message).with_code("file_too_large")
    }

    /// 500: our fault. The message should not leak internals.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "server_error", message)
    }

    /// 502: the upstream failed or answered something unusable.
    pub fn bad_gateway(message: impl Into<String>) -> Self {
        Self::new(502, "upstream_error", message)
    }

    /// 503: a dependency (store, upstream) is unavailable right now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "server_error", message)
    }

    /// The wire form.
    pub fn envelope(&self) -> ErrorEnvelope {
        ErrorEnvelope {
            error: self.body.clone(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status, self.body.kind, self.body.message
        )
    }
}

impl std::error::Error for ApiError {}

impl ErrorBody {
    /// Reads an upstream error body leniently: OpenAI's envelope, vLLM's
    /// (whose `code` is an integer), or vLLM's older flat `{"object":"error"}`.
    /// Integer codes become strings, so the result is always contract-shaped.
    pub fn from_upstream(value: &serde_json::Value) -> Option<ErrorBody> {
        let inner = match value.get("error") {
            Some(e @ serde_json::Value::Object(_)) => e,
            Some(serde_json::Value::String(s)) => {
                return Some(ErrorBody {
                    message: s.clone(),
                    kind: "upstream_error".into(),
                    param: None,
                    code: None,
                })
            }
            _ if value.get("object").and_then(|o| o.as_str()) == Some("error") => value,
            _ => return None,
        };
        let text = |key: &str| match inner.get(key) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Some(ErrorBody {
            message: text("message").unwrap_or_else(|| "upstream error".into()),
            kind: text("type").unwrap_or_else(|| "upstream_error".into()),
            param: text("param"),
            code: text("code"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelope_always_has_four_keys() {
        let v =
            serde_json::to_value(ApiError::invalid_request("bad").envelope()).unwrap_or_default();
        let e = &v["error"];
        for key in ["message", "type", "param", "code"] {
            assert!(e.get(key).is_some(), "missing {key}");
        }
    }

    #[test]
    fn vllm_integer_code_becomes_string() {
        let body = json!({"error":{"message":"The model `x` does not exist.","type":"NotFoundError","param":"model","code":404}});
        let parsed = ErrorBody::from_upstream(&body);
        assert_eq!(parsed.and_then(|b| b.code), Some("404".to_string()));
    }

    #[test]
    fn old_flat_vllm_error_is_read() {
        let body = json!({"object":"error","message":"boom","type":"BadRequestError","param":null,"code":400});
        let parsed = ErrorBody::from_upstream(&body);
        assert_eq!(parsed.map(|b| b.message), Some("boom".to_string()));
    }
}
