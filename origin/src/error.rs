//! Everything the origin can answer besides an image, each with its status.

use imgate_contract::{ContractError, ErrorBody};

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
    #[error("the image store failed: {0}")]
    Store(String),
}

impl OriginError {
    pub fn status(&self) -> u16 {
        match self {
            Self::Contract(e) => e.status(),
            Self::Unauthorized => 401,
            Self::Render(_) => 502,
            Self::RenderTimeout(_) => 504,
            Self::Store(_) => 502,
        }
    }

    pub fn body(&self) -> ErrorBody {
        match self {
            Self::Contract(e) => e.body(),
            Self::Unauthorized => ErrorBody::new("unauthorized", self.to_string()),
            Self::Render(_) => ErrorBody::new("render-failed", self.to_string()),
            Self::RenderTimeout(_) => ErrorBody::new("render-timeout", self.to_string()),
            Self::Store(_) => ErrorBody::new("store-failed", self.to_string()),
        }
    }
}
