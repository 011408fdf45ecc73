//! Helpers for imgate's end-to-end tests.

use std::collections::BTreeMap;

/// Width and height from a PNG's IHDR chunk, or `None` if the bytes are not a PNG.
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || !bytes.starts_with(SIGNATURE) || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    Some((be(16), be(20)))
}

/// Parses Prometheus text into `name → value` (counters without labels).
pub fn prometheus(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.split_once(' ')?;
            Some((name.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_png_size() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&1200u32.to_be_bytes());
        png.extend_from_slice(&630u32.to_be_bytes());
        assert_eq!(png_size(&png), Some((1200, 630)));
        assert_eq!(png_size(b"GIF89a"), None);
    }

    #[test]
    fn reads_counters() {
        let m = prometheus("# HELP a x\n# TYPE a counter\na 3\nb 4.5\n");
        assert_eq!(m["a"], 3.0);
        assert_eq!(m["b"], 4.5);
    }
}
