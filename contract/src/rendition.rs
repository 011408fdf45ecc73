//! Renditions: `GET /r/{preset}/{source-key}[?format=…]`, a resized copy of the
//! original stored at `originals/{source-key}`.
//!
//! The output format is the `format` parameter (`jpg`, `png`, `webp`, or `auto`
//! to pick from the `Accept` header), else the source key's own extension, else
//! JPEG. (AVIF joins when the origin can encode it; until then `auto` never
//! promises what the origin cannot make.) The signature covers the URL as written (`format=auto` included), so
//! one signed URL serves every browser; the object key uses the format actually made.

use crate::{ContractError, ImageFormat, ObjectKey, Query, limits};

/// Where uploaded originals live in the bucket.
pub const ORIGINALS_PREFIX: &str = "originals/";
/// The only parameter a rendition URL takes besides `k` and `s`.
pub const FORMAT_PARAM: &str = "format";

/// How a preset fits the original into its box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Fill the box exactly, cropping the overflow (thumbnails).
    Cover,
    /// Fit inside the box, keeping the whole picture; never enlarge.
    Contain,
}

/// A named rendition size.
#[derive(Debug, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub width: u32,
    pub height: u32,
    pub fit: Fit,
    /// JPEG and WebP quality: small images show artefacts less.
    pub quality: u8,
}

/// The presets every deployment has.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "thumbnail",
        width: 400,
        height: 400,
        fit: Fit::Cover,
        quality: 78,
    },
    Preset {
        name: "small",
        width: 800,
        height: 600,
        fit: Fit::Contain,
        quality: 80,
    },
    Preset {
        name: "medium",
        width: 2000,
        height: 2000,
        fit: Fit::Contain,
        quality: 84,
    },
    Preset {
        name: "large",
        width: 4000,
        height: 4000,
        fit: Fit::Contain,
        quality: 86,
    },
];

impl Preset {
    pub fn named(name: &str) -> Result<&'static Preset, ContractError> {
        PRESETS
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| ContractError::UnknownPreset(name.chars().take(64).collect()))
    }
}

/// The format a rendition URL asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatChoice {
    Fixed(ImageFormat),
    /// The best the client accepts, from its `Accept` header.
    Auto,
}

/// A parsed rendition request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenditionRequest {
    pub preset: &'static Preset,
    /// The original's key below [`ORIGINALS_PREFIX`], e.g. `users/42/beach.jpg`.
    pub source: String,
    pub format: FormatChoice,
    pub query: Query,
}

/// What a rendition request resolves to for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub format: ImageFormat,
    pub key: ObjectKey,
    /// The answer depends on `Accept`: caches must key on it.
    pub vary_accept: bool,
}

impl RenditionRequest {
    pub(crate) fn parse(rest: &str, query: &str) -> Result<Self, ContractError> {
        let (preset, source) = rest
            .split_once('/')
            .ok_or_else(|| ContractError::BadPath("expected /r/{preset}/{source-key}".into()))?;
        let preset = Preset::named(preset)?;
        check_source_key(source)?;
        let query = Query::parse(query)?;
        if let Some(other) = query.params.keys().find(|name| *name != FORMAT_PARAM) {
            return Err(ContractError::RenditionParam(other.clone()));
        }
        let format = match query.params.get(FORMAT_PARAM).map(String::as_str) {
            Some("auto") => FormatChoice::Auto,
            Some(ext) => FormatChoice::Fixed(ImageFormat::from_extension(ext).map_err(|_| {
                ContractError::UnknownFormat {
                    given: ext.chars().take(16).collect(),
                    allowed: "jpg, png, webp or auto",
                }
            })?),
            None => FormatChoice::Fixed(format_of_source(source)),
        };
        Ok(Self {
            preset,
            source: source.to_string(),
            format,
            query,
        })
    }

    /// The canonical path.
    pub fn path(&self) -> String {
        format!("/r/{}/{}", self.preset.name, self.source)
    }

    /// Where the original is stored.
    pub fn source_key(&self) -> ObjectKey {
        ObjectKey::for_original(&self.source)
    }

    /// The format, object key and caching rule for a client sending `accept`.
    pub fn resolve(&self, accept: Option<&str>) -> Resolved {
        let (format, vary_accept) = match self.format {
            FormatChoice::Fixed(format) => (format, false),
            FormatChoice::Auto => (negotiate(accept.unwrap_or("")), true),
        };
        Resolved {
            format,
            key: ObjectKey::for_rendition(self.preset, &self.source, format),
            vary_accept,
        }
    }

    /// The origin's internal URL for one resolved format: never `auto`, so the
    /// origin makes exactly the object the edge looked for.
    pub fn origin_path(&self, format: ImageFormat) -> String {
        format!("{}?{FORMAT_PARAM}={}", self.path(), format.extension())
    }
}

/// Picks WebP, then JPEG: two answers per URL at most, so caches keyed on the
/// normalised choice stay effective. `image/*` alone gets JPEG.
pub fn negotiate(accept: &str) -> ImageFormat {
    let accepts = |wanted: &str| {
        accept.split(',').any(|range| {
            let mut parts = range.split(';').map(str::trim);
            parts.next().is_some_and(|t| t.eq_ignore_ascii_case(wanted))
                && !parts.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                })
        })
    };
    if accepts("image/webp") {
        ImageFormat::Webp
    } else {
        ImageFormat::Jpeg
    }
}

/// The output format when the URL does not say: the source's own, if imgate
/// can write it (a `.heic` original gets a JPEG).
fn format_of_source(source: &str) -> ImageFormat {
    let name = source.rsplit('/').next().unwrap_or(source);
    name.rsplit_once('.')
        .and_then(|(_, ext)| ImageFormat::from_extension(&ext.to_ascii_lowercase()).ok())
        .unwrap_or(ImageFormat::Jpeg)
}

/// Source keys become object keys under two prefixes, so they are kept to
/// segments of `[A-Za-z0-9._-]` that are never empty and never start with a dot:
/// no `..`, no `//`, no percent-escapes, nothing that needs quoting anywhere.
pub fn check_source_key(source: &str) -> Result<(), ContractError> {
    let bad = |why: &str| {
        Err(ContractError::BadPath(format!(
            "source keys are 1-{} bytes of '/'-separated segments of letters, digits, '.', '-' and '_' ({why})",
            limits::MAX_SOURCE_KEY_LEN
        )))
    };
    if source.is_empty() || source.len() > limits::MAX_SOURCE_KEY_LEN {
        return bad("wrong length");
    }
    for segment in source.split('/') {
        if segment.is_empty() {
            return bad("empty segment");
        }
        if segment.starts_with('.') {
            return bad("segment starts with '.'");
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return bad("character not allowed");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Route, route};

    fn rendition(path: &str, query: &str) -> Result<RenditionRequest, ContractError> {
        match route::parse("GET", path, query)? {
            Route::Rendition(r) => Ok(r),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn format_comes_from_the_parameter_then_the_source() {
        let cases = [
            ("/r/thumbnail/a/b.png", "", ImageFormat::Png),
            ("/r/thumbnail/a/b.JPEG", "", ImageFormat::Jpeg),
            ("/r/thumbnail/a/b.heic", "", ImageFormat::Jpeg),
            ("/r/thumbnail/a/b", "", ImageFormat::Jpeg),
            ("/r/small/a/b.png", "format=webp", ImageFormat::Webp),
        ];
        for (path, query, want) in cases {
            let r = rendition(path, query).unwrap();
            let resolved = r.resolve(Some("image/avif,image/webp"));
            assert_eq!(resolved.format, want, "{path}?{query}");
            assert!(!resolved.vary_accept);
        }
    }

    #[test]
    fn auto_negotiates_and_varies() {
        let r = rendition("/r/medium/users/42/beach.jpg", "format=auto").unwrap();
        let chrome = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
        let cases = [
            (Some(chrome), ImageFormat::Webp),
            (Some("image/webp,*/*"), ImageFormat::Webp),
            (Some("image/webp;q=0, image/*"), ImageFormat::Jpeg),
            (Some("IMAGE/WEBP"), ImageFormat::Webp),
            (Some("image/*"), ImageFormat::Jpeg),
            (None, ImageFormat::Jpeg),
        ];
        for (accept, want) in cases {
            let resolved = r.resolve(accept);
            assert_eq!(resolved.format, want, "{accept:?}");
            assert!(resolved.vary_accept);
            assert_eq!(
                resolved.key.as_str(),
                format!("renditions/medium/users/42/beach.jpg.{}", want.extension())
            );
        }
        assert_eq!(
            r.origin_path(ImageFormat::Webp),
            "/r/medium/users/42/beach.jpg?format=webp"
        );
        assert_eq!(r.source_key().as_str(), "originals/users/42/beach.jpg");
    }

    #[test]
    fn refuses_traversal_and_strangers() {
        for (path, query, code) in [
            ("/r/thumbnail/../../secret", "", "bad-path"),
            ("/r/thumbnail/a/../secret", "", "bad-path"),
            ("/r/thumbnail/./a", "", "bad-path"),
            ("/r/thumbnail/.env", "", "bad-path"),
            ("/r/thumbnail//a", "", "bad-path"),
            ("/r/thumbnail/a/", "", "bad-path"),
            ("/r/thumbnail/", "", "bad-path"),
            ("/r/thumbnail", "", "bad-path"),
            ("/r/thumbnail/a%2F..%2Fb", "", "bad-path"),
            ("/r/thumbnail/a b", "", "bad-path"),
            ("/r/thumbnail/a\\b", "", "bad-path"),
            ("/r/huge/a.jpg", "", "unknown-preset"),
            ("/r/thumbnail/a.jpg", "format=gif", "unknown-format"),
            ("/r/thumbnail/a.jpg", "format=avif", "unknown-format"),
            ("/r/thumbnail/a.jpg", "width=9000", "rendition-param"),
            ("/r/thumbnail/a.jpg", "v=2", "rendition-param"),
            (
                "/r/thumbnail/a.jpg",
                "format=png&format=jpg",
                "duplicate-param",
            ),
        ] {
            let e = rendition(path, query).unwrap_err();
            assert_eq!(e.code(), code, "{path}?{query}: {e}");
            assert!((400..500).contains(&e.status()));
        }
        let long = format!(
            "/r/thumbnail/{}",
            "a".repeat(limits::MAX_SOURCE_KEY_LEN + 1)
        );
        assert_eq!(rendition(&long, "").unwrap_err().code(), "bad-path");
    }
}
