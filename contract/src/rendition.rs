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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preset {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub fit: Fit,
    /// JPEG and WebP quality: small images show artefacts less.
    pub quality: u8,
}

/// The seed's four, in the form `presets` / `IMGATE_PRESETS` take:
/// `name:WIDTHxHEIGHT:cover|fit:quality`, comma-separated.
pub const DEFAULT_PRESETS: &str = "thumbnail:400x400:cover:78,small:800x600:fit:80,medium:2000x2000:fit:84,large:4000x4000:fit:86";

/// The presets a deployment serves. The edge and the origin must be given the
/// same ones; changing a preset's size under its old name leaves renditions
/// already made at the old size, so give a new size a new name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presets(Vec<Preset>);

impl Default for Presets {
    fn default() -> Self {
        Self::parse(DEFAULT_PRESETS).expect("the default presets parse")
    }
}

impl Presets {
    /// Parses `name:WIDTHxHEIGHT:cover|fit:quality,…`; blank means the defaults.
    pub fn parse(spec: &str) -> Result<Self, String> {
        if spec.trim().is_empty() {
            return Ok(Self::default());
        }
        let mut presets: Vec<Preset> = Vec::new();
        for item in spec.split(',').map(str::trim) {
            let preset = parse_preset(item).map_err(|why| {
                format!("preset {item:?}: {why} (expected name:WIDTHxHEIGHT:cover|fit:quality)")
            })?;
            if presets.iter().any(|p| p.name == preset.name) {
                return Err(format!("preset {:?} is named twice", preset.name));
            }
            presets.push(preset);
        }
        if presets.len() > limits::MAX_PRESETS {
            return Err(format!("at most {} presets", limits::MAX_PRESETS));
        }
        Ok(Self(presets))
    }

    pub fn get(&self, name: &str) -> Result<&Preset, ContractError> {
        self.0
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| ContractError::UnknownPreset(name.chars().take(64).collect()))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Preset> {
        self.0.iter()
    }
}

fn parse_preset(item: &str) -> Result<Preset, &'static str> {
    let [name, size, fit, quality] = item.split(':').collect::<Vec<_>>()[..] else {
        return Err("four fields");
    };
    if !valid_preset_name(name) {
        return Err("names are 1-32 of a-z, 0-9 and '-'");
    }
    let side = |n: &str| {
        n.parse::<u32>()
            .ok()
            .filter(|n| (1..=limits::MAX_PRESET_SIDE).contains(n))
            .ok_or("sides are 1-8192 pixels")
    };
    let (width, height) = size.split_once('x').ok_or("size is WIDTHxHEIGHT")?;
    Ok(Preset {
        name: name.to_string(),
        width: side(width)?,
        height: side(height)?,
        fit: match fit {
            "cover" => Fit::Cover,
            "fit" => Fit::Contain,
            _ => return Err("fit is cover (crop to fill) or fit (keep all)"),
        },
        quality: quality
            .parse()
            .ok()
            .filter(|q| (1..=100).contains(q))
            .ok_or("quality is 1-100")?,
    })
}

fn valid_preset_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
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
    /// The preset's name; which presets exist is configuration ([`Presets`]).
    pub preset: String,
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
        if !valid_preset_name(preset) {
            return Err(ContractError::UnknownPreset(
                preset.chars().take(64).collect(),
            ));
        }
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
            preset: preset.to_string(),
            source: source.to_string(),
            format,
            query,
        })
    }

    /// The canonical path.
    pub fn path(&self) -> String {
        format!("/r/{}/{}", self.preset, self.source)
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
            key: ObjectKey::for_rendition(&self.preset, &self.source, format),
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
pub fn format_of_source(source: &str) -> ImageFormat {
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
    fn presets_are_configurable() {
        let defaults = Presets::default();
        let thumb = defaults.get("thumbnail").unwrap();
        assert_eq!(
            (thumb.width, thumb.height, thumb.fit, thumb.quality),
            (400, 400, Fit::Cover, 78)
        );
        assert_eq!(defaults.iter().count(), 4);
        assert_eq!(Presets::parse(" ").unwrap(), defaults);
        assert_eq!(defaults.get("huge").unwrap_err().code(), "unknown-preset");

        let custom = Presets::parse("avatar:96x96:cover:70, hero-2x:2400x1200:fit:82").unwrap();
        let hero = custom.get("hero-2x").unwrap();
        assert_eq!(
            (hero.width, hero.height, hero.fit, hero.quality),
            (2400, 1200, Fit::Contain, 82)
        );
        assert!(custom.get("thumbnail").is_err());

        for bad in [
            "avatar:96x96:cover",
            "Avatar:96x96:cover:70",
            "avatar:96:cover:70",
            "avatar:0x96:cover:70",
            "avatar:96x9000:cover:70",
            "avatar:96x96:stretch:70",
            "avatar:96x96:cover:0",
            "avatar:96x96:cover:101",
            "a:1x1:fit:1,a:2x2:fit:2",
            "a:1x1:fit:1,,b:2x2:fit:2",
        ] {
            assert!(Presets::parse(bad).is_err(), "{bad}");
        }
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
            ("/r/Huge/a.jpg", "", "unknown-preset"),
            ("/r/../a.jpg", "", "unknown-preset"),
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
