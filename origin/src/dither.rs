//! Floyd–Steinberg error diffusion onto a fixed palette of up to 256 colours,
//! in integer sRGB.
//!
//! quantette picks the palette well (Wu in Oklab, ~3 ms for a card), but its
//! remap converts every pixel to Oklab and back in floats (~18 ms per card).
//! Card art is mostly flat colour and anti-aliased edges, so most pixels
//! repeat a colour seen just before: a direct-mapped cache keyed by the exact
//! dithered colour answers them, and only the rest pay for a search. Diffusing
//! the error in sRGB keeps local averages in the space the eye compares them
//! in at 1×, which measured closer to Chromium's lossless capture than
//! quantette's Oklab remap (4×4 block error 1.00 vs 1.29 from a JPEG capture).

/// Share of each pixel's error passed on (in 1/32: Floyd–Steinberg's 7, 3, 5,
/// 1 sixteenths at half strength). Half hides gradient bands; full strength
/// doubles the PNG (noise does not compress).
const RIGHT: i32 = 7;
const DOWN_LEFT: i32 = 3;
const DOWN: i32 = 5;
const DOWN_RIGHT: i32 = 1;

/// Errors are carried in 1/1024 of a level, so the 1/32 shares stay exact.
const SHIFT: u32 = 10;
const ONE: i32 = 1 << SHIFT;

/// Slots in the colour cache (24-bit keys hashed into 2^16 slots of 4 bytes).
const CACHE_BITS: u32 = 16;

fn slot(key: u32) -> usize {
    (key.wrapping_mul(0x9E37_79B1) >> (32 - CACHE_BITS)) as usize
}

/// A cache of `key << 8 | index` entries. Every bit pattern is some entry, so
/// an empty slot holds a key that hashes elsewhere and can never match there:
/// black (key 0) everywhere but in black's own slot, which holds key 1.
fn empty_cache() -> Vec<u32> {
    let mut cache = vec![0; 1 << CACHE_BITS];
    cache[slot(0)] = 1 << 8;
    debug_assert_ne!(slot(1), slot(0));
    cache
}

/// The palette, stored per channel so the search is one pass of plain
/// arithmetic over arrays the compiler can vectorise.
struct Palette {
    channels: [[i32; 256]; 3],
}

impl Palette {
    fn new(colours: &[[u8; 3]]) -> Self {
        assert!(
            !colours.is_empty() && colours.len() <= 256,
            "a palette holds 1 to 256 colours"
        );
        // Unused slots repeat the first colour: a tie never beats the lower index.
        let mut channels = [[0; 256]; 3];
        for (c, channel) in channels.iter_mut().enumerate() {
            for (i, slot) in channel.iter_mut().enumerate() {
                *slot = i32::from(colours.get(i).unwrap_or(&colours[0])[c]);
            }
        }
        Palette { channels }
    }

    /// Index of the colour nearest to `rgb` (squared Euclidean distance).
    fn nearest(&self, [r, g, b]: [i32; 3]) -> u8 {
        let [pr, pg, pb] = &self.channels;
        let mut distances = [0i32; 256];
        for i in 0..256 {
            let (dr, dg, db) = (pr[i] - r, pg[i] - g, pb[i] - b);
            distances[i] = dr * dr + dg * dg + db * db;
        }
        let best = distances.iter().copied().fold(i32::MAX, i32::min);
        distances.iter().position(|&d| d == best).unwrap_or(0) as u8
    }
}

/// Maps packed 8-bit RGB (`width` pixels a row) onto `colours`, diffusing
/// half of each pixel's error to its unvisited neighbours. Returns one palette
/// index per pixel.
pub fn dither(rgb: &[u8], width: usize, colours: &[[u8; 3]]) -> Vec<u8> {
    assert!(width > 0 && rgb.len().is_multiple_of(width * 3));
    let palette = Palette::new(colours);
    let mut cache = empty_cache();
    let mut indices = Vec::with_capacity(rgb.len() / 3);
    // Error owed to this row and the next, per channel, with a guard pixel at
    // each end so the edges need no special case.
    let mut this_row = vec![0i32; (width + 2) * 3];
    let mut next_row = vec![0i32; (width + 2) * 3];
    for row in rgb.chunks_exact(width * 3) {
        for (x, pixel) in row.chunks_exact(3).enumerate() {
            let at = (x + 1) * 3;
            let mut wanted = [0i32; 3];
            for c in 0..3 {
                let level = (i32::from(pixel[c]) << SHIFT) + this_row[at + c];
                wanted[c] = level.clamp(0, 255 << SHIFT);
            }
            let rounded = wanted.map(|v| (v + ONE / 2) >> SHIFT);
            let key = (rounded[0] << 16 | rounded[1] << 8 | rounded[2]) as u32;
            let entry = &mut cache[slot(key)];
            let index = if *entry >> 8 == key {
                *entry as u8
            } else {
                let index = palette.nearest(rounded);
                *entry = key << 8 | u32::from(index);
                index
            };
            indices.push(index);
            for (c, &want) in wanted.iter().enumerate() {
                let error = (want - (palette.channels[c][usize::from(index)] << SHIFT)) >> 5;
                this_row[at + 3 + c] += error * RIGHT;
                next_row[at - 3 + c] += error * DOWN_LEFT;
                next_row[at + c] += error * DOWN;
                next_row[at + 3 + c] += error * DOWN_RIGHT;
            }
        }
        std::mem::swap(&mut this_row, &mut next_row);
        next_row.fill(0);
    }
    indices
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_colours_map_to_themselves() {
        let colours = [[255, 255, 255], [15, 23, 42], [245, 158, 11], [0, 0, 0]];
        let rgb: Vec<u8> = (0..64).flat_map(|i| colours[i % 4]).collect();
        let indices = dither(&rgb, 8, &colours);
        let expected: Vec<u8> = (0..64).map(|i| (i % 4) as u8).collect();
        assert_eq!(indices, expected);
    }

    /// The empty cache must not claim that black is palette colour 0.
    #[test]
    fn black_is_searched_not_taken_from_the_empty_cache() {
        let rgb = vec![0; 4 * 4 * 3];
        assert_eq!(dither(&rgb, 4, &[[255, 255, 255], [0, 0, 0]]), vec![1; 16]);
    }

    #[test]
    fn ties_go_to_the_lower_index_and_unused_slots_never_win() {
        // Grey 100 is as far from 90 as from 110; a short palette pads with colour 0.
        let indices = dither(&[100, 100, 100], 1, &[[110, 110, 110], [90, 90, 90]]);
        assert_eq!(indices, vec![0]);
        // Black is nearer to an all-zero padding slot than to either real colour.
        assert_eq!(dither(&[0, 0, 0], 1, &[[200, 0, 0], [50, 50, 50]]), vec![1]);
    }

    #[test]
    fn error_spreads_so_a_mid_grey_mixes_black_and_white() {
        let rgb = vec![128; 64 * 64 * 3];
        let indices = dither(&rgb, 64, &[[0, 0, 0], [255, 255, 255]]);
        let white = indices.iter().filter(|&&i| i == 1).count();
        // Without diffusion every pixel would be white; at half strength the
        // mix leans white but holds both.
        assert!(
            (1000..4096).contains(&white),
            "{white} of 4096 pixels are white"
        );
    }
}
