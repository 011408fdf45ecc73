//! The image formats imgate can produce, named by URL extension.

use crate::ContractError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    Png,
    Jpeg,
    Webp,
}

impl ImageFormat {
    pub const ALL: [ImageFormat; 3] = [Self::Png, Self::Jpeg, Self::Webp];

    /// Parses a URL extension. `jpeg` is accepted but `jpg` is canonical.
    pub fn from_extension(ext: &str) -> Result<Self, ContractError> {
        match ext {
            "png" => Ok(Self::Png),
            "jpg" | "jpeg" => Ok(Self::Jpeg),
            "webp" => Ok(Self::Webp),
            other => Err(ContractError::UnknownFormat {
                given: other.chars().take(16).collect(),
                allowed: "png, jpg or webp",
            }),
        }
    }

    /// The canonical extension, used in object keys and URLs.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Webp => "webp",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Webp => "image/webp",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_round_trips() {
        for f in ImageFormat::ALL {
            assert_eq!(ImageFormat::from_extension(f.extension()), Ok(f));
        }
        assert_eq!(ImageFormat::from_extension("jpeg"), Ok(ImageFormat::Jpeg));
        assert!(ImageFormat::from_extension("gif").is_err());
    }
}
