//! Everything the origin can answer besides an image, each with its status.

use imgate_contract::{ContractError, ErrorBody};

use crate::rendition::SourceError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum OriginError {
    #[error(transparent)]
    Contract(#[from] ContractError),
    #[error("this route is internal: send the edge's credential")]
    Unauthorized,
    #[error("rendering failed: {0}")]
    Render(String),
    #[error("rendering took longer than {0} seconds")]
    RenderTimeout(u64),
    #[error("the renderer is restarting; retry in a second")]
    RendererRestarting,
    #[error("the renderer is at capacity; retry in a second")]
    RendererBusy,
    #[error("the card's page crashed in the browser; retry in a second")]
    PageCrashed,
    #[error("the image store failed: {0}")]
    Store(String),
    #[error("the data source has no such record")]
    RecordNotFound,
    #[error("the data source failed: {0}")]
    DataSource(String),
    #[error("the data source's record does not fit the template: {0}")]
    BadRecord(ContractError),
    #[error("no original is stored at {0}")]
    SourceNotFound(String),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("uploads are off: the origin has no API keys (IMGATE_API_KEYS)")]
    UploadsDisabled,
    #[error("send an API key as 'Authorization: Bearer <key>'")]
    BadApiKey,
    #[error("bad upload request: {0}")]
    BadUpload(String),
    #[error("{0:?} cannot be uploaded; upload image/jpeg, image/png, image/webp or image/gif")]
    UnsupportedUpload(String),
    #[error("an upload of {bytes} bytes is not accepted; 1 to {max} bytes are")]
    UploadTooLarge { bytes: u64, max: u64 },
    #[error("the request body did not arrive within {0} seconds")]
    SlowBody(u64),
    #[error("no upload {0}")]
    UploadNotFound(String),
    #[error("upload {0} has not arrived: PUT the file to the upload URL first")]
    UploadNotReceived(String),
}

impl OriginError {
    /// Seconds a client should wait before retrying, for errors that pass.
    pub fn retry_after(&self) -> Option<u64> {
        matches!(
            self,
            Self::RendererRestarting | Self::RendererBusy | Self::PageCrashed
        )
        .then_some(1)
    }

    pub fn status(&self) -> u16 {
        match self {
            Self::Contract(e) => e.status(),
            Self::Unauthorized => 401,
            Self::Render(_) => 502,
            Self::RenderTimeout(_) => 504,
            Self::RendererRestarting | Self::RendererBusy | Self::PageCrashed => 503,
            Self::Store(_) => 502,
            Self::RecordNotFound => 404,
            Self::DataSource(_) | Self::BadRecord(_) => 502,
            Self::SourceNotFound(_) => 404,
            Self::Source(e) => e.status(),
            Self::UploadsDisabled => 403,
            Self::BadApiKey => 401,
            Self::BadUpload(_) => 400,
            Self::UnsupportedUpload(_) => 415,
            Self::UploadTooLarge { .. } => 413,
            Self::UploadNotFound(_) => 404,
            Self::SlowBody(_) => 408,
            Self::UploadNotReceived(_) => 409,
        }
    }

    pub fn body(&self) -> ErrorBody {
        match self {
            Self::Contract(e) => e.body(),
            Self::Unauthorized => ErrorBody::new("unauthorized", self.to_string()),
            Self::Render(_) => ErrorBody::new("render-failed", self.to_string()),
            Self::RenderTimeout(_) => ErrorBody::new("render-timeout", self.to_string()),
            Self::RendererRestarting => ErrorBody::new("renderer-restarting", self.to_string()),
            Self::RendererBusy => ErrorBody::new("renderer-busy", self.to_string()),
            Self::PageCrashed => ErrorBody::new("page-crashed", self.to_string()),
            Self::Store(_) => ErrorBody::new("store-failed", self.to_string()),
            Self::RecordNotFound => ErrorBody::new("record-not-found", self.to_string()),
            Self::DataSource(_) => ErrorBody::new("data-source-failed", self.to_string()),
            Self::BadRecord(_) => ErrorBody::new("bad-record", self.to_string()),
            Self::SourceNotFound(_) => ErrorBody::new("source-not-found", self.to_string()),
            Self::Source(e) => ErrorBody::new(e.code(), self.to_string()),
            Self::UploadsDisabled => ErrorBody::new("uploads-disabled", self.to_string()),
            Self::BadApiKey => ErrorBody::new("bad-api-key", self.to_string()),
            Self::BadUpload(_) => ErrorBody::new("bad-upload", self.to_string()),
            Self::UnsupportedUpload(_) => ErrorBody::new("unsupported-upload", self.to_string()),
            Self::UploadTooLarge { .. } => ErrorBody::new("upload-too-large", self.to_string()),
            Self::UploadNotFound(_) => ErrorBody::new("upload-not-found", self.to_string()),
            Self::SlowBody(_) => ErrorBody::new("body-timeout", self.to_string()),
            Self::UploadNotReceived(_) => ErrorBody::new("upload-not-received", self.to_string()),
        }
    }
}

/// An error and its sources on one line, for logs and error bodies.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
