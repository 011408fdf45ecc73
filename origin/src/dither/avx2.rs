//! The remap eight pixels at a time, with AVX2 gathers: the one module of the
//! workspace allowed unsafe code (the intrinsics that read memory take raw
//! pointers). It computes what `Remap::pixel` computes, for every lane at
//! once and without branches: the exact colour, the flat colour within
//! reach, and the lookup table's answer for the nudged pixel, then keeps the
//! first that applies. Only lanes whose lookup-table cell is still unfilled
//! (a few thousand a card) drop to the scalar `Lut::fill`. The tests check
//! it against the scalar remap pixel for pixel.
//!
//! The scalar remap needs a branch per pixel that a gradient takes at random
//! and ~75 instructions for a pixel that does not repeat the one a period to
//! its left; here eight pixels cost about as many instructions as one.

#![allow(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

use std::arch::x86_64::{
    __m256i, _mm_cvtsi128_si64, _mm256_add_epi32, _mm256_adds_epu8, _mm256_and_si256,
    _mm256_andnot_si256, _mm256_blendv_epi8, _mm256_castsi256_ps, _mm256_castsi256_si128,
    _mm256_cmpeq_epi32, _mm256_i32gather_epi32, _mm256_loadu_si256, _mm256_madd_epi16,
    _mm256_maddubs_epi16, _mm256_max_epu8, _mm256_movemask_ps, _mm256_mullo_epi32, _mm256_or_si256,
    _mm256_permutevar8x32_epi32, _mm256_set1_epi32, _mm256_setr_epi8, _mm256_setr_epi32,
    _mm256_setzero_si256, _mm256_shuffle_epi8, _mm256_srli_epi32, _mm256_srlv_epi32,
    _mm256_storeu_si256, _mm256_subs_epu8,
};

use super::{FLAT_REACH, LUT_BITS, Lut, NUDGES, NearFlat, Remap};

// `cell_of` cuts channels with a shift by 2 and a 6-bit mask.
const _: () = assert!(LUT_BITS == 6);

/// Pixels a step.
pub(super) const LANES: usize = 8;

/// Bytes the byte tables (`Lut::index`, `NearFlat::cells`) hold past their
/// last cell: a gather reads a 32-bit word at a byte's offset.
pub(super) const GATHER_PAD: usize = 3;

/// Whether this CPU runs the kernel (cached by std after the first ask).
pub(super) fn available() -> bool {
    is_x86_feature_detected!("avx2")
}

/// The palette's exact colours for the kernel: a collision-free
/// multiplicative hash, so one gather and one compare answer whether a pixel
/// is exactly a palette colour (the scalar table probes on).
pub(super) struct PerfectHash {
    /// Per slot: `key | index << 24`, or `EMPTY`.
    slots: Vec<u32>,
    multiplier: u32,
    shift: u32,
}

impl PerfectHash {
    /// No key has bits above 24 and no index is 255, so no colour matches it.
    const EMPTY: u32 = u32::MAX;

    /// Finds a multiplier that puts every distinct colour in a slot of its
    /// own: 255 colours in 2^14 slots (64 KiB) need ~7 tries on random
    /// colours; failing that, bigger tables. `None` if none of those work
    /// (then the scalar remap runs).
    pub(super) fn new(colours: &[[u8; 3]]) -> Option<Self> {
        let keys: Vec<u32> = colours.iter().map(|&c| super::key(c)).collect();
        let mut multiplier: u32 = 0x9E37_79B1;
        for bits in 14..=16 {
            let shift = 32 - bits;
            for _ in 0..256 {
                multiplier = multiplier.wrapping_add(0x6A09_E668); // stays odd
                let mut slots = vec![Self::EMPTY; 1 << bits];
                let placed = keys.iter().enumerate().all(|(index, &key)| {
                    let slot = &mut slots[(key.wrapping_mul(multiplier) >> shift) as usize];
                    match *slot {
                        Self::EMPTY => {
                            *slot = key | (index as u32) << 24;
                            true
                        }
                        // The first of duplicates keeps it, as in `Exact`.
                        held => held & 0xFF_FFFF == key,
                    }
                });
                if placed {
                    return Some(Self {
                        slots,
                        multiplier,
                        shift,
                    });
                }
            }
        }
        None
    }
}

/// The nudge of each lane for a row of the matrix, as two saturating byte
/// additions on a pixel's `[b, g, r, 0]` word: `(up, down)`.
fn row_nudges(y: usize) -> ([u32; LANES], [u32; LANES]) {
    let mut up = [0; LANES];
    let mut down = [0; LANES];
    for lane in 0..LANES {
        let nudge = i32::from(NUDGES[y % 4][lane % 4]);
        let grey = |v: i32| (v as u32) * 0x01_0101;
        up[lane] = grey(nudge.max(0));
        down[lane] = grey((-nudge).max(0));
    }
    (up, down)
}

/// Remaps the pixels of one row (`row`: packed RGB, `y`: its number in the
/// image) eight at a time from the left, as far as whole 32-byte loads stay
/// inside the row, and returns how many pixels it wrote to `out` (a multiple
/// of `LANES`; the caller remaps the rest).
pub(super) fn row(remap: &mut Remap, row: &[u8], y: usize, out: &mut [u8]) -> usize {
    let Remap {
        perfect: Some(hash),
        near_flat,
        lut,
        ..
    } = remap
    else {
        return 0;
    };
    debug_assert!(available());
    // SAFETY: `Remap::new` builds a `PerfectHash` only when `available()`,
    // so the CPU has AVX2.
    unsafe { row_avx2(hash, near_flat, lut, row, y, out) }
}

#[target_feature(enable = "avx2")]
fn row_avx2(
    hash: &PerfectHash,
    near_flat: &NearFlat,
    lut: &mut Lut,
    row: &[u8],
    y: usize,
    out: &mut [u8],
) -> usize {
    debug_assert_eq!(row.len(), 3 * out.len());
    // What the gathers' bounds rest on, checked once a row.
    assert_eq!(hash.slots.len(), 1 << (32 - hash.shift));
    assert!(near_flat.cells.len() >= Lut::CELLS + GATHER_PAD);
    assert_eq!(near_flat.words.len(), 256);
    assert!(lut.index.len() >= Lut::CELLS + GATHER_PAD);
    // Lanes 0-3 take bytes 0..12 of the load, lanes 4-7 bytes 12..24: first
    // move bytes 12..28 into the upper half, then spread each pixel's bytes
    // into a `[b, g, r, 0]` word, which is its key `r << 16 | g << 8 | b`.
    let halves = _mm256_setr_epi32(0, 1, 2, 3, 3, 4, 5, 6);
    let spread = _mm256_setr_epi8(
        2, 1, 0, -1, 5, 4, 3, -1, 8, 7, 6, -1, 11, 10, 9, -1, //
        2, 1, 0, -1, 5, 4, 3, -1, 8, 7, 6, -1, 11, 10, 9, -1,
    );
    // A word's bytes cut to `LUT_BITS` (after a shift by `LUT_SHIFT`), then
    // joined into a cell: b + 64 g (pairs of bytes), + 4096 r (pairs of words).
    let six_bits = _mm256_set1_epi32(0x3F_3F3F);
    let byte_weights = _mm256_set1_epi32(0x00_01_40_01);
    let word_weights = _mm256_set1_epi32(0x1000_0001);
    let low_byte = _mm256_set1_epi32(0xFF);
    let low_bytes = _mm256_set1_epi32(0xFF_FFFF);
    let reach = _mm256_set1_epi32(FLAT_REACH * 0x01_0101);
    let empty = _mm256_set1_epi32(PerfectHash::EMPTY as i32);
    let unknown = _mm256_set1_epi32(i32::from(super::UNKNOWN));
    let zero = _mm256_setzero_si256();
    let all = _mm256_set1_epi32(-1);
    let multiplier = _mm256_set1_epi32(hash.multiplier as i32);
    let shift = _mm256_set1_epi32(hash.shift as i32);
    let (up, down) = row_nudges(y);
    // SAFETY: `[u32; 8]` is 32 bytes, which unaligned loads may read.
    let (up, down) = unsafe {
        (
            _mm256_loadu_si256(up.as_ptr().cast()),
            _mm256_loadu_si256(down.as_ptr().cast()),
        )
    };
    // The first byte of each lane's word, into the low 8 bytes.
    let gather_bytes = _mm256_setr_epi8(
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, //
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    );
    let join_halves = _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1);

    let cell_of = |bgr: __m256i| {
        let cut = _mm256_and_si256(_mm256_srli_epi32::<2>(bgr), six_bits);
        _mm256_madd_epi16(_mm256_maddubs_epi16(cut, byte_weights), word_weights)
    };
    let slots = hash.slots.as_ptr().cast::<i32>();
    let flat_cells = near_flat.cells.as_ptr().cast::<i32>();
    let flat_colours = near_flat.words.as_ptr().cast::<i32>();

    let mut x = 0;
    while 3 * x + 32 <= row.len() {
        // SAFETY: 3 x + 32 <= row.len(), checked above.
        let raw = unsafe { _mm256_loadu_si256(row.as_ptr().add(3 * x).cast()) };
        let key = _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(raw, halves), spread);
        let cell = cell_of(key);

        // Exactly a palette colour?
        let slot = _mm256_srlv_epi32(_mm256_mullo_epi32(key, multiplier), shift);
        // SAFETY: `slot` is a 32-bit product shifted right by `shift`, so
        // below 2^(32 - shift) = slots.len() (asserted above).
        let held = unsafe { _mm256_i32gather_epi32::<4>(slots, slot) };
        let exact = _mm256_andnot_si256(
            _mm256_cmpeq_epi32(held, empty),
            _mm256_cmpeq_epi32(_mm256_and_si256(held, low_bytes), key),
        );
        let exact_index = _mm256_srli_epi32::<24>(held);

        let index = if mask(exact) == ALL {
            // A flat area or text on it: nothing else to ask.
            exact_index
        } else {
            // Within reach of the flat colour of its cell?
            // SAFETY: a cell is below `Lut::CELLS` (three 6-bit fields) and
            // the table holds `GATHER_PAD` bytes past the last, so the 4-byte
            // read at its offset is inside it.
            let flat = unsafe { _mm256_i32gather_epi32::<1>(flat_cells, cell) };
            let flat = _mm256_and_si256(flat, low_byte);
            let has_flat = _mm256_andnot_si256(_mm256_cmpeq_epi32(flat, zero), all);
            let (near, flat_index) = if mask(has_flat) == 0 {
                // Most of a gradient: no flat colour near.
                (zero, zero)
            } else {
                // 1 + index, or 0: the lanes with 0 read colour 255 and are masked.
                let flat_index = _mm256_and_si256(_mm256_add_epi32(flat, low_byte), low_byte);
                // SAFETY: `flat_index` is below 256, the length of `words`.
                let colour = unsafe { _mm256_i32gather_epi32::<4>(flat_colours, flat_index) };
                let distance =
                    _mm256_max_epu8(_mm256_subs_epu8(colour, key), _mm256_subs_epu8(key, colour));
                let within = _mm256_cmpeq_epi32(_mm256_subs_epu8(distance, reach), zero);
                (_mm256_and_si256(has_flat, within), flat_index)
            };

            // The lookup table's colour for the nudged pixel.
            let nudged = cell_of(_mm256_subs_epu8(_mm256_adds_epu8(key, up), down));
            let mut dithered = gather_lut(lut, nudged, low_byte);
            let settled = _mm256_or_si256(exact, near);
            let unfilled = _mm256_andnot_si256(settled, _mm256_cmpeq_epi32(dithered, unknown));
            let unfilled = mask(unfilled);
            if unfilled != 0 {
                let mut cells = [0u32; LANES];
                // SAFETY: `[u32; 8]` is 32 bytes, which unaligned stores may write.
                unsafe { _mm256_storeu_si256(cells.as_mut_ptr().cast(), nudged) };
                // Only the lanes that use the answer, as the scalar remap fills.
                for (lane, &cell) in cells.iter().enumerate() {
                    if unfilled >> lane & 1 == 1 {
                        lut.nearest(cell as usize);
                    }
                }
                dithered = gather_lut(lut, nudged, low_byte);
            }
            _mm256_blendv_epi8(
                _mm256_blendv_epi8(dithered, flat_index, near),
                exact_index,
                exact,
            )
        };
        let packed =
            _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(index, gather_bytes), join_halves);
        let bytes = _mm_cvtsi128_si64(_mm256_castsi256_si128(packed)).to_le_bytes();
        out[x..x + LANES].copy_from_slice(&bytes);
        x += LANES;
    }
    x
}

/// Lanes whose mask is all ones, as 8 bits.
const ALL: i32 = 0xFF;

#[target_feature(enable = "avx2")]
fn mask(lanes: __m256i) -> i32 {
    _mm256_movemask_ps(_mm256_castsi256_ps(lanes))
}

#[target_feature(enable = "avx2")]
fn gather_lut(lut: &Lut, cells: __m256i, low_byte: __m256i) -> __m256i {
    // SAFETY: every cell is below `Lut::CELLS` and the table holds
    // `GATHER_PAD` bytes past the last (asserted in `row_avx2`, the only
    // caller), so the 4-byte read is inside it.
    let word = unsafe { _mm256_i32gather_epi32::<1>(lut.index.as_ptr().cast(), cells) };
    _mm256_and_si256(word, low_byte)
}
