//! A small PNG, fast. Chromium's own PNG encoder spends ~130 ms on a 1200×630
//! card (322 KB for the product card), and even its fastest setting costs
//! ~20 ms more than a JPEG for a 700 KB file. So the renderer captures a JPEG
//! at quality 100 (`capture::Encoding::for_card`) and this module re-encodes
//! it as a 255-colour palette PNG.
//!
//! Measured on the product card (a full-bleed gradient, the hard case; release
//! build, one core; callgrind, and `examples/encode_lab.rs` for the table):
//! decode 35 M instructions, palette 16 M, remap 10 M (AVX2; 41 M scalar),
//! deflate 36 M → ~60 KB; on one quiet core 5.2, 2.1, ~3 (scalar 5.7) and
//! 5.1 ms. Remap and deflate run
//! in bands, one per core, which halves the time to a card on two cores but
//! not its CPU (one band: the same cards per CPU-second in the card bench,
//! within its noise). The palette is
//! Wu's in Oklab (quantette) over a sample, with the flat colours moved onto
//! their exact values; the remap is `dither.rs`. quantette's own Oklab remap gave
//! 99 KB and a 4×4 block error of 1.29 against Chromium's lossless PNG; this
//! gives 0.84 (the renderer's capture; exact nearest-colour search, before the
//! lookup table, 0.73).
//! - Dithering: none gives 49 KB but gradients band visibly (block error
//!   1.56); ordered dithering looks like the original at 1× (a fine regular
//!   texture shows at 2× zoom); Floyd–Steinberg at half strength (before)
//!   gave 73 KB and 0.91, at full strength twice the size (noise does not
//!   compress).
//! - Deflate: palette indices compress best unfiltered (adaptive filtering is
//!   +65% here); zlib-rs is as fast as libdeflate at the same level and
//!   smaller (level 6: 54 against 61 KB); level 9 is four times level 6's time
//!   for 5% less. Product card, one quiet core: level 1 1.8 ms / 117 KB,
//!   2 2.6 ms / 77 KB, 3 4.0 ms / 72 KB, 4 3.9 ms / 60 KB, 5 5.1 ms / 55 KB
//!   (`IMGATE_LAB_LEVELS=1,2,3,4,5` for encode_lab). A smaller window (2^11
//!   to 2^13) is both slower and bigger: the dither's patterns repeat a few
//!   rows apart.

use anyhow::Context;
use quantette::deps::palette::{Srgb, cast};
use quantette::{ImageRef, Pipeline};

use crate::dither;

/// Re-encodes an opaque capture (JPEG or PNG) as an 8-bit palette PNG.
pub fn palette_png(capture: &[u8]) -> anyhow::Result<Vec<u8>> {
    let (width, height, rgb) = decode_rgb(capture)?;
    let palette = palette(&rgb, width, height)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let data = image_data(&rgb, width as usize, &palette, cores.min(MAX_BANDS))?;

    let mut out = Vec::with_capacity(data.len() + 1024);
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Indexed);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_palette(palette.colours.concat());
    let mut writer = encoder.write_header()?;
    writer.write_chunk(png::chunk::IDAT, &data)?;
    writer.finish()?;
    Ok(out)
}

/// zlib level. Product card from a quality-95 capture: 6 is 80 KB and
/// 45.6 M instructions, 5 is 88 KB and 42.3 M, 4 is 96 KB and 35.9 M; in the
/// card bench 5 gave ~3% more cards per CPU-second than 6 and 4 no more than
/// 5 within the noise. From the quality-100 capture level 5 makes 62 KB.
const LEVEL: u32 = 5;

/// Bands at most (one per core; the first runs on the caller's thread), and
/// rows per band at least: a band costs a thread and starts with a cold
/// lookup table to fill.
const MAX_BANDS: usize = 4;
const MIN_BAND_ROWS: usize = 64;

/// The PNG's image data (IDAT): `rgb` remapped onto `colours` as unfiltered
/// scanlines in one zlib stream, made in horizontal bands that are dithered
/// and deflated each on its own core. The raw deflate streams join into one:
/// every band but the last ends with a sync flush, which stops on a byte
/// boundary without marking a final block. Each band starts with an empty
/// window, which costs ~1% of the size for halving the time to a card.
fn image_data(
    rgb: &[u8],
    width: usize,
    palette: &Palette,
    bands: usize,
) -> anyhow::Result<Vec<u8>> {
    let height = rgb.len() / 3 / width;
    // A multiple of 4 rows keeps every band in phase with the dither matrix.
    let band_rows = height
        .div_ceil(bands)
        .max(MIN_BAND_ROWS)
        .next_multiple_of(4);
    let bands: Vec<(Vec<u8>, Vec<u8>)> = std::thread::scope(|scope| {
        let band = |(i, rows): (usize, &[u8])| {
            let indices =
                dither::dither(rows, width, i * band_rows, &palette.colours, &palette.flat);
            let mut scanlines = Vec::with_capacity(indices.len() + indices.len() / width);
            for row in indices.chunks_exact(width) {
                // Filter type 0 (none): palette indices are not magnitudes.
                scanlines.push(0);
                scanlines.extend_from_slice(row);
            }
            let last = (i + 1) * band_rows >= height;
            let deflated = deflate(&scanlines, last)?;
            anyhow::Ok((scanlines, deflated))
        };
        let mut chunks = rgb.chunks(band_rows * width * 3).enumerate();
        let first = chunks.next().context("empty image")?;
        let others: Vec<_> = chunks
            .map(|chunk| scope.spawn(move || band(chunk)))
            .collect();
        let mut bands = vec![band(first)?];
        for other in others {
            bands.push(
                other
                    .join()
                    .map_err(|_| anyhow::anyhow!("a PNG band's thread panicked"))??,
            );
        }
        anyhow::Ok(bands)
    })?;

    let mut adler = adler2::Adler32::new();
    let mut data = vec![0x78, 0x9c]; // zlib: deflate, 32 KiB window
    for (scanlines, deflated) in &bands {
        adler.write_slice(scanlines);
        data.extend_from_slice(deflated);
    }
    data.extend_from_slice(&adler.checksum().to_be_bytes());
    Ok(data)
}

/// Raw deflate of `data`, ending the stream if `last`, else with a sync flush.
fn deflate(data: &[u8], last: bool) -> anyhow::Result<Vec<u8>> {
    use flate2::{Compress, Compression, FlushCompress, Status};
    let mut compress = Compress::new(Compression::new(LEVEL), false);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(data.len() / 4 + 1024);
    loop {
        let read = compress.total_in() as usize;
        let status = compress.compress_vec(&data[read..], &mut out, flush)?;
        let all_read = compress.total_in() as usize == data.len();
        // A sync flush is complete once it returns with output space to spare.
        if status == Status::StreamEnd || (!last && all_read && out.len() < out.capacity()) {
            return Ok(out);
        }
        out.reserve(out.capacity());
    }
}

/// Up to 255 colours, and which of them are the image's flat colours.
#[derive(Debug, Clone)]
pub struct Palette {
    pub colours: Vec<[u8; 3]>,
    /// Per colour: whether it is a flat area's colour, exactly.
    pub flat: Vec<bool>,
}

/// Picks up to 255 colours for packed 8-bit RGB: Wu's in Oklab over a
/// sample of the pixels, with the image's flat colours kept exactly.
pub fn palette(rgb: &[u8], width: u32, height: u32) -> anyhow::Result<Palette> {
    let pixels: &[Srgb<u8>] = cast::from_component_slice(rgb);
    anyhow::ensure!(
        pixels.len() == width as usize * height as usize && width > 0,
        "{width}×{height} image has the wrong number of pixels"
    );
    let mut sample = Vec::with_capacity(pixels.len() / SAMPLE_STEP.pow(2) + width as usize);
    for row in pixels.chunks_exact(width as usize).step_by(SAMPLE_STEP) {
        sample.extend(row.iter().step_by(SAMPLE_STEP));
    }
    let image = ImageRef::new(
        width.div_ceil(SAMPLE_STEP as u32),
        height.div_ceil(SAMPLE_STEP as u32),
        &sample,
    )
    .map_err(|_| anyhow::anyhow!("palette sample of the wrong size"))?;
    let mut colours: Vec<[u8; 3]> = Pipeline::new()
        // 255, not 256: the remap's lookup table keeps index 255 for "not yet".
        .palette_size(quantette::PaletteSize::from_u8_clamped(
            dither::MAX_COLOURS as u8,
        ))
        // Wu's histogram needs no distinct colours: deduplicating the sample
        // first gave the same palette for 1 M more instructions.
        .dedup(false)
        .input_image(image)
        .output_srgb8_palette()
        .context("empty image")?
        .iter()
        .map(|c| [c.red, c.green, c.blue])
        .collect();
    let flat = snap_to_flat_colours(&mut colours, rgb);
    Ok(Palette { colours, flat })
}

/// Every how many pixels, across and down, the palette samples. Wu's
/// histogram needs proportions, not every pixel, and flat colours are kept by
/// the snap, which sees every pixel. Measured on the product card (time,
/// 4×4 block error mean and p99.9; the article card's p99.9): every pixel
/// 10.4 ms, 0.74, 8.25, 3.62; every 4th 3.8 ms, 0.73, 8.31, 4.19; every 6th
/// starts to lose (0.75, 8.44, 5.00).
const SAMPLE_STEP: usize = 4;

/// A run of identical pixels this long is part of a flat area.
const FLAT_RUN: usize = 16;

/// Moves palette colours onto the image's flat colours (backgrounds, panels,
/// badges). Wu's colours are cluster centroids, a level or two off the flat
/// colour they stand for, so without this every flat area is dithered into
/// noise: it costs bytes and time, and the eye sees a faint grain. Returns
/// which colours are now flat colours.
fn snap_to_flat_colours(colours: &mut [[u8; 3]], rgb: &[u8]) -> Vec<bool> {
    let mut runs: std::collections::HashMap<[u8; 3], usize> = Default::default();
    let (pixels, _) = rgb.as_chunks::<3>();
    for (colour, length) in flat_runs(pixels) {
        *runs.entry(colour).or_default() += length;
    }
    let mut flat: Vec<([u8; 3], usize)> = runs.into_iter().collect();
    // Most common first: it gets first pick when two want the same slot.
    flat.sort_unstable_by_key(|&(colour, count)| (std::cmp::Reverse(count), colour));
    let mut snapped = vec![false; colours.len()];
    for (colour, _) in flat.into_iter().take(colours.len()) {
        let nearest = (0..colours.len()).min_by_key(|&i| {
            dither::squared_distance(colours[i].map(i32::from), colour.map(i32::from))
        });
        if let Some(i) = nearest.filter(|&i| !snapped[i]) {
            colours[i] = colour;
            snapped[i] = true;
        }
    }
    snapped
}

/// Runs of at least `FLAT_RUN` identical pixels, as colour and length. Looks
/// at every `FLAT_RUN / 2`th pixel only, until two a stride apart match: any
/// long enough run holds such a pair. A card's gradient holds many (the
/// capture smooths Chromium's ±1 dither into plateaus a dozen pixels wide):
/// this is 6.9 M instructions of the product card's 16 M for a palette, and
/// following runs 8 bytes at a time instead saved nothing.
fn flat_runs(pixels: &[[u8; 3]]) -> Vec<([u8; 3], usize)> {
    const STRIDE: usize = FLAT_RUN / 2;
    let mut runs = Vec::new();
    let mut at = 0;
    while at + STRIDE < pixels.len() {
        let colour = pixels[at];
        if pixels[at + STRIDE] != colour {
            at += STRIDE;
            continue;
        }
        // Runs found before all end before `at`, so none is counted twice.
        let before = pixels[..at].iter().rev().take_while(|&&c| c == colour);
        let from_here = pixels[at..].iter().take_while(|&&c| c == colour);
        let (start, end) = (at - before.count(), at + from_here.count());
        if end - start >= FLAT_RUN {
            runs.push((colour, end - start));
        }
        at = end;
    }
    runs
}

/// Decodes a capture (JPEG or PNG) to packed 8-bit RGB, dropping alpha
/// (cards are opaque).
fn decode_rgb(capture: &[u8]) -> anyhow::Result<(u32, u32, Vec<u8>)> {
    let image = image::load_from_memory(capture)
        .context("not an image")?
        .into_rgb8();
    let (width, height) = image.dimensions();
    Ok((width, height, image.into_raw()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rgb_png(width: u32, height: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        let mut writer = encoder.write_header().unwrap();
        let mut data = Vec::new();
        for y in 0..height {
            for x in 0..width {
                data.extend(pixel(x, y));
            }
        }
        writer.write_image_data(&data).unwrap();
        writer.finish().unwrap();
        out
    }

    #[test]
    fn few_colours_survive_exactly_and_size_is_kept() {
        let colours = [[255, 255, 255], [15, 23, 42], [245, 158, 11]];
        let src = rgb_png(120, 63, |x, y| colours[((x / 10 + y / 7) % 3) as usize]);
        let out = palette_png(&src).unwrap();
        let (w, h, rgb) = decode_rgb(&out).unwrap();
        let (_, _, original) = decode_rgb(&src).unwrap();
        assert_eq!((w, h), (120, 63));
        assert_eq!(rgb, original, "an image with three colours loses nothing");
    }

    /// Mean of each channel over `n`×`n` blocks: what the eye sees at 1×.
    fn block_means(rgb: &[u8], width: u32, height: u32, n: u32) -> Vec<f64> {
        let mut means = Vec::new();
        for by in (0..height).step_by(n as usize) {
            for bx in (0..width).step_by(n as usize) {
                for c in 0..3 {
                    let mut sum = 0u32;
                    for y in by..by + n {
                        for x in bx..bx + n {
                            sum += rgb[((y * width + x) * 3 + c) as usize] as u32;
                        }
                    }
                    means.push(sum as f64 / (n * n) as f64);
                }
            }
        }
        means
    }

    #[test]
    fn a_two_colour_gradient_keeps_its_local_averages() {
        // 30,000 distinct colours: the worst case for a 256-colour palette.
        let src = rgb_png(300, 100, |x, y| {
            [(x * 255 / 299) as u8, (y * 255 / 99) as u8, 128]
        });
        let (_, _, original) = decode_rgb(&src).unwrap();
        let colours = palette(&original, 300, 100).unwrap().colours;
        assert_eq!(colours.len(), dither::MAX_COLOURS, "a full palette");
        let (_, _, rgb) = decode_rgb(&palette_png(&src).unwrap()).unwrap();
        let (got, want) = (
            block_means(&rgb, 300, 100, 4),
            block_means(&original, 300, 100, 4),
        );
        let mut errors: Vec<f64> = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).collect();
        errors.sort_by(f64::total_cmp);
        let mean = errors.iter().sum::<f64>() / errors.len() as f64;
        let p95 = errors[errors.len() * 95 / 100];
        // A guard against gross breakage (channel order, palette mix-ups, which
        // give errors in the tens); fidelity on real cards is checked against
        // Chromium's lossless capture in render_tests. The worst blocks here are
        // at the gamut's corners (green ≈ 0 at full red), which no 256-colour
        // palette spanning this image can hold.
        assert!(
            mean < 2.0 && p95 < 8.0,
            "4×4 block error: mean {mean:.2}, p95 {p95:.2}"
        );
    }

    #[test]
    fn flat_areas_keep_their_exact_colour() {
        // A panel as a JPEG capture gives it: one colour, with every third
        // row a few levels off (ringing), beside a gradient. Its palette
        // colour is a cluster mean, a level or two off, unless snapped back.
        let panel = [201, 99, 57];
        let src = rgb_png(300, 100, |x, y| match x {
            0..100 if y % 3 == 0 => [203 + (x % 3) as u8, 99, 57],
            0..100 => panel,
            _ => [(x * 255 / 299) as u8, (y * 255 / 99) as u8, 57],
        });
        let (_, _, rgb) = decode_rgb(&palette_png(&src).unwrap()).unwrap();
        let (_, _, original) = decode_rgb(&src).unwrap();
        let kept = |&&i: &&usize| rgb[i * 3..i * 3 + 3] == original[i * 3..i * 3 + 3];
        let exact: Vec<usize> = (0..300 * 100)
            .filter(|&i| i % 300 < 100 && original[i * 3..i * 3 + 3] == panel)
            .collect();
        let changed = exact.len() - exact.iter().filter(kept).count();
        assert!(
            changed * 100 < exact.len(),
            "{changed} of the panel's {} pixels changed colour",
            exact.len()
        );
    }

    #[test]
    fn bands_join_into_one_zlib_stream_of_the_same_scanlines() {
        let (width, height) = (50, 300);
        let src = rgb_png(width, height, |x, y| {
            [(x * 5) as u8, (y * 255 / 299) as u8, 90]
        });
        let (_, _, rgb) = decode_rgb(&src).unwrap();
        let colours = palette(&rgb, width, height).unwrap();
        // The zlib decoder checks the Adler-32 of the whole stream.
        let inflate = |data: Vec<u8>| {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&data[..]), &mut out)
                .unwrap();
            out
        };
        let one = inflate(image_data(&rgb, width as usize, &colours, 1).unwrap());
        let three = inflate(image_data(&rgb, width as usize, &colours, 3).unwrap());
        assert_eq!(one.len(), (width as usize + 1) * height as usize);
        assert!(
            one == three,
            "three bands decode to other scanlines than one"
        );
    }

    #[test]
    fn flat_runs_finds_every_long_run_once() {
        // Runs of every length from 1 to 40, each its own colour: they start
        // at every phase of the stride.
        let mut pixels = Vec::new();
        let mut expected = Vec::new();
        for length in 1..=40 {
            let colour = [length as u8, 0, 0];
            pixels.extend(std::iter::repeat_n(colour, length));
            if length >= FLAT_RUN {
                expected.push((colour, length));
            }
        }
        assert_eq!(flat_runs(&pixels), expected);
    }

    /// Against a plain pixel-by-pixel count, on runs of colours that differ
    /// in one channel only.
    #[test]
    fn flat_runs_agrees_with_a_plain_count() {
        let mut next = dither::xorshift(0x1234_5678);
        let colours = [[9, 9, 9], [9, 9, 10], [10, 9, 9], [9, 10, 9]];
        let mut pixels: Vec<[u8; 3]> = Vec::new();
        while pixels.len() < 20_000 {
            let colour = colours[next() as usize % colours.len()];
            pixels.extend(std::iter::repeat_n(colour, 1 + next() as usize % 40));
        }
        let plain: Vec<([u8; 3], usize)> = pixels
            .chunk_by(|a, b| a == b)
            .filter(|run| run.len() >= FLAT_RUN)
            .map(|run| (run[0], run.len()))
            .collect();
        assert_eq!(flat_runs(&pixels), plain);
    }

    #[test]
    fn refuses_what_is_not_an_image() {
        assert!(palette_png(b"GIF89a....").is_err());
    }
}
