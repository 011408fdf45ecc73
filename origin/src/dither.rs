//! Ordered dithering onto a fixed palette of up to 256 colours, in integer
//! sRGB.
//!
//! Each pixel that is not exactly a palette colour is nudged along the grey
//! axis by a 4×4 Bayer threshold and mapped to the colour nearest the nudged
//! value, so across a 4×4 block a gradient mixes its two nearest colours in
//! proportion. Against Floyd–Steinberg at half strength (this module before;
//! same palette), on the product card: 4×4 block error vs Chromium's lossless
//! capture 0.91 → 0.74 (the same on blocks offset by two pixels, so not an
//! artefact of the block grid matching the matrix), PNG 73 KB → 66 KB (a
//! regular pattern deflates better than diffused noise), and no pixel depends
//! on another's error, so rows can be dithered in any order.
//!
//! Pixels that are exactly a palette colour (flat areas, text on them) are
//! kept: nudging them would grain every flat panel whose colour sits between
//! two others. Card art repeats colours, so a direct-mapped cache keyed by
//! the exact colour answers most pixels, and the rest search a grid cell's
//! short list of candidates (9 colours on average) instead of all 256.

/// How far the threshold nudges a pixel, in levels: ±(15/32 of this). Measured
/// on the product card (block error, size): 8 → 0.98, 57 KB; 12 → 0.78,
/// 63 KB; 16 → 0.74, 66 KB; 24 → 1.06, 70 KB. Wu's 256 colours sit a few
/// levels apart in a card's gradients; wider nudges start to skip a colour.
const AMPLITUDE: i32 = 16;

/// Bayer's 4×4 threshold matrix: each value 0..16 once, neighbours far apart.
const BAYER: [[i32; 4]; 4] = [[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]];

/// The nudge for each position of the matrix, centred on zero.
const NUDGES: [[i8; 4]; 4] = {
    let mut nudges = [[0i8; 4]; 4];
    let mut y = 0;
    while y < 4 {
        let mut x = 0;
        while x < 4 {
            nudges[y][x] = ((2 * BAYER[y][x] - 15) * AMPLITUDE / 32) as i8;
            x += 1;
        }
        y += 1;
    }
    nudges
};

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
/// a JPEG capture's noise makes ~8% of a card's remap lookups miss the cache).
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

fn key([r, g, b]: [u8; 3]) -> u32 {
    u32::from(r) << 16 | u32::from(g) << 8 | u32::from(b)
}

/// Nearest palette colours, cached: a direct-mapped cache keyed by the exact
/// colour in front of the grid search.
struct Nearest {
    palette: Palette,
    cache: Vec<u32>,
}

impl Nearest {
    #[inline]
    fn index(&mut self, key: u32) -> u8 {
        let entry = self.cache[slot(key)];
        if entry >> 8 == key {
            entry as u8
        } else {
            self.miss(key)
        }
    }

    #[cold]
    #[inline(never)]
    fn miss(&mut self, key: u32) -> u8 {
        let rgb = [key >> 16, key >> 8 & 0xff, key & 0xff].map(|v| v as i32);
        let index = self.palette.nearest(rgb);
        self.cache[slot(key)] = key << 8 | u32::from(index);
        index
    }
}

/// Which colours may be in the palette: one bit per hash of a colour (4096
/// bits, a fraction of a cache line per lookup), so that most pixels that are
/// not a palette colour skip the cache lookup that would prove it.
struct MaybePalette([u64; 64]);

impl MaybePalette {
    fn new(keys: &[u32]) -> Self {
        let mut bits = [0; 64];
        for &key in keys {
            let bit = slot(key) % 4096;
            bits[bit / 64] |= 1 << (bit % 64);
        }
        Self(bits)
    }

    #[inline]
    fn may_hold(&self, key: u32) -> bool {
        let bit = slot(key) % 4096;
        self.0[bit / 64] >> (bit % 64) & 1 == 1
    }
}

/// Maps packed 8-bit RGB (`width` pixels a row) onto `colours`: exact colours
/// as they are, the rest ordered-dithered. `first_row` is the number of
/// `rgb`'s first row in the image (images are dithered in bands), for the
/// matrix's phase. Returns one palette index per pixel.
pub fn dither(rgb: &[u8], width: usize, first_row: usize, colours: &[[u8; 3]]) -> Vec<u8> {
    assert!(width > 0 && rgb.len().is_multiple_of(width * 3));
    let keys: Vec<u32> = colours.iter().map(|&c| key(c)).collect();
    let in_palette = MaybePalette::new(&keys);
    let mut nearest = Nearest {
        palette: Palette::new(colours),
        cache: empty_cache(),
    };
    let mut indices = vec![0; rgb.len() / 3];
    for (y, (row, out)) in rgb
        .chunks_exact(width * 3)
        .zip(indices.chunks_exact_mut(width))
        .enumerate()
    {
        let (pixels, _) = row.as_chunks::<3>();
        let nudges = &NUDGES[(first_row + y) % 4];
        for (x, &pixel) in pixels.iter().enumerate() {
            // The pixel a matrix period to the left had the same nudge: the
            // same colour there (half the pixels of a gradient card, nine in
            // ten of a flat one) has the same answer, found without hashing.
            if x >= 4 && pixels[x - 4] == pixel {
                out[x] = out[x - 4];
                continue;
            }
            let key = key(pixel);
            if in_palette.may_hold(key) {
                let index = nearest.index(key);
                if keys[usize::from(index)] == key {
                    out[x] = index;
                    continue;
                }
            }
            let nudge = nudges[x % 4];
            out[x] = nearest.index(self::key(pixel.map(|v| v.saturating_add_signed(nudge))));
        }
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
        let indices = dither(&rgb, 8, 0, &colours);
        let expected: Vec<u8> = (0..64).map(|i| (i % 4) as u8).collect();
        assert_eq!(indices, expected);
    }

    /// The empty cache must not claim that black is palette colour 0.
    #[test]
    fn black_is_searched_not_taken_from_the_empty_cache() {
        let rgb = vec![0; 4 * 4 * 3];
        assert_eq!(
            dither(&rgb, 4, 0, &[[255, 255, 255], [0, 0, 0]]),
            vec![1; 16]
        );
    }

    #[test]
    fn ties_go_to_the_lower_index() {
        // Grey 100 is as far from 90 as from 110.
        let mut palette = Palette::new(&[[110, 110, 110], [90, 90, 90]]);
        assert_eq!(palette.nearest([100, 100, 100]), 0);
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
    fn a_colour_between_two_mixes_them_in_proportion() {
        // A quarter of the way from one grey to the next: without dithering
        // every pixel would be the darker one. (3 of 16 here: the nudges are
        // whole levels, and a tie goes to the darker.)
        let rgb = vec![104; 64 * 64 * 3];
        let indices = dither(&rgb, 64, 0, &[[100, 100, 100], [116, 116, 116]]);
        let lighter = indices.iter().filter(|&&i| i == 1).count();
        assert!(
            (2 * 4096 / 16..6 * 4096 / 16).contains(&lighter),
            "{lighter} of 4096 pixels are the lighter grey"
        );
    }
}
