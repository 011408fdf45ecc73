//! Floyd–Steinberg error diffusion onto a fixed palette of up to 256 colours,
//! in integer sRGB.
//!
//! quantette picks the palette well, but its remap converts every pixel to
//! Oklab and back in floats. Card art repeats colours, so a direct-mapped
//! cache keyed by the exact dithered colour answers ~89% of the pixels of even
//! a full-bleed gradient card, and the rest search a grid cell's short list of
//! candidates (9 colours on average) instead of all 256. Diffusing the error
//! in sRGB keeps local averages in the space the eye compares them in at 1×,
//! which measured closer to Chromium's lossless capture than quantette's Oklab
//! remap (4×4 block error 1.00 vs 1.29, same palette, from a JPEG capture).

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

/// Side of a grid cell, in levels per channel (a power of two).
const CELL_BITS: u32 = 4;
const CELLS_PER_SIDE: usize = 256 >> CELL_BITS;

/// The palette with a lazily built grid over the RGB cube: each cell lists the
/// only colours that can be nearest to some point in it, so a search looks at
/// a handful of colours instead of 256 (a brute-force search cost ~300 ns, and
/// a JPEG capture's noise makes ~11% of a card's pixels miss the cache).
struct Palette {
    colours: Vec<[i32; 3]>,
    /// Per cell: where its list starts in `candidates`, and its length
    /// (0 until built; a built list is never empty).
    cells: Vec<(u32, u16)>,
    candidates: Vec<u8>,
}

impl Palette {
    fn new(colours: &[[u8; 3]]) -> Self {
        assert!(
            !colours.is_empty() && colours.len() <= 256,
            "a palette holds 1 to 256 colours"
        );
        Palette {
            colours: colours.iter().map(|c| c.map(i32::from)).collect(),
            cells: vec![(0, 0); CELLS_PER_SIDE.pow(3)],
            candidates: Vec::new(),
        }
    }

    /// Index of the colour nearest to `rgb` (squared Euclidean distance; ties
    /// go to the lower index).
    fn nearest(&mut self, rgb: [i32; 3]) -> u8 {
        let cell = rgb.iter().fold(0, |cell, &v| {
            cell * CELLS_PER_SIDE + (v >> CELL_BITS) as usize
        });
        if self.cells[cell].1 == 0 {
            self.cells[cell] = self.build(rgb.map(|v| v >> CELL_BITS << CELL_BITS));
        }
        let (start, len) = self.cells[cell];
        let mut best = (i32::MAX, 0);
        for &i in &self.candidates[start as usize..][..usize::from(len)] {
            let distance = squared_distance(self.colours[usize::from(i)], rgb);
            if distance < best.0 {
                best = (distance, i);
            }
        }
        best.1
    }

    /// Lists, in index order, the colours whose nearest point in the cell at
    /// `low` is no farther than the farthest point of the cell is from the
    /// colour that is best in the worst case. Any point's nearest colour is
    /// within that bound, and so is every colour tied with it.
    fn build(&mut self, low: [i32; 3]) -> (u32, u16) {
        let high = low.map(|v| v + (1 << CELL_BITS) - 1);
        let span = |p: [i32; 3], per_channel: fn(i32, i32, i32) -> i32| {
            (0..3)
                .map(|c| per_channel(p[c], low[c], high[c]).pow(2))
                .sum::<i32>()
        };
        let nearest_in_cell = |p| span(p, |v, lo, hi| (lo - v).max(v - hi).max(0));
        let farthest_in_cell = |p| span(p, |v, lo, hi| (v - lo).max(hi - v));
        let bound = self.colours.iter().map(|&p| farthest_in_cell(p)).min();
        let start = self.candidates.len();
        for (i, &p) in self.colours.iter().enumerate() {
            if Some(nearest_in_cell(p)) <= bound {
                self.candidates.push(i as u8);
            }
        }
        (start as u32, (self.candidates.len() - start) as u16)
    }
}

pub(crate) fn squared_distance(a: [i32; 3], b: [i32; 3]) -> i32 {
    (0..3).map(|c| (a[c] - b[c]).pow(2)).sum()
}

/// One pixel's red, green and blue in 1/1024 levels, and a spare lane: four
/// `i32`s are one SSE register, so the per-pixel arithmetic vectorises.
type Lanes = [i32; 4];

fn add_share(to: &mut Lanes, error: Lanes, share: i32) {
    for c in 0..4 {
        to[c] += error[c] * share;
    }
}

/// Maps packed 8-bit RGB (`width` pixels a row) onto `colours`, diffusing
/// half of each pixel's error to its unvisited neighbours. Returns one palette
/// index per pixel.
pub fn dither(rgb: &[u8], width: usize, colours: &[[u8; 3]]) -> Vec<u8> {
    assert!(width > 0 && rgb.len().is_multiple_of(width * 3));
    let mut palette = Palette::new(colours);
    let levels: Vec<Lanes> = colours
        .iter()
        .map(|c| [c[0], c[1], c[2], 0].map(|v| i32::from(v) << SHIFT))
        .collect();
    let mut cache = empty_cache();
    let mut indices = Vec::with_capacity(rgb.len() / 3);
    // Error owed to this row and the next, with a guard pixel at each end so
    // the edges need no special case.
    let mut this_row = vec![[0; 4]; width + 2];
    let mut next_row = vec![[0; 4]; width + 2];
    for row in rgb.chunks_exact(width * 3) {
        let (pixels, _) = row.as_chunks::<3>();
        // Sliced to the row's length so the compiler drops the bounds checks.
        let here = &mut this_row[..pixels.len() + 2];
        let below = &mut next_row[..pixels.len() + 2];
        // The last pixel that landed exactly on a palette colour with no error
        // owed to it: in flat areas, the most common case on most cards, its
        // neighbour's answer is known and there is no error to pass on.
        let mut exact: Option<([u8; 3], u8)> = None;
        for (x, &pixel) in pixels.iter().enumerate() {
            let owed = here[x + 1];
            if let Some((colour, index)) = exact
                && colour == pixel
                && owed == [0; 4]
            {
                indices.push(index);
                continue;
            }
            let [r, g, b] = pixel.map(|v| i32::from(v) << SHIFT);
            let mut wanted = [r, g, b, 0];
            for c in 0..4 {
                wanted[c] = (wanted[c] + owed[c]).clamp(0, 255 << SHIFT);
            }
            let [r, g, b, _] = wanted.map(|v| (v + ONE / 2) >> SHIFT);
            let key = (r << 16 | g << 8 | b) as u32;
            let entry = &mut cache[slot(key)];
            let index = if *entry >> 8 == key {
                *entry as u8
            } else {
                let index = palette.nearest([r, g, b]);
                *entry = key << 8 | u32::from(index);
                index
            };
            indices.push(index);
            let chosen = levels[usize::from(index)];
            // Truncated toward zero, so that error fades out in a flat area
            // instead of leaving it a level off forever.
            let mut error = [0; 4];
            for c in 0..4 {
                error[c] = (wanted[c] - chosen[c]) / 32;
            }
            exact = (error == [0; 4]).then_some((pixel, index));
            add_share(&mut here[x + 2], error, RIGHT);
            add_share(&mut below[x], error, DOWN_LEFT);
            add_share(&mut below[x + 1], error, DOWN);
            add_share(&mut below[x + 2], error, DOWN_RIGHT);
        }
        std::mem::swap(&mut this_row, &mut next_row);
        next_row.fill([0; 4]);
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
    fn ties_go_to_the_lower_index() {
        // Grey 100 is as far from 90 as from 110.
        let indices = dither(&[100, 100, 100], 1, &[[110, 110, 110], [90, 90, 90]]);
        assert_eq!(indices, vec![0]);
    }

    /// The grid's candidate lists must never hide the true nearest colour:
    /// checked against a plain search over a sweep of the whole cube.
    #[test]
    fn the_grid_search_agrees_with_a_plain_search() {
        let mut state = 0x2545_f491_u32;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        // A spread palette, a clustered one (most cells see many colours)
        // and one with duplicates (ties everywhere).
        let spread: Vec<[u8; 3]> = (0..256)
            .map(|_| next().to_le_bytes()[..3].try_into().unwrap())
            .collect();
        let clustered: Vec<[u8; 3]> = (0..256)
            .map(|_| {
                next().to_le_bytes()[..3]
                    .iter()
                    .map(|b| 96 + b % 48)
                    .collect::<Vec<u8>>()
                    .try_into()
                    .unwrap()
            })
            .collect();
        let duplicated: Vec<[u8; 3]> = spread
            .iter()
            .take(40)
            .chain(spread.iter().take(40))
            .copied()
            .collect();
        for colours in [spread, clustered, duplicated] {
            let mut palette = Palette::new(&colours);
            for r in (0..256).step_by(5) {
                for g in (0..256).step_by(11) {
                    for b in (0..256).step_by(7) {
                        let rgb = [r, g, b];
                        let plain = (0..colours.len())
                            .min_by_key(|&i| (squared_distance(palette.colours[i], rgb), i))
                            .unwrap();
                        assert_eq!(usize::from(palette.nearest(rgb)), plain, "{rgb:?}");
                    }
                }
            }
        }
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
