//! What must hold for any uploaded file, however hostile: the checks the fuzz
//! target `source` runs (`fuzz/`), and that `cargo test` replays over the kept
//! corpus (`fuzz/corpus/source/`), so a crash once found stays fixed.
//!
//! Compiled only for tests and under cargo-fuzz (`--cfg fuzzing`).

use imgate_contract::{ImageFormat, Presets};

use crate::{Original, SourceLimits, codec, sniff};

/// Small enough that one input takes milliseconds; the checks before decoding
/// are what is under test, not the size of the defaults.
const LIMITS: SourceLimits = SourceLimits {
    max_bytes: 1 << 20,
    max_pixels: 1 << 20,
};

/// Sniffs, checks and decodes `data` as an upload; if it is accepted, makes a
/// small rendition of it. Panics (which the fuzzer reports) when a property fails.
pub fn source(data: &[u8]) {
    let sniffed = sniff(data);
    let Ok(original) = Original::decode(data, LIMITS) else {
        return;
    };
    assert!(sniffed.is_ok(), "decoded what sniffing refused");
    let (width, height) = original.dimensions();
    assert!(
        u64::from(width) * u64::from(height) <= LIMITS.max_pixels,
        "decoded {width}×{height} past the pixel limit"
    );
    let presets = Presets::parse("fuzz:48x32:cover:70,fuzzfit:40x40:fit:70").expect("presets");
    let format = [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::Webp][data.len() % 3];
    for preset in presets.iter() {
        let out = original
            .render(preset, format)
            .unwrap_or_else(|e| panic!("{width}×{height} decoded but did not render: {e}"));
        assert!(out.width <= preset.width && out.height <= preset.height);
        assert_eq!(sniff(&out.bytes).ok(), Some(codec(format)));
    }
}

#[cfg(test)]
mod corpus {
    /// Every input the fuzzer kept, and every crash it ever found (kept apart
    /// in `regressions/`, which corpus minimisation does not touch), still passes.
    #[test]
    fn the_fuzz_corpus_replays_clean() {
        let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let mut n = 0;
        for dir in ["corpus/source", "regressions/source"] {
            for entry in std::fs::read_dir(fuzz.join(dir)).expect(dir) {
                let path = entry.expect("corpus entry").path();
                super::source(&std::fs::read(&path).expect("corpus file"));
                n += 1;
            }
        }
        assert!(n > 0, "the source corpus is empty");
    }
}
