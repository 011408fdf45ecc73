//! Where a palette PNG's time goes, stage by stage, and what each deflate
//! level and filter would cost. Feeds `encode.rs`'s choices.
//!
//! cargo run --release -p imgate-origin --example encode_lab -- capture.jpg
//!
//! `capture.jpg` is any capture of a card: what the renderer feeds the encoder
//! is Chromium's JPEG at quality 100; a lossless PNG works too, e.g.
//! `chromium-headless-shell --screenshot=capture.png --window-size=1200,630 card.html`.

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

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: encode_lab CAPTURE.png"))?;
    let src = std::fs::read(&path)?;
    println!("| stage | time |\n| --- | ---: |");
    let out = timed("palette_png, all stages", || {
        imgate_origin::encode::palette_png(&src)
    })?;
    println!("| → size | {} KB |", out.len() / 1000);

    let image = image::load_from_memory(&src)?.into_rgb8();
    let (width, height) = image.dimensions();
    let pixels: &[Srgb<u8>] = cast::from_component_slice(image.as_raw());
    for dedup in [false, true] {
        timed(&format!("quantise + dither, dedup {dedup}"), || {
            Pipeline::new()
                .palette_size(PaletteSize::MAX)
                .ditherer(FloydSteinberg::with_error_diffusion(0.5))
                .dedup(dedup)
                .input_image(ImageRef::new(width, height, pixels).expect("sized"))
                .output_srgb8_indexed_image()
        });
    }
    let (palette, indices) = Pipeline::new()
        .ditherer(FloydSteinberg::with_error_diffusion(0.5))
        .input_image(ImageRef::new(width, height, pixels).expect("sized"))
        .output_srgb8_indexed_image()
        .into_parts();
    let palette: Vec<u8> = cast::into_component_vec(palette);
    for level in [1, 3, 6, 9] {
        for (name, filter) in [
            ("none", png::Filter::NoFilter),
            ("adaptive", png::Filter::Adaptive),
        ] {
            let png = timed(&format!("deflate level {level}, filter {name}"), || {
                let mut out = Vec::new();
                let mut encoder = png::Encoder::new(&mut out, width, height);
                encoder.set_color(png::ColorType::Indexed);
                encoder.set_palette(palette.clone());
                encoder.set_deflate_compression(png::DeflateCompression::Level(level));
                encoder.set_filter(filter);
                let mut writer = encoder.write_header().expect("header");
                writer.write_image_data(&indices).expect("data");
                writer.finish().expect("finish");
                out
            });
            println!("| → size | {} KB |", png.len() / 1000);
        }
    }
    Ok(())
}
