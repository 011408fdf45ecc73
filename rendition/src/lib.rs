//! Renditions of uploaded photos: check the source before decoding it, decode,
//! turn it upright, resize to the preset, encode.
//!
//! Built on photon-rs first; the benchmark against libvips
//! (`origin/benches/renditions.rs`) showed its resize was 885 of 2,042 ms for
//! the four presets (image 0.24's f32 kernels from RGBA copies), so resizing is fast_image_resize's (SIMD, RGB or
//! premultiplied RGBA, crop folded into the resize) and JPEG is jpeg-encoder's
//! with its SIMD paths; with that, photon-rs had nothing left to do.
//!
//! Colour: pixels are treated as sRGB; the source's ICC profile, if it is an
//! RGB one, is copied into JPEG and PNG renditions so wide-gamut photos keep
//! their colours in browsers that manage colour. WebP renditions carry none (libwebp's simple
//! encoder cannot), so a Display P3 photo looks slightly duller as WebP.

use std::borrow::Cow;
use std::io::Cursor;

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::{
    DynamicImage, ImageDecoder, ImageEncoder, ImageFormat as Codec, ImageReader,
    Limits as DecodeLimits,
};
use imgate_contract::{ImageFormat, Preset, rendition::Fit};

#[cfg(any(test, fuzzing))]
pub mod fuzz;

/// What a source may be. Checked before any pixel is decoded.
#[derive(Debug, Clone, Copy)]
pub struct SourceLimits {
    pub max_bytes: usize,
    /// Width × height: an image bomb declares a huge canvas in a tiny file.
    pub max_pixels: u64,
}

impl Default for SourceLimits {
    fn default() -> Self {
        Self {
            max_bytes: 50 * 1024 * 1024,
            max_pixels: 40_000_000,
        }
    }
}

/// Why a source cannot be made into a rendition: all the uploader's doing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("the original is {bytes} bytes; the limit is {max}")]
    TooManyBytes { bytes: usize, max: usize },
    #[error("the original is {width}×{height} pixels; the limit is {max} pixels")]
    TooManyPixels { width: u32, height: u32, max: u64 },
    #[error("imgate cannot read the original ({0}); upload JPEG, PNG, WebP or GIF")]
    Unsupported(&'static str),
    #[error("the original is not a readable image: {0}")]
    Corrupt(String),
}

impl SourceError {
    pub fn status(&self) -> u16 {
        match self {
            Self::TooManyBytes { .. } | Self::TooManyPixels { .. } => 413,
            Self::Unsupported(_) => 415,
            Self::Corrupt(_) => 422,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::TooManyBytes { .. } => "source-too-large",
            Self::TooManyPixels { .. } => "too-many-pixels",
            Self::Unsupported(_) => "unsupported-image",
            Self::Corrupt(_) => "corrupt-image",
        }
    }
}

/// The `image` crate's codec for one of imgate's output formats.
pub fn codec(format: ImageFormat) -> Codec {
    match format {
        ImageFormat::Jpeg => Codec::Jpeg,
        ImageFormat::Png => Codec::Png,
        ImageFormat::Webp => Codec::WebP,
    }
}

/// Identifies a source by its first bytes; the extension and the declared
/// content type are the uploader's word, not evidence.
pub fn sniff(bytes: &[u8]) -> Result<Codec, SourceError> {
    let brand = bytes.get(8..12);
    match bytes {
        [0xFF, 0xD8, 0xFF, ..] => Ok(Codec::Jpeg),
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Ok(Codec::Png),
        [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Ok(Codec::Gif),
        [
            b'R',
            b'I',
            b'F',
            b'F',
            _,
            _,
            _,
            _,
            b'W',
            b'E',
            b'B',
            b'P',
            ..,
        ] => Ok(Codec::WebP),
        [_, _, _, _, b'f', b't', b'y', b'p', ..] => Err(SourceError::Unsupported(match brand {
            Some(b"avif") | Some(b"avis") => "AVIF",
            _ => "HEIC/HEIF",
        })),
        _ => Err(SourceError::Unsupported("not an image format imgate knows")),
    }
}

/// Makes one rendition of `source`.
pub fn render(
    source: &[u8],
    preset: &Preset,
    format: ImageFormat,
    limits: SourceLimits,
) -> Result<Vec<u8>, SourceError> {
    Ok(Original::decode(source, limits)?
        .render(preset, format)?
        .bytes)
}

/// An original decoded once, upright, in 8-bit RGB (RGBA when it has
/// transparency): every preset of an upload is made from one decode.
pub struct Original {
    image: DynamicImage,
    icc: Option<Vec<u8>>,
}

/// One encoded rendition.
#[derive(Debug)]
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

impl Original {
    pub fn decode(source: &[u8], limits: SourceLimits) -> Result<Self, SourceError> {
        let (image, icc) = decode(source, limits)?;
        let image = if image.color().has_alpha() {
            DynamicImage::ImageRgba8(image.into_rgba8())
        } else {
            DynamicImage::ImageRgb8(image.into_rgb8())
        };
        Ok(Self { image, icc })
    }

    /// Upright width and height.
    pub fn dimensions(&self) -> (u32, u32) {
        (self.image.width(), self.image.height())
    }

    pub fn render(&self, preset: &Preset, format: ImageFormat) -> Result<Rendered, SourceError> {
        let image = resize(&self.image, preset)?;
        Ok(Rendered {
            bytes: encode(&image, format, preset.quality, self.icc.as_deref())?,
            width: image.width(),
            height: image.height(),
        })
    }
}

/// Scales (and for `cover`, centre-crops) to the preset.
fn resize<'a>(
    image: &'a DynamicImage,
    preset: &Preset,
) -> Result<Cow<'a, DynamicImage>, SourceError> {
    let (_, (width, height)) = geometry(image.width(), image.height(), preset);
    if (width, height) == (image.width(), image.height()) {
        return Ok(Cow::Borrowed(image));
    }
    let mut out = DynamicImage::new(width, height, image.color());
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
        // Crops the source to the output's aspect ratio around its centre:
        // `cover`'s crop, and nothing but rounding for `contain`.
        .fit_into_destination(Some((0.5, 0.5)));
    Resizer::new()
        .resize(image, &mut out, &options)
        .map_err(|e| SourceError::Corrupt(format!("cannot resize: {e}")))?;
    Ok(Cow::Owned(out))
}

/// Decodes with every check done first: size, type, then the declared
/// dimensions, all before a pixel buffer is allocated. Returns the upright image.
fn decode(
    source: &[u8],
    limits: SourceLimits,
) -> Result<(DynamicImage, Option<Vec<u8>>), SourceError> {
    if source.len() > limits.max_bytes {
        return Err(SourceError::TooManyBytes {
            bytes: source.len(),
            max: limits.max_bytes,
        });
    }
    let codec = sniff(source)?;
    // JPEG decoders fill a cut-off file with grey rather than fail: an upload
    // that stopped halfway must not become a half-grey rendition forever.
    if codec == Codec::Jpeg && !source.trim_ascii_end().ends_with(&[0xFF, 0xD9]) {
        return Err(SourceError::Corrupt(
            "the JPEG is truncated (no end-of-image marker)".into(),
        ));
    }
    let corrupt = |e: image::ImageError| SourceError::Corrupt(e.to_string());
    let mut decoder = ImageReader::with_format(Cursor::new(source), codec)
        .into_decoder()
        .map_err(corrupt)?;
    let (width, height) = decoder.dimensions();
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(SourceError::TooManyPixels {
            width,
            height,
            max: limits.max_pixels,
        });
    }
    let mut decode_limits = DecodeLimits::default();
    decode_limits.max_image_width = Some(width);
    decode_limits.max_image_height = Some(height);
    decode_limits.max_alloc = Some(limits.max_pixels * 8);
    decoder.set_limits(decode_limits).map_err(corrupt)?;
    let orientation = decoder.orientation().map_err(corrupt)?;
    // Only an RGB profile describes the RGB pixels written out: a CMYK or grey
    // source's profile would make viewers misread them.
    let icc = decoder
        .icc_profile()
        .ok()
        .flatten()
        .filter(|icc| icc.get(16..20) == Some(b"RGB "));
    let mut image = DynamicImage::from_decoder(decoder).map_err(corrupt)?;
    image.apply_orientation(orientation);
    Ok((image, icc))
}

/// The size the source is scaled to, and the centred crop of that (the same
/// unless the preset covers its box). Never enlarges.
pub fn geometry(width: u32, height: u32, preset: &Preset) -> ((u32, u32), (u32, u32)) {
    let (w, h) = (f64::from(width), f64::from(height));
    let (bw, bh) = (f64::from(preset.width), f64::from(preset.height));
    let scale = match preset.fit {
        Fit::Contain => (bw / w).min(bh / h),
        Fit::Cover => (bw / w).max(bh / h),
    }
    .min(1.0);
    let scaled = |side: f64| ((side * scale).round() as u32).max(1);
    let fitted = (scaled(w), scaled(h));
    let crop_to = match preset.fit {
        Fit::Contain => fitted,
        Fit::Cover => (fitted.0.min(preset.width), fitted.1.min(preset.height)),
    };
    (fitted, crop_to)
}

fn encode(
    image: &DynamicImage,
    format: ImageFormat,
    quality: u8,
    icc: Option<&[u8]>,
) -> Result<Vec<u8>, SourceError> {
    let (width, height) = (image.width(), image.height());
    let mut out = Vec::new();
    match format {
        ImageFormat::Jpeg => {
            // JPEG has no alpha: transparent areas become white, as on most pages.
            let rgb = match image {
                DynamicImage::ImageRgba8(rgba) => flatten_on_white(rgba),
                other => other.to_rgb8().into_raw(),
            };
            let mut encoder = jpeg_encoder::Encoder::new(&mut out, quality);
            if let Some(icc) = icc {
                // A profile too big for APP2 segments is dropped, not fatal.
                let _ = encoder.add_icc_profile(icc);
            }
            let side = |n: u32| {
                u16::try_from(n)
                    .map_err(|_| SourceError::Corrupt(format!("{n} px is too wide for JPEG")))
            };
            encoder
                .encode(
                    &rgb,
                    side(width)?,
                    side(height)?,
                    jpeg_encoder::ColorType::Rgb,
                )
                .map_err(|e| SourceError::Corrupt(format!("JPEG encoding failed: {e}")))?;
        }
        ImageFormat::Png => {
            let mut encoder = image::codecs::png::PngEncoder::new(&mut out);
            if let Some(icc) = icc {
                let _ = encoder.set_icc_profile(icc.to_vec());
            }
            encoder
                .write_image(image.as_bytes(), width, height, image.color().into())
                .map_err(|e| SourceError::Corrupt(format!("PNG encoding failed: {e}")))?;
        }
        ImageFormat::Webp => {
            let encoder = if image.color().has_alpha() {
                webp::Encoder::from_rgba(image.as_bytes(), width, height)
            } else {
                webp::Encoder::from_rgb(image.as_bytes(), width, height)
            };
            out = encoder.encode(f32::from(quality)).to_vec();
        }
    }
    Ok(out)
}

fn flatten_on_white(rgba: &image::RgbaImage) -> Vec<u8> {
    rgba.pixels()
        .flat_map(|p| {
            let [r, g, b, a] = p.0;
            let over = |c: u8| {
                ((u16::from(c) * u16::from(a) + 255 * (255 - u16::from(a)) + 127) / 255) as u8
            };
            [over(r), over(g), over(b)]
        })
        .collect()
}

#[cfg(test)]
mod tests;
