//! The id a request is logged under at the edge and at the origin, so one
//! request's lines can be found in both logs.

use std::hash::{BuildHasher, Hasher};

/// The header that carries it: from a load balancer or CDN to the edge, from
/// the edge to the origin, and back to the client.
pub const HEADER: &str = "x-request-id";

/// Longest id accepted from a caller; longer ones are replaced.
pub const MAX_LEN: usize = 64;

/// The caller's id when it is a sane token (1–64 of `A-Z a-z 0-9 - _ . =`,
/// which covers UUIDs and CloudFront's `x-amz-cf-id`), else a fresh one: a
/// header we log must not be able to forge log lines or fill the disk.
pub fn accept_or_new(incoming: Option<&str>) -> String {
    match incoming {
        Some(id) if is_valid(id) => id.to_string(),
        _ => new(),
    }
}

pub fn is_valid(id: &str) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='))
}

/// 16 hex digits, unique per call. Ids need to be unique, not secret, so the
/// randomly seeded keys std already draws for hash maps (from the OS, or
/// `wasi:random` on the edge) are enough: no random-number crate in the .wasm.
pub fn new() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u8(0);
    format!("{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sane_ids_and_replaces_the_rest() {
        let cf = "Pa6gxKIbr5lHMuVbq3C7cAS5qaHyfnE6Yd5xYmxhDZEgPl4ESUDgMw==";
        assert_eq!(accept_or_new(Some(cf)), cf);
        assert_eq!(accept_or_new(Some("req-1.a_b")), "req-1.a_b");
        for bad in ["", "a b", "x\nforged=1", "ü", &"a".repeat(65)] {
            let id = accept_or_new(Some(bad));
            assert_ne!(id, bad);
            assert!(is_valid(&id), "{id}");
        }
    }

    #[test]
    fn fresh_ids_differ() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| id.len() == 16 && is_valid(id)));
    }
}
