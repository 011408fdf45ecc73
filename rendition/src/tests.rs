//! The rendition engine over a small corpus of real-world-shaped inputs, made
//! here: every EXIF orientation, alpha, CMYK and progressive JPEGs, GIF, and
//! the broken and hostile files uploads bring.

use image::{ImageEncoder, Rgb, RgbImage, RgbaImage};
use imgate_contract::{ImageFormat, Preset, Presets};

use super::{SourceError, SourceLimits, geometry, render, sniff};

const RED: [u8; 3] = [220, 30, 30];
const GREEN: [u8; 3] = [30, 200, 60];
const BLUE: [u8; 3] = [30, 60, 220];

/// 60×30, upright: red top-left, green top-right, blue bottom-left, white elsewhere.
/// No two of the eight orientations of it look alike.
fn upright() -> RgbImage {
    RgbImage::from_fn(60, 30, |x, y| {
        Rgb(match (x < 20, x >= 40, y < 10, y >= 20) {
            (true, _, true, _) => RED,
            (_, true, true, _) => GREEN,
            (true, _, _, true) => BLUE,
            _ => [255, 255, 255],
        })
    })
}

/// A TIFF block with one IFD entry: Orientation = `o`.
fn exif_orientation(o: u16) -> Vec<u8> {
    let mut tiff = b"MM\0\x2a\0\0\0\x08\0\x01".to_vec();
    tiff.extend([0x01, 0x12, 0x00, 0x03, 0, 0, 0, 1]);
    tiff.extend(o.to_be_bytes());
    tiff.extend([0, 0, 0, 0, 0, 0]);
    tiff
}

fn jpeg(image: &RgbImage, exif: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95);
    if let Some(exif) = exif {
        encoder.set_exif_metadata(exif).unwrap();
    }
    encoder
        .write_image(
            image,
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

fn decoded(bytes: &[u8]) -> RgbaImage {
    image::load_from_memory(bytes).unwrap().to_rgba8()
}

fn near(pixel: &image::Rgba<u8>, want: [u8; 3]) -> bool {
    pixel.0[..3]
        .iter()
        .zip(want)
        .all(|(&got, want)| got.abs_diff(want) < 40)
}

fn preset(name: &str) -> &'static Preset {
    static PRESETS: std::sync::LazyLock<Presets> = std::sync::LazyLock::new(Presets::default);
    PRESETS.get(name).unwrap()
}

#[test]
fn every_exif_orientation_comes_out_upright() {
    let reference = image::DynamicImage::ImageRgb8(upright());
    for o in 1..=8u8 {
        let orientation = image::metadata::Orientation::from_exif(o).unwrap();
        // Stored as a camera would: the inverse of what the tag says to do.
        let inverse = match o {
            6 => image::metadata::Orientation::from_exif(8).unwrap(),
            8 => image::metadata::Orientation::from_exif(6).unwrap(),
            _ => orientation,
        };
        let mut stored = reference.clone();
        stored.apply_orientation(inverse);
        let source = jpeg(&stored.to_rgb8(), Some(exif_orientation(o.into())));
        let out = decoded(
            &render(
                &source,
                preset("small"),
                ImageFormat::Png,
                SourceLimits::default(),
            )
            .unwrap(),
        );
        assert_eq!(out.dimensions(), (60, 30), "orientation {o}");
        for ((x, y), colour) in [
            ((5, 5), RED),
            ((55, 5), GREEN),
            ((5, 25), BLUE),
            ((55, 25), [255; 3]),
        ] {
            assert!(
                near(out.get_pixel(x, y), colour),
                "orientation {o}: ({x},{y}) is {:?}, want {colour:?}",
                out.get_pixel(x, y)
            );
        }
    }
}

#[test]
fn presets_fit_or_cover_and_never_enlarge() {
    assert_eq!(
        geometry(4000, 3000, preset("thumbnail")),
        ((533, 400), (400, 400))
    );
    assert_eq!(
        geometry(4000, 3000, preset("small")),
        ((800, 600), (800, 600))
    );
    assert_eq!(
        geometry(3000, 4000, preset("small")),
        ((450, 600), (450, 600))
    );
    assert_eq!(
        geometry(4000, 3000, preset("large")),
        ((4000, 3000), (4000, 3000))
    );
    assert_eq!(
        geometry(300, 100, preset("thumbnail")),
        ((300, 100), (300, 100))
    );
    assert_eq!(
        geometry(1000, 200, preset("thumbnail")),
        ((1000, 200), (400, 200))
    );

    let photo = RgbImage::from_fn(1200, 900, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let source = jpeg(&photo, None);
    for (name, want) in [
        ("thumbnail", (400, 400)),
        ("small", (800, 600)),
        ("medium", (1200, 900)),
    ] {
        for format in ImageFormat::ALL {
            let out = render(&source, preset(name), format, SourceLimits::default()).unwrap();
            let img = image::load_from_memory(&out).unwrap();
            assert_eq!((img.width(), img.height()), want, "{name} {format:?}");
            assert_eq!(image::guess_format(&out).unwrap(), super::codec(format));
        }
    }
}

#[test]
fn transparent_png_becomes_jpeg_on_white() {
    let half = RgbaImage::from_fn(40, 20, |x, _| {
        image::Rgba(if x < 20 {
            [0, 0, 0, 0]
        } else {
            [30, 60, 220, 255]
        })
    });
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&half, 40, 20, image::ExtendedColorType::Rgba8)
        .unwrap();
    let out = decoded(
        &render(
            &png,
            preset("small"),
            ImageFormat::Jpeg,
            SourceLimits::default(),
        )
        .unwrap(),
    );
    assert!(
        near(out.get_pixel(5, 10), [255, 255, 255]),
        "{:?}",
        out.get_pixel(5, 10)
    );
    assert!(near(out.get_pixel(35, 10), BLUE));
    // PNG keeps the transparency.
    let out = decoded(
        &render(
            &png,
            preset("small"),
            ImageFormat::Png,
            SourceLimits::default(),
        )
        .unwrap(),
    );
    assert_eq!(out.get_pixel(5, 10).0[3], 0);
}

#[test]
fn cmyk_progressive_and_gif_sources_render() {
    let (w, h) = (64u16, 32u16);
    // CMYK, as print workflows and some scanners write it: a cyan-ish field.
    let cmyk: Vec<u8> = (0..u32::from(w) * u32::from(h))
        .flat_map(|_| [200, 20, 0, 0])
        .collect();
    let mut source = Vec::new();
    jpeg_encoder::Encoder::new(&mut source, 90)
        .encode(&cmyk, w, h, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    let out = decoded(
        &render(
            &source,
            preset("small"),
            ImageFormat::Png,
            SourceLimits::default(),
        )
        .unwrap(),
    );
    let p = out.get_pixel(32, 16).0;
    assert!(
        p[2] > p[0] + 60,
        "CMYK cyan should come out blue-green, got {p:?}"
    );

    let rgb: Vec<u8> = upright().into_raw();
    let mut progressive = Vec::new();
    let mut encoder = jpeg_encoder::Encoder::new(&mut progressive, 90);
    encoder.set_progressive(true);
    encoder
        .encode(&rgb, 60, 30, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    let out = decoded(
        &render(
            &progressive,
            preset("small"),
            ImageFormat::Png,
            SourceLimits::default(),
        )
        .unwrap(),
    );
    assert!(near(out.get_pixel(5, 5), RED) && near(out.get_pixel(55, 5), GREEN));

    let mut gif = Vec::new();
    image::codecs::gif::GifEncoder::new(&mut gif)
        .encode(
            &image::DynamicImage::ImageRgb8(upright()).to_rgba8(),
            60,
            30,
            image::ExtendedColorType::Rgba8,
        )
        .unwrap();
    let out = decoded(
        &render(
            &gif,
            preset("thumbnail"),
            ImageFormat::Jpeg,
            SourceLimits::default(),
        )
        .unwrap(),
    );
    assert_eq!(out.dimensions(), (60, 30));
}

#[test]
fn broken_and_hostile_sources_are_refused_with_a_reason() {
    let good = jpeg(&upright(), None);
    let truncated = &good[..good.len() / 2];
    let html = b"<!doctype html><html><body>not a photo</body></html>".to_vec();
    // A valid PNG declaring 50000×50000 (7.5 GB of pixels) in 70 bytes.
    let mut bomb = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    bomb.extend(50_000u32.to_be_bytes());
    bomb.extend(50_000u32.to_be_bytes());
    bomb.extend([8, 2, 0, 0, 0]);
    let crc = crc32(&bomb[12..]);
    bomb.extend(crc.to_be_bytes());
    // A few bytes of compressed data: a real bomb's IDAT inflates to gigabytes.
    for (kind, data) in [
        (&b"IDAT"[..], &b"\x78\x9c\x03\x00\x00\x00\x00\x01"[..]),
        (b"IEND", b""),
    ] {
        bomb.extend((data.len() as u32).to_be_bytes());
        let start = bomb.len();
        bomb.extend(kind);
        bomb.extend(data);
        let crc = crc32(&bomb[start..]);
        bomb.extend(crc.to_be_bytes());
    }
    let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();

    let cases: [(&str, &[u8], SourceLimits, u16, &str); 5] = [
        (
            "truncated JPEG",
            truncated,
            SourceLimits::default(),
            422,
            "corrupt-image",
        ),
        (
            "HTML named .jpg",
            &html,
            SourceLimits::default(),
            415,
            "unsupported-image",
        ),
        (
            "50000×50000 PNG",
            &bomb,
            SourceLimits::default(),
            413,
            "too-many-pixels",
        ),
        (
            "HEIC",
            &heic,
            SourceLimits::default(),
            415,
            "unsupported-image",
        ),
        (
            "over the byte limit",
            &good,
            SourceLimits {
                max_bytes: 100,
                ..SourceLimits::default()
            },
            413,
            "source-too-large",
        ),
    ];
    for (name, source, limits, status, code) in cases {
        let err: SourceError =
            render(source, preset("small"), ImageFormat::Jpeg, limits).unwrap_err();
        assert_eq!((err.status(), err.code()), (status, code), "{name}: {err}");
    }
    assert!(sniff(&html).is_err() && sniff(&good).is_ok());
}

/// PNG's chunk checksum (CRC-32, ISO 3309), so the bomb's header is valid.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn an_rgb_colour_profile_is_kept_and_others_are_dropped() {
    // The 128-byte ICC header is all a profile needs to be carried; bytes
    // 16..20 name its colour space.
    let profile = |space: &[u8; 4]| {
        let mut icc = vec![0u8; 128];
        icc[..4].copy_from_slice(&128u32.to_be_bytes());
        icc[16..20].copy_from_slice(space);
        icc
    };
    for (space, kept) in [(b"RGB ", true), (b"CMYK", false), (b"GRAY", false)] {
        let mut source = Vec::new();
        let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut source, 90);
        encoder.set_icc_profile(profile(space)).unwrap();
        let img = upright();
        encoder
            .write_image(&img, 60, 30, image::ExtendedColorType::Rgb8)
            .unwrap();
        for format in [ImageFormat::Jpeg, ImageFormat::Png] {
            let out = render(&source, preset("small"), format, SourceLimits::default()).unwrap();
            let mut decoder = image::ImageReader::new(std::io::Cursor::new(&out))
                .with_guessed_format()
                .unwrap()
                .into_decoder()
                .unwrap();
            use image::ImageDecoder;
            let carried = decoder.icc_profile().unwrap();
            assert_eq!(
                carried.as_deref() == Some(&profile(space)[..]),
                kept,
                "{} profile into {format:?}",
                String::from_utf8_lossy(space)
            );
        }
    }
}
