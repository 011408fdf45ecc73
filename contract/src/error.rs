//! One error type for everything a request can get wrong. Each variant knows its
//! HTTP status and a stable kebab-case code, so edge and origin answer identically.

use serde::Serialize;

/// Why a request was refused. The `Display` text is safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error("no such route: {0}")]
    NotFound(String),
    #[error("method {0} not allowed; use GET or HEAD")]
    MethodNotAllowed(String),
    #[error("path is longer than {max} bytes")]
    PathTooLong { max: usize },
    #[error("malformed path: {0}")]
    BadPath(String),
    #[error("query string is longer than {max} bytes")]
    QueryTooLong { max: usize },
    #[error(
        "the parameters are longer than {max} bytes once percent-encoded (each non-ASCII byte takes 3)"
    )]
    CanonicalQueryTooLong { max: usize },
    #[error("more than {max} query parameters")]
    TooManyParams { max: usize },
    #[error("parameter {0:?} is not valid percent-encoded UTF-8")]
    BadEncoding(String),
    #[error("parameter {0:?} is given more than once")]
    DuplicateParam(String),
    #[error("parameter name {0:?} is not allowed (use letters, digits, '-' and '_', up to 64)")]
    BadParamName(String),
    #[error("unknown template {0:?}")]
    UnknownTemplate(String),
    #[error("unknown image format {given:?}; use {allowed}")]
    UnknownFormat {
        given: String,
        allowed: &'static str,
    },
    #[error("unknown rendition preset {0:?}; see /r/ in the README for the list")]
    UnknownPreset(String),
    #[error("renditions take no parameter {0:?}; only format (jpg, png, webp or auto), k and s")]
    RenditionParam(String),
    #[error("template {template:?} has no parameter {param:?}; it takes: {allowed}")]
    UnknownParam {
        template: String,
        param: String,
        allowed: String,
    },
    #[error("template {template:?} needs parameter {param:?}")]
    MissingParam { template: String, param: String },
    #[error("parameter {param:?} is longer than {max} characters")]
    ParamTooLong { param: String, max: usize },
    #[error("parameter {param:?} must be an https:// URL on one of: {allowed}")]
    UrlNotAllowed { param: String, allowed: String },
    #[error("template {0:?} has no data source; use /og/{0}.{{ext}}?params")]
    NoDataSource(String),
    #[error("this URL must be signed: add k (key id) and s (signature)")]
    MissingSignature,
    #[error("signature does not match this URL")]
    BadSignature,
    #[error("unknown signing key id {0:?}")]
    UnknownKey(String),
}

impl ContractError {
    /// A stable machine-readable code for the JSON body and for logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not-found",
            Self::MethodNotAllowed(_) => "method-not-allowed",
            Self::PathTooLong { .. } => "path-too-long",
            Self::BadPath(_) => "bad-path",
            Self::QueryTooLong { .. } | Self::CanonicalQueryTooLong { .. } => "query-too-long",
            Self::TooManyParams { .. } => "too-many-params",
            Self::BadEncoding(_) => "bad-encoding",
            Self::DuplicateParam(_) => "duplicate-param",
            Self::BadParamName(_) => "bad-param-name",
            Self::UnknownTemplate(_) => "unknown-template",
            Self::UnknownFormat { .. } => "unknown-format",
            Self::UnknownPreset(_) => "unknown-preset",
            Self::RenditionParam(_) => "rendition-param",
            Self::UnknownParam { .. } => "unknown-param",
            Self::MissingParam { .. } => "missing-param",
            Self::ParamTooLong { .. } => "param-too-long",
            Self::UrlNotAllowed { .. } => "url-not-allowed",
            Self::NoDataSource(_) => "no-data-source",
            Self::MissingSignature => "missing-signature",
            Self::BadSignature => "bad-signature",
            Self::UnknownKey(_) => "unknown-key",
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound(_)
            | Self::UnknownTemplate(_)
            | Self::UnknownPreset(_)
            | Self::NoDataSource(_) => 404,
            Self::MethodNotAllowed(_) => 405,
            Self::PathTooLong { .. } => 414,
            Self::QueryTooLong { .. } | Self::CanonicalQueryTooLong { .. } => 414,
            Self::MissingSignature | Self::BadSignature | Self::UnknownKey(_) => 403,
            _ => 400,
        }
    }

    /// The JSON body both tiers send with the status.
    pub fn body(&self) -> ErrorBody {
        ErrorBody::new(self.code(), self.to_string())
    }
}

/// `{"error": {"code": "...", "message": "..."}}` — the shape of every error imgate answers.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("two strings always serialise")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_is_a_client_error() {
        let errors = [
            ContractError::NotFound("/x".into()),
            ContractError::MethodNotAllowed("POST".into()),
            ContractError::PathTooLong { max: 1 },
            ContractError::BadSignature,
            ContractError::MissingParam {
                template: "t".into(),
                param: "p".into(),
            },
        ];
        for e in errors {
            assert!((400..500).contains(&e.status()), "{e:?}");
            let json: serde_json::Value = serde_json::from_str(&e.body().to_json()).unwrap();
            assert_eq!(json["error"]["code"], e.code());
        }
    }
}
