//! Where a palette PNG's time goes, stage by stage, how far each remap strays
//! from the lossless original, and what each deflate level would cost. Feeds
//! `encode.rs`'s and `dither.rs`'s choices.
//!
//! cargo run --release -p imgate-origin --example encode_lab -- capture.jpg [lossless.png [out.png]]
//!
//! `IMGATE_LAB_LEVELS=1,2,5` picks the deflate levels compared (1, 3, 6).
//!
//! `capture.jpg` is what the renderer feeds the encoder: Chromium's JPEG at
//! quality 100 of a card. `lossless.png`, Chromium's PNG of the same card, is
//! the reference for the 4×4 block error (what the eye sees at 1×); without it
//! the capture itself is. `out.png` receives `encode::palette_png`'s result.

use std::time::Instant;

use quantette::deps::palette::{Srgb, cast};
use quantette::dither::FloydSteinberg;
use quantette::{ImageRef, PaletteSize, Pipeline};

const ROUNDS: u32 = 10;

/// Mean wall time of `f` over `ROUNDS` runs after one warm-up.
fn timed<T>(label: &str, mut f: impl FnMut() -> T) -> T {
    let out = f();
    let t = Instant::now();
    for _ in 0..ROUNDS {
        std::hint::black_box(f());
    }
    let ms = t.elapsed().as_secs_f64() * 1000.0 / f64::from(ROUNDS);
    println!("| {label} | {ms:.1} ms |");
    out
}

fn rgb(bytes: &[u8]) -> anyhow::Result<image::RgbImage> {
    Ok(image::load_from_memory(bytes)?.into_rgb8())
}

/// Mean and p99.9 of the per-channel difference of 4×4 block means.
fn block_error(a: &image::RgbImage, b: &image::RgbImage) -> (f64, f64) {
    let (w, h) = a.dimensions();
    let mut errors = Vec::new();
    for by in (0..h - h % 4).step_by(4) {
        for bx in (0..w - w % 4).step_by(4) {
            for c in 0..3 {
                let (mut sa, mut sb) = (0i32, 0i32);
                for y in by..by + 4 {
                    for x in bx..bx + 4 {
                        sa += i32::from(a.get_pixel(x, y)[c]);
                        sb += i32::from(b.get_pixel(x, y)[c]);
                    }
                }
                errors.push(f64::from((sa - sb).abs()) / 16.0);
            }
        }
    }
    errors.sort_by(f64::total_cmp);
    let mean = errors.iter().sum::<f64>() / errors.len() as f64;
    (mean, errors[errors.len() * 999 / 1000])
}

fn png(width: u32, height: u32, palette: &[u8], indices: &[u8], level: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Indexed);
    encoder.set_palette(palette.to_vec());
    encoder.set_deflate_compression(png::DeflateCompression::Level(level));
    encoder.set_filter(png::Filter::NoFilter);
    let mut writer = encoder.write_header().expect("header");
    writer.write_image_data(indices).expect("data");
    writer.finish().expect("finish");
    out
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: encode_lab CAPTURE.jpg [LOSSLESS.png [OUT.png]]"))?;
    let src = std::fs::read(&path)?;
    let reference = match args.next() {
        Some(lossless) => rgb(&std::fs::read(lossless)?)?,
        None => rgb(&src)?,
    };
    let save_to = args.next();
    let levels: Vec<u8> = match std::env::var("IMGATE_LAB_LEVELS") {
        Ok(list) => list
            .split(',')
            .map(|l| match l.trim().parse() {
                Ok(level @ 0..=9) => Ok(level),
                _ => Err(anyhow::anyhow!(
                    "IMGATE_LAB_LEVELS: {l:?} is not a zlib level (0-9)"
                )),
            })
            .collect::<anyhow::Result<_>>()?,
        Err(_) => vec![1, 3, 6],
    };

    println!("| stage | time |\n| --- | ---: |");
    let out = timed("palette_png, all stages", || {
        imgate_origin::encode::palette_png(&src)
    })?;
    let (mean, p999) = block_error(&rgb(&out)?, &reference);
    println!(
        "| → {} KB, block error {mean:.2} / p99.9 {p999:.2} |",
        out.len() / 1000
    );
    if let Some(path) = save_to {
        std::fs::write(path, &out)?;
    }

    let image = timed("decode", || rgb(&src))?;
    let (width, height) = image.dimensions();
    let pixels: &[Srgb<u8>] = cast::from_component_slice(image.as_raw());
    let input = || ImageRef::new(width, height, pixels).expect("sized");
    let palette = timed("palette (Wu in Oklab, flat colours kept)", || {
        imgate_origin::encode::palette(image.as_raw(), width, height)
    })?;
    let ours = timed("remap: dither.rs (ordered, sRGB)", || {
        imgate_origin::dither::dither(
            image.as_raw(),
            width as usize,
            0,
            &palette.colours,
            &palette.flat,
        )
    });
    let (theirs_palette, theirs) = timed("palette + remap: quantette (Oklab)", || {
        Pipeline::new()
            .palette_size(PaletteSize::MAX)
            .ditherer(FloydSteinberg::with_error_diffusion(0.5))
            .dedup(true)
            .input_image(input())
            .output_srgb8_indexed_image()
            .into_parts()
    });
    let theirs_palette: Vec<u8> = cast::into_component_vec(theirs_palette);
    let ours_palette = palette.colours.concat();

    for level in levels {
        for (name, palette, indices) in [
            ("dither.rs", &ours_palette, &ours),
            ("quantette", &theirs_palette, &theirs),
        ] {
            let out = timed(&format!("deflate level {level}, {name}"), || {
                png(width, height, palette, indices, level)
            });
            let (mean, p999) = block_error(&rgb(&out)?, &reference);
            println!(
                "| → {} KB, block error {mean:.2} / p99.9 {p999:.2} |",
                out.len() / 1000
            );
        }
    }
    Ok(())
}
