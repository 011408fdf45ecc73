//! Ordered dithering onto a fixed palette of up to 255 colours, in integer
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
//! two others. The rest are answered by a lookup table over the RGB cube at
//! 6 bits per channel (`Lut`), filled in as pixels ask: each cell holds the
//! colour nearest its centre, found from a grid cell's short list of
//! candidates (9 colours on average) instead of all 255. Most pixels cost a
//! bit test (is an exact or flat colour anywhere near?) and four loads from
//! the nudges and the lookup table; the direct-mapped cache keyed by the
//! exact colour that this replaced cost a hash, a compare and, for the ~8% of
//! lookups that JPEG noise made miss, a search (remap 54 → 32 M instructions
//! per product card; 41 M since the flat colours' reach).
//!
//! On a CPU with AVX2 (`avx2.rs`) the remap runs eight pixels at a time
//! with gathers and no per-pixel branch: 10.6 M instructions per product
//! card against the scalar 41 M, and about half its time (alternating runs
//! on one core: 3.3 against 6.6 ms). The scalar remap below stays for other
//! CPUs, for each row's last few pixels, and as the reference the tests hold
//! the AVX2 one to, pixel for pixel.
//!
//! Tried and not kept: one word per cell for the exact and the flat colour
//! (key and index packed, one load and compare each, no bitset): 42.1 M
//! against 41.1 M. The compiler does not vectorise the scalar loop on its
//! own (a branch-free row with `target_feature(enable = "avx2")` stayed
//! scalar, 78 M), hence the intrinsics.

#[cfg(target_arch = "x86_64")]
mod avx2;

/// How far the threshold nudges a pixel, in levels: ±(15/32 of this). Measured
/// on the product card (block error, size): 8 → 0.98, 57 KB; 12 → 0.78,
/// 63 KB; 16 → 0.74, 66 KB; 24 → 1.06, 70 KB. Wu's 255 colours sit a few
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

/// Hashes a 24-bit colour key (for the exact-colour table).
fn slot(key: u32) -> usize {
    (key.wrapping_mul(0x9E37_79B1) >> 16) as usize
}

/// Side of a grid cell, in levels per channel (a power of two).
const CELL_BITS: u32 = 4;
const CELLS_PER_SIDE: usize = 256 >> CELL_BITS;

/// The palette with a lazily built grid over the RGB cube: each cell lists the
/// only colours that can be nearest to some point in it, so a search looks at
/// a handful of colours instead of 256 (a brute-force search cost ~300 ns,
/// and a card fills a few thousand lookup-table cells).
struct Grid {
    colours: Vec<[i32; 3]>,
    /// Per cell: where its list starts in `candidates`, and its length
    /// (0 until built; a built list is never empty).
    cells: Vec<(u32, u16)>,
    candidates: Vec<u8>,
}

impl Grid {
    fn new(colours: &[[u8; 3]]) -> Self {
        assert!(
            !colours.is_empty() && colours.len() <= 256,
            "a palette holds 1 to 256 colours"
        );
        Grid {
            colours: colours.iter().map(|c| c.map(i32::from)).collect(),
            cells: vec![(0, 0); CELLS_PER_SIDE.pow(3)],
            candidates: Vec::new(),
        }
    }

    /// Index of the colour nearest to `rgb` (squared Euclidean distance; ties
    /// go to the lower index).
    #[cfg(test)]
    fn nearest(&mut self, rgb: [i32; 3]) -> u8 {
        self.nearest_doubled(rgb.map(|v| v as u8), rgb.map(|v| 2 * v))
    }

    /// Index of the colour nearest to the point `doubled / 2`, which lies in
    /// the grid cell of `within` (halves let a point be a cell's centre).
    fn nearest_doubled(&mut self, within: [u8; 3], doubled: [i32; 3]) -> u8 {
        let cell = within.iter().fold(0, |cell, &v| {
            cell * CELLS_PER_SIDE + usize::from(v >> CELL_BITS)
        });
        if self.cells[cell].1 == 0 {
            self.cells[cell] = self.build(within.map(|v| i32::from(v >> CELL_BITS << CELL_BITS)));
        }
        let (start, len) = self.cells[cell];
        let mut best = (i32::MAX, 0);
        for &i in &self.candidates[start as usize..][..usize::from(len)] {
            let distance = squared_distance(self.colours[usize::from(i)].map(|v| 2 * v), doubled);
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

/// The lookup-table cell a colour lies in (not nudged).
fn raw_cell(colour: [u8; 3]) -> usize {
    let [r, g, b] = colour.map(|v| v >> LUT_SHIFT);
    Lut::cell(r, g, b)
}

fn key([r, g, b]: [u8; 3]) -> u32 {
    u32::from(r) << 16 | u32::from(g) << 8 | u32::from(b)
}

/// Bits per channel that the lookup table tells apart: a colour is answered
/// for its 4×4×4 cell's centre, at most 1.5 levels per channel from where it
/// is (the nudges move a pixel by up to 7.5). Product card, 4×4 block error
/// against the lossless capture: exact search 0.73, 7 bits 0.75, 6 bits 0.80;
/// 7 bits is a 2 MB table to clear per band (+3 M instructions), 6 bits
/// 256 KB, which stays in the L2 cache.
const LUT_BITS: u32 = 6;
const LUT_SHIFT: u32 = 8 - LUT_BITS;

/// Bytes past a per-cell byte table's last cell (see `avx2::GATHER_PAD`).
#[cfg(target_arch = "x86_64")]
const PAD: usize = avx2::GATHER_PAD;
#[cfg(not(target_arch = "x86_64"))]
const PAD: usize = 0;

/// Every level after each nudge of the matrix, clamped to 0..=255 and cut to
/// `LUT_BITS`: `NUDGED[y % 4][x % 4][level]`, so that nudging a pixel and
/// finding its cell are three loads from a 256-byte table.
const NUDGED: [[[u8; 256]; 4]; 4] = {
    let mut table = [[[0u8; 256]; 4]; 4];
    let mut y = 0;
    while y < 4 {
        let mut x = 0;
        while x < 4 {
            let mut level = 0;
            while level < 256 {
                let nudged = level as i32 + NUDGES[y][x] as i32;
                let clamped = if nudged < 0 {
                    0
                } else if nudged > 255 {
                    255
                } else {
                    nudged
                };
                table[y][x][level] = (clamped >> LUT_SHIFT) as u8;
                level += 1;
            }
            x += 1;
        }
        y += 1;
    }
    table
};

/// The nearest palette colour of every cell of the RGB cube at `LUT_BITS`,
/// filled in as the image asks (a product card fills ~3,000 of 262,144).
/// An unfilled cell holds `UNKNOWN`, which no palette index can be: one load
/// answers a filled cell (a bitset of filled cells beside it cost a second
/// load).
struct Lut {
    grid: Grid,
    index: Vec<u8>,
}

/// At most this many colours, so that index 255 is free to mean "not yet".
pub const MAX_COLOURS: usize = 255;
const UNKNOWN: u8 = 255;

impl Lut {
    const CELLS: usize = 1 << (3 * LUT_BITS);

    fn new(grid: Grid) -> Self {
        assert!(
            grid.colours.len() <= MAX_COLOURS,
            "the lookup table holds 255 colours"
        );
        Self {
            grid,
            index: vec![UNKNOWN; Self::CELLS + PAD],
        }
    }

    /// The cell of a pixel whose channels are already cut to `LUT_BITS`.
    #[inline]
    fn cell(r: u8, g: u8, b: u8) -> usize {
        usize::from(r) << (2 * LUT_BITS) | usize::from(g) << LUT_BITS | usize::from(b)
    }

    #[inline]
    fn nearest(&mut self, cell: usize) -> u8 {
        match self.index[cell] {
            UNKNOWN => self.fill(cell),
            index => index,
        }
    }

    #[cold]
    #[inline(never)]
    fn fill(&mut self, cell: usize) -> u8 {
        let mask = (1 << LUT_BITS) - 1;
        let low = [cell >> (2 * LUT_BITS), cell >> LUT_BITS & mask, cell & mask]
            .map(|v| (v << LUT_SHIFT) as u8);
        // The cell's centre, doubled: low + (2^LUT_SHIFT - 1) / 2.
        let centre = low.map(|v| 2 * i32::from(v) + (1 << LUT_SHIFT) - 1);
        let index = self.grid.nearest_doubled(low, centre);
        self.index[cell] = index;
        index
    }
}

/// The palette's own colours, exactly: an open-addressed table at most a
/// quarter full, so a colour that is not one mostly costs one probe.
struct Exact {
    slots: Vec<(u32, u8)>,
    /// Per lookup-table cell: whether a palette colour lies in it, so that
    /// most pixels skip the probe.
    cells: Vec<u64>,
}

impl Exact {
    const EMPTY: u32 = u32::MAX;

    fn new(colours: &[[u8; 3]]) -> Self {
        let mut slots = vec![(Self::EMPTY, 0); (colours.len() * 4).next_power_of_two()];
        let mut cells = vec![0u64; Lut::CELLS / 64];
        let mask = slots.len() - 1;
        for (index, &colour) in colours.iter().enumerate() {
            let (key, cell) = (key(colour), raw_cell(colour));
            cells[cell / 64] |= 1 << (cell % 64);
            let mut at = slot(key) & mask;
            // The first of duplicate colours keeps the key, as the nearest
            // search's ties would.
            while slots[at].0 != Self::EMPTY && slots[at].0 != key {
                at = (at + 1) & mask;
            }
            if slots[at].0 == Self::EMPTY {
                slots[at] = (key, index as u8);
            }
        }
        Self { slots, cells }
    }

    /// The index of the colour `key`, whose lookup-table cell is `cell`.
    #[inline]
    fn get(&self, key: u32, cell: usize) -> Option<u8> {
        if self.cells[cell / 64] >> (cell % 64) & 1 == 0 {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut at = slot(key) & mask;
        loop {
            match self.slots[at] {
                (k, index) if k == key => return Some(index),
                (Self::EMPTY, _) => return None,
                _ => at = (at + 1) & mask,
            }
        }
    }
}

/// How far, in levels per channel, a pixel may be from one of the image's
/// flat colours and still be drawn in it rather than dithered. A JPEG capture
/// rings around every edge on a flat area, so the pixels beside text sit a
/// few levels off the background; dithering them costs a grain around every
/// glyph and the bytes to store it. The lossless original has the flat colour
/// there. Renderer's captures (quality 100), PNG size and 4×4 block error:
/// reach 0: product 73.7 KB / 0.83, article 24.0 KB / 0.38; reach 3: 61.6 KB /
/// 0.84, 18.7 KB / 0.37; reach 5: 57.0 KB but 1.08 on the product card, whose
/// price text is the colour its gradient starts from: a wider reach draws a
/// band into the gradient.
const FLAT_REACH: i32 = 3;

/// The flat colour within `FLAT_REACH` of a pixel, if any: per lookup-table
/// cell, the flat colour nearest the cell's centre among those that reach it
/// (one byte load turns away every pixel that is nowhere near one), then the
/// pixel's own distance to it.
struct NearFlat {
    /// Per cell: 1 + the colour's index, or 0.
    cells: Vec<u8>,
    /// Per cell: whether it holds a colour, as a bitset.
    reached: Vec<u64>,
    colours: Vec<[i32; 3]>,
    /// Every palette colour as a `key`, 256 of them (for the AVX2 remap).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    words: Vec<u32>,
}

impl NearFlat {
    fn new(colours: &[[u8; 3]], flat: &[bool]) -> Self {
        let mut cells = vec![0u8; Lut::CELLS + PAD];
        let mut reached = vec![0u64; Lut::CELLS / 64];
        let reach = |v: u8| {
            let low = (i32::from(v) - FLAT_REACH).max(0) as u8 >> LUT_SHIFT;
            let high = (i32::from(v) + FLAT_REACH).min(255) as u8 >> LUT_SHIFT;
            low..=high
        };
        let mut words: Vec<u32> = colours.iter().map(|&c| key(c)).collect();
        words.resize(256, 0);
        let colours: Vec<[i32; 3]> = colours.iter().map(|c| c.map(i32::from)).collect();
        // At most 255 colours (`MAX_COLOURS`), so 1 + index fits a byte.
        for i in (0..colours.len()).filter(|&i| flat[i]) {
            let [r, g, b] = colours[i].map(|v| v as u8);
            for cr in reach(r) {
                for cg in reach(g) {
                    for cb in reach(b) {
                        let cell = Lut::cell(cr, cg, cb);
                        let centre = [cr, cg, cb]
                            .map(|v| 2 * (i32::from(v) << LUT_SHIFT) + (1 << LUT_SHIFT) - 1);
                        let distance = |c: [i32; 3]| squared_distance(c.map(|v| 2 * v), centre);
                        let held = cells[cell];
                        if held == 0
                            || distance(colours[i]) < distance(colours[usize::from(held) - 1])
                        {
                            cells[cell] = i as u8 + 1;
                            reached[cell / 64] |= 1 << (cell % 64);
                        }
                    }
                }
            }
        }
        Self {
            cells,
            reached,
            colours,
            words,
        }
    }

    /// The flat colour for `pixel`, whose lookup-table cell is `cell`.
    #[inline]
    fn get(&self, pixel: [u8; 3], cell: usize) -> Option<u8> {
        let held = self.cells[cell];
        if held == 0 {
            return None;
        }
        let index = held - 1;
        let colour = self.colours[usize::from(index)];
        (0..3)
            .all(|c| (colour[c] - i32::from(pixel[c])).abs() <= FLAT_REACH)
            .then_some(index)
    }
}

/// Maps packed 8-bit RGB (`width` pixels a row) onto up to `MAX_COLOURS`
/// `colours`: exact colours as they are, pixels within `FLAT_REACH` of a
/// `flat` colour in that colour, the rest ordered-dithered. `first_row` is
/// the number of `rgb`'s first row in the image (images are dithered in
/// bands), for the matrix's phase. Returns one palette index per pixel.
pub fn dither(
    rgb: &[u8],
    width: usize,
    first_row: usize,
    colours: &[[u8; 3]],
    flat: &[bool],
) -> Vec<u8> {
    dither_with(rgb, width, first_row, colours, flat, Kernel::Fastest)
}

/// Which remap runs: the fastest this CPU has, or the scalar one (which the
/// tests hold the AVX2 one to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    Fastest,
    #[cfg_attr(not(test), allow(dead_code))]
    Scalar,
}

fn dither_with(
    rgb: &[u8],
    width: usize,
    first_row: usize,
    colours: &[[u8; 3]],
    flat: &[bool],
    kernel: Kernel,
) -> Vec<u8> {
    assert!(width > 0 && rgb.len().is_multiple_of(width * 3));
    assert_eq!(colours.len(), flat.len());
    let mut remap = Remap::new(colours, flat, kernel);
    let mut indices = vec![0; rgb.len() / 3];
    for (y, (row, out)) in rgb
        .chunks_exact(width * 3)
        .zip(indices.chunks_exact_mut(width))
        .enumerate()
    {
        #[cfg(target_arch = "x86_64")]
        let done = avx2::row(&mut remap, row, first_row + y, out);
        #[cfg(not(target_arch = "x86_64"))]
        let done = 0;
        // `done` is a multiple of the matrix's period, so the phases of the
        // rest start at 0.
        remap.row(
            &row[3 * done..],
            &NUDGED[(first_row + y) % 4],
            &mut out[done..],
        );
    }
    indices
}

/// The lookups behind one band's pixels.
struct Remap {
    /// Per lookup-table cell (not nudged): whether a palette colour lies in
    /// it or a flat colour reaches it. Most pixels of a card are in neither
    /// and go straight to the lookup table after one bit test.
    closer_look: Vec<u64>,
    exact: Exact,
    near_flat: NearFlat,
    lut: Lut,
    /// The exact colours for the AVX2 remap, when it runs.
    #[cfg(target_arch = "x86_64")]
    perfect: Option<avx2::PerfectHash>,
}

impl Remap {
    fn new(colours: &[[u8; 3]], flat: &[bool], kernel: Kernel) -> Self {
        let exact = Exact::new(colours);
        let near_flat = NearFlat::new(colours, flat);
        let closer_look = (exact.cells.iter().zip(&near_flat.reached))
            .map(|(exact, reached)| exact | reached)
            .collect();
        Self {
            closer_look,
            exact,
            near_flat,
            lut: Lut::new(Grid::new(colours)),
            #[cfg(target_arch = "x86_64")]
            perfect: (kernel == Kernel::Fastest && avx2::available())
                .then(|| avx2::PerfectHash::new(colours))
                .flatten(),
        }
    }

    /// Remaps `row`'s pixels (packed RGB) into `out`, the first pixel at
    /// phase 0 of the matrix row `nudged`.
    fn row(&mut self, row: &[u8], nudged: &[[u8; 256]; 4], out: &mut [u8]) {
        // The pixels a matrix period to the left, which had the same nudge:
        // the same colour there (half the pixels of a gradient card, nine in
        // ten of a flat one) has the same answer. No key is `u32::MAX`.
        let mut left = [(u32::MAX, 0u8); 4];
        let (pixels, _) = row.as_chunks::<3>();
        let (periods, rest) = pixels.as_chunks::<4>();
        let (out_periods, out_rest) = out.as_chunks_mut::<4>();
        for (period, out) in periods.iter().zip(out_periods) {
            // Written out with a `left` variable per phase, the compiler
            // makes the same code: this loop stays a loop.
            for phase in 0..4 {
                out[phase] = self.pixel(period[phase], &nudged[phase], &mut left[phase]);
            }
        }
        for (phase, (&pixel, out)) in rest.iter().zip(out_rest).enumerate() {
            *out = self.pixel(pixel, &nudged[phase], &mut left[phase]);
        }
    }

    /// The index for `pixel`, given its phase's nudged levels and the pixel
    /// a period to its left (updated to this one). Branches, where a
    /// gradient's pixels take them at random, still beat computing every
    /// answer and picking one without a branch (tried: 41 → 70 M
    /// instructions, remap 6.8 → 8.3 ms; the remap runs at ~2 instructions
    /// a cycle either way).
    #[inline(always)]
    fn pixel(&mut self, pixel: [u8; 3], level: &[u8; 256], left: &mut (u32, u8)) -> u8 {
        let key = key(pixel);
        if key != left.0 {
            let cell = raw_cell(pixel);
            let special = self.closer_look[cell / 64] >> (cell % 64) & 1 == 1;
            let index = match special.then(|| self.special(pixel, key, cell)).flatten() {
                Some(index) => index,
                None => {
                    let [r, g, b] = pixel.map(|v| level[usize::from(v)]);
                    self.lut.nearest(Lut::cell(r, g, b))
                }
            };
            *left = (key, index);
        }
        left.1
    }

    /// A palette colour exactly, or the flat colour a pixel is near.
    #[inline(never)]
    fn special(&self, pixel: [u8; 3], key: u32, cell: usize) -> Option<u8> {
        self.exact
            .get(key, cell)
            .or_else(|| self.near_flat.get(pixel, cell))
    }
}

/// A xorshift32 sequence from `state`: test data that is the same on every
/// run, for this module's tests and `encode`'s.
#[cfg(test)]
pub(crate) fn xorshift(mut state: u32) -> impl FnMut() -> u32 {
    move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_colours_map_to_themselves() {
        let colours = [[255, 255, 255], [15, 23, 42], [245, 158, 11], [0, 0, 0]];
        let rgb: Vec<u8> = (0..64).flat_map(|i| colours[i % 4]).collect();
        let indices = dither(&rgb, 8, 0, &colours, &[false; 4]);
        let expected: Vec<u8> = (0..64).map(|i| (i % 4) as u8).collect();
        assert_eq!(indices, expected);
    }

    /// An empty lookup table must not claim that black is palette colour 0.
    #[test]
    fn black_is_searched_not_taken_from_an_empty_table() {
        let rgb = vec![0; 4 * 4 * 3];
        assert_eq!(
            dither(&rgb, 4, 0, &[[255, 255, 255], [0, 0, 0]], &[false; 2]),
            vec![1; 16]
        );
    }

    #[test]
    fn ties_go_to_the_lower_index() {
        // Grey 100 is as far from 90 as from 110.
        let mut palette = Grid::new(&[[110, 110, 110], [90, 90, 90]]);
        assert_eq!(palette.nearest([100, 100, 100]), 0);
    }

    /// The grid's candidate lists must never hide the true nearest colour:
    /// checked against a plain search over a sweep of the whole cube.
    #[test]
    fn the_grid_search_agrees_with_a_plain_search() {
        let mut next = xorshift(0x2545_f491);
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
            let mut palette = Grid::new(&colours);
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

    /// Each lookup-table cell must hold the colour nearest its centre, as a
    /// plain search over every colour finds it (ties to the lower index).
    #[test]
    fn the_lookup_table_holds_each_cells_nearest_colour() {
        let mut next = xorshift(0x9e37_79b9);
        let colours: Vec<[u8; 3]> = (0..200)
            .map(|_| next().to_le_bytes()[..3].try_into().unwrap())
            .collect();
        let mut lut = Lut::new(Grid::new(&colours));
        let side = 1 << LUT_BITS;
        for r in (0..side).step_by(3) {
            for g in (0..side).step_by(5) {
                for b in (0..side).step_by(2) {
                    let cell = Lut::cell(r as u8, g as u8, b as u8);
                    // Doubled, so that the centre (low + 1.5) is whole.
                    let centre = [r, g, b].map(|v| 2 * (v << LUT_SHIFT) + 3);
                    let plain = (0..colours.len())
                        .min_by_key(|&i| {
                            (
                                squared_distance(colours[i].map(|v| 2 * i32::from(v)), centre),
                                i,
                            )
                        })
                        .unwrap();
                    assert_eq!(
                        usize::from(lut.nearest(cell)),
                        plain,
                        "cell {:?}",
                        [r, g, b]
                    );
                    // Asked again, the filled cell answers the same.
                    assert_eq!(usize::from(lut.nearest(cell)), plain);
                }
            }
        }
    }

    /// JPEG ringing beside a flat area: a few levels off is the flat colour,
    /// farther off is dithered, and only flat colours draw pixels in.
    #[test]
    fn pixels_near_a_flat_colour_take_it() {
        let colours = [[20, 20, 40], [28, 28, 48], [120, 60, 200], [124, 60, 200]];
        let flat = [true, false, false, false];
        let index = |pixel: [u8; 3]| dither(&pixel.repeat(16), 4, 0, &colours, &flat);
        // Within reach of flat colour 0 on every channel, even where a non-flat
        // colour would be nearer for some pixels of the matrix.
        for pixel in [[23, 17, 40], [20, 23, 37], [17, 20, 43]] {
            assert_eq!(index(pixel), vec![0; 16], "{pixel:?}");
        }
        // One channel out of reach: dithered between 0 and 1.
        let mixed = index([24, 24, 44]);
        assert!(mixed.contains(&0) && mixed.contains(&1), "{mixed:?}");
        // Near a colour that is not flat: dithered, not drawn in it.
        let mixed = index([122, 60, 200]);
        assert!(mixed.contains(&2) && mixed.contains(&3), "{mixed:?}");
    }

    /// Index 254, the last a palette may hold, is found and drawn in like any
    /// other: 255 is the lookup table's "not yet".
    #[test]
    fn the_last_of_255_colours_is_an_ordinary_index() {
        let colours: Vec<[u8; 3]> = (0..255u8).map(|i| [i, 255 - i, 7]).collect();
        let flat: Vec<bool> = (0..255).map(|i| i == 254).collect();
        let index = |pixel: [u8; 3]| dither(&pixel.repeat(16), 4, 0, &colours, &flat);
        assert_eq!(index([254, 1, 7]), vec![254; 16], "exactly the colour");
        assert_eq!(index([252, 2, 9]), vec![254; 16], "near it, and it is flat");
        let dithered = index([240, 15, 40]);
        assert!(dithered.iter().all(|&i| i < 255), "{dithered:?}");
    }

    #[test]
    fn exact_colours_are_found_and_others_are_not() {
        let colours = [
            [1, 2, 3],
            [200, 100, 50],
            [1, 2, 3],
            [0, 0, 0],
            [255, 255, 255],
        ];
        let exact = Exact::new(&colours);
        let get = |colour| exact.get(key(colour), raw_cell(colour));
        assert_eq!(get([1, 2, 3]), Some(0), "the first of duplicates");
        assert_eq!(get([200, 100, 50]), Some(1));
        assert_eq!(get([0, 0, 0]), Some(3));
        assert_eq!(get([255, 255, 255]), Some(4));
        // Beside a palette colour (same cell) and elsewhere.
        for other in [
            [1, 2, 4],
            [0, 0, 1],
            [254, 255, 255],
            [3, 2, 1],
            [90, 90, 90],
        ] {
            assert_eq!(get(other), None, "{other:?}");
        }
    }

    /// The AVX2 remap must answer exactly what the scalar one does: on a
    /// gradient with flat panels, exact palette colours and JPEG-like noise
    /// beside them, at widths that leave a scalar tail, from bands that start
    /// at every phase of the matrix.
    #[test]
    fn every_kernel_answers_like_the_scalar_one() {
        let mut next = xorshift(0x51f1_5eed);
        let mut colours: Vec<[u8; 3]> = (0..200)
            .map(|_| next().to_le_bytes()[..3].try_into().unwrap())
            .collect();
        // Greys a few levels apart, as Wu puts them along a gradient.
        colours.extend((0..54).map(|i| [i * 4 + 20; 3]));
        colours.push(colours[3]); // a duplicate
        assert_eq!(colours.len(), MAX_COLOURS);
        let flat: Vec<bool> = (0..colours.len()).map(|i| i % 7 == 0).collect();
        for (width, height, first_row) in [(1200, 24, 0), (37, 9, 1), (11, 5, 2), (64, 8, 3)] {
            let mut rgb = Vec::with_capacity(width * height * 3);
            for y in 0..height {
                for x in 0..width {
                    let noise = next();
                    let pixel = match (x / 5 + y) % 4 {
                        // A palette colour, exactly.
                        0 => colours[noise as usize % colours.len()],
                        // A flat colour, a few levels off (or farther).
                        1 => {
                            let base = colours[7 * (noise as usize % 36)];
                            let off = noise.to_le_bytes();
                            [0, 1, 2].map(|c| base[c].saturating_add(off[c] % 6).saturating_sub(2))
                        }
                        // A grey gradient.
                        2 => [((x * 255) / width) as u8; 3],
                        _ => noise.to_le_bytes()[..3].try_into().unwrap(),
                    };
                    rgb.extend_from_slice(&pixel);
                }
            }
            let fastest = dither_with(&rgb, width, first_row, &colours, &flat, Kernel::Fastest);
            let scalar = dither_with(&rgb, width, first_row, &colours, &flat, Kernel::Scalar);
            let differ = fastest.iter().zip(&scalar).position(|(a, b)| a != b);
            assert_eq!(differ, None, "{width}×{height} from row {first_row}");
        }
    }

    /// Structured palettes (greys one level apart, a tight cluster) are where a
    /// multiplicative hash collides; each must still get a table.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_exact_colours_hash_without_collisions() {
        let mut next = xorshift(0x0bad_cafe);
        let greys: Vec<[u8; 3]> = (0..255).map(|i| [i as u8; 3]).collect();
        let cluster: Vec<[u8; 3]> = (0..255)
            .map(|_| {
                let b = next().to_le_bytes();
                [b[0], b[1], b[2]].map(|v| 100 + v % 8)
            })
            .collect();
        let ramp: Vec<[u8; 3]> = (0..255).map(|i| [i as u8, 0, 255 - i as u8]).collect();
        for colours in [greys, cluster, ramp] {
            assert!(
                avx2::PerfectHash::new(&colours).is_some(),
                "{:?}…",
                &colours[..4]
            );
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_remap_runs_where_the_cpu_has_it() {
        let colours = [[0, 0, 0], [255, 255, 255]];
        let remap = Remap::new(&colours, &[false; 2], Kernel::Fastest);
        assert_eq!(remap.perfect.is_some(), avx2::available());
        let remap = Remap::new(&colours, &[false; 2], Kernel::Scalar);
        assert!(remap.perfect.is_none());
    }

    #[test]
    fn a_colour_between_two_mixes_them_in_proportion() {
        // A quarter of the way from one grey to the next: without dithering
        // every pixel would be the darker one. (3 of 16 here: the nudges are
        // whole levels, and a tie goes to the darker.)
        let rgb = vec![104; 64 * 64 * 3];
        let indices = dither(
            &rgb,
            64,
            0,
            &[[100, 100, 100], [116, 116, 116]],
            &[false; 2],
        );
        let lighter = indices.iter().filter(|&&i| i == 1).count();
        assert!(
            (2 * 4096 / 16..6 * 4096 / 16).contains(&lighter),
            "{lighter} of 4096 pixels are the lighter grey"
        );
    }
}
