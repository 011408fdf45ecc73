//! The known-present index: objects the store is known to hold, kept in Spin's
//! key-value store so that redirect mode answers a hit without asking the store.
//!
//! It is an accelerator, never a source of truth:
//! - Bounded: [`SHARDS`] keys (`idx-00`…`idx-ff`, well under the 1,024 keys of
//!   Spin's local store), each holding at most [`ENTRIES_PER_SHARD`] entries
//!   (1 KiB, far under its 1 MB values): 16,384 objects, the least recently
//!   verified evicted first.
//! - An entry is 8 bytes of the object key's SHA-256 and the unix time the
//!   object was last seen. Entries older than `index_ttl_secs` are not trusted:
//!   the edge asks the store again, so an object removed by a lifecycle rule
//!   stops being redirected to within that time, and a 404 removes the entry.
//! - Writers race (read, modify, write); a lost entry costs one store lookup.
//!   A 64-bit fingerprint collision among the entries of one shard is the only
//!   way to be wrong, and it lasts at most one TTL.

use imgate_contract::ObjectKey;
use sha2::{Digest, Sha256};

pub const SHARDS: usize = 256;
pub const ENTRIES_PER_SHARD: usize = 64;
const ENTRY_LEN: usize = 16;

/// Where one object's entry lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The key-value key of the shard.
    pub shard: String,
    fingerprint: [u8; 8],
}

impl Slot {
    pub fn of(key: &ObjectKey) -> Self {
        let digest = Sha256::digest(key.as_str().as_bytes());
        Self {
            shard: format!("idx-{:02x}", digest[0]),
            fingerprint: digest[1..9].try_into().expect("8 bytes"),
        }
    }

    /// When the object was last seen, if the shard has an entry for it.
    pub fn seen_at(&self, shard: &[u8]) -> Option<u64> {
        entries(shard)
            .find(|(fingerprint, _)| *fingerprint == self.fingerprint)
            .map(|(_, seen)| seen)
    }

    /// Whether the shard vouches for the object at `now`.
    pub fn is_fresh(&self, shard: &[u8], now: u64, ttl_secs: u64) -> bool {
        self.seen_at(shard)
            .is_some_and(|seen| now.saturating_sub(seen) < ttl_secs)
    }

    /// The shard with this object seen at `now`, evicting the stalest entry if full.
    pub fn record(&self, shard: &[u8], now: u64) -> Vec<u8> {
        let mut kept: Vec<([u8; 8], u64)> = entries(shard)
            .filter(|(fingerprint, _)| *fingerprint != self.fingerprint)
            .collect();
        // Most recent first, so truncation drops the stalest.
        kept.sort_by_key(|(_, seen)| std::cmp::Reverse(*seen));
        kept.truncate(ENTRIES_PER_SHARD - 1);
        kept.insert(0, (self.fingerprint, now));
        encode(&kept)
    }

    /// The shard without this object, or `None` if it had no entry for it.
    pub fn forget(&self, shard: &[u8]) -> Option<Vec<u8>> {
        self.seen_at(shard)?;
        let kept: Vec<_> = entries(shard)
            .filter(|(fingerprint, _)| *fingerprint != self.fingerprint)
            .collect();
        Some(encode(&kept))
    }
}

/// The entries of a shard value. Trailing bytes that do not form an entry (a
/// value written by something else) are ignored rather than trusted.
fn entries(shard: &[u8]) -> impl Iterator<Item = ([u8; 8], u64)> + '_ {
    shard.chunks_exact(ENTRY_LEN).map(|entry| {
        let (fingerprint, seen) = entry.split_at(8);
        (
            fingerprint.try_into().expect("8 bytes"),
            u64::from_be_bytes(seen.try_into().expect("8 bytes")),
        )
    })
}

fn encode(entries: &[([u8; 8], u64)]) -> Vec<u8> {
    entries
        .iter()
        .flat_map(|(fingerprint, seen)| fingerprint.iter().copied().chain(seen.to_be_bytes()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> ObjectKey {
        ObjectKey::for_rendition(
            "small",
            &format!("u/{i}.jpg"),
            imgate_contract::ImageFormat::Jpeg,
        )
    }

    #[test]
    fn records_then_trusts_until_the_ttl() {
        let slot = Slot::of(&key(1));
        assert!(slot.shard.starts_with("idx-") && slot.shard.len() == 6);
        assert!(!slot.is_fresh(&[], 1000, 60));
        let shard = slot.record(&[], 1000);
        assert!(slot.is_fresh(&shard, 1059, 60));
        assert!(!slot.is_fresh(&shard, 1060, 60), "stale after the TTL");
        let refreshed = slot.record(&shard, 2000);
        assert_eq!(refreshed.len(), ENTRY_LEN, "one entry per object");
        assert!(slot.is_fresh(&refreshed, 2030, 60));
        assert_eq!(slot.forget(&refreshed), Some(Vec::new()));
        assert_eq!(slot.forget(&[]), None);
    }

    #[test]
    fn a_full_shard_evicts_the_stalest() {
        // Objects that share one shard.
        let target = Slot::of(&key(0)).shard;
        let slots: Vec<Slot> = (0..)
            .map(|i| Slot::of(&key(i)))
            .filter(|s| s.shard == target)
            .take(ENTRIES_PER_SHARD + 1)
            .collect();
        let mut shard = Vec::new();
        for (t, slot) in slots.iter().enumerate() {
            shard = slot.record(&shard, 100 + t as u64);
        }
        assert_eq!(shard.len(), ENTRIES_PER_SHARD * ENTRY_LEN);
        assert!(!slots[0].is_fresh(&shard, 200, 1000), "oldest evicted");
        for slot in &slots[1..] {
            assert!(slot.is_fresh(&shard, 200, 1000));
        }
    }

    #[test]
    fn garbage_is_not_trusted() {
        let slot = Slot::of(&key(1));
        assert!(!slot.is_fresh(b"not an index value", 0, u64::MAX));
        let shard = slot.record(b"xyz", 5);
        assert_eq!(shard.len(), ENTRY_LEN);
    }
}
