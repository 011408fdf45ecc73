//! Properties of the contract that must hold for every input, not just the examples.

use imgate_contract::{CardRequest, ContractError, Keyring, Route, Signable, route};
use proptest::prelude::*;

const KEYS: &str = "k1:0123456789abcdef0123456789abcdef,k2:fedcba9876543210fedcba9876543210";

fn card(path: &str, query: &str) -> Result<CardRequest, ContractError> {
    match route::parse("GET", path, query)? {
        Route::Card(c) => Ok(c),
        other => panic!("{other:?}"),
    }
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Parameter names: short, lowercase, never the reserved `s`, `k`, `v`.
fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_]{1,8}"
}

/// Values: any Unicode text, including characters that need escaping.
fn value() -> impl Strategy<Value = String> {
    "\\PC{1,20}"
}

fn params() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::btree_map(name(), value(), 0..6).prop_map(|m| m.into_iter().collect())
}

/// Builds a raw query in a random order, with a random but valid encoding for each value.
fn raw_query(params: &[(String, String)], order: &[usize], plus_for_space: bool) -> String {
    order
        .iter()
        .map(|&i| {
            let (k, v) = &params[i % params.len()];
            let v = if plus_for_space {
                encode(v).replace("%20", "+")
            } else {
                encode(v)
            };
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

proptest! {
    #[test]
    fn canonicalisation_is_order_and_encoding_insensitive(
        params in params(),
        seed in any::<u64>(),
        plus in any::<bool>(),
    ) {
        let mut order: Vec<usize> = (0..params.len()).collect();
        // A deterministic shuffle from the seed.
        let mut s = seed;
        for i in (1..order.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            order.swap(i, (s >> 33) as usize % (i + 1));
        }
        let sorted: Vec<usize> = (0..params.len()).collect();
        let a = card("/og/t.png", &raw_query(&params, &sorted, false)).unwrap();
        let b = card("/og/t.png", &raw_query(&params, &order, plus)).unwrap();
        prop_assert_eq!(a.signed_string(), b.signed_string());
    }

    #[test]
    fn canonicalisation_is_idempotent(params in params()) {
        let order: Vec<usize> = (0..params.len()).collect();
        let once = card("/og/t.png", &raw_query(&params, &order, false)).unwrap();
        let canonical = once.query.canonical();
        let twice = card("/og/t.png", &canonical).unwrap();
        prop_assert_eq!(&twice.query, &once.query);
        prop_assert_eq!(twice.query.canonical(), canonical);
    }

    #[test]
    fn sign_then_verify_round_trips(params in params(), key in 0usize..2) {
        let ring = Keyring::parse(KEYS).unwrap();
        // Either key in the ring may have signed it.
        let signer = if key == 0 { ring.clone() } else {
            Keyring::parse(KEYS.split(',').nth(1).unwrap()).unwrap()
        };
        let order: Vec<usize> = (0..params.len()).collect();
        let url = signer.sign_url(&card("/og/t.png", &raw_query(&params, &order, false)).unwrap()).unwrap();
        let (path, query) = url.split_once('?').unwrap();
        prop_assert_eq!(ring.verify(&card(path, query).unwrap()), Ok(()));
    }

    #[test]
    fn any_change_fails_verification(
        params in params(),
        change in 0usize..5,
        extra in name(),
        new_value in value(),
        flip in any::<prop::sample::Index>(),
    ) {
        let ring = Keyring::parse(KEYS).unwrap();
        let order: Vec<usize> = (0..params.len()).collect();
        let signed = ring.sign_url(&card("/og/t.png", &raw_query(&params, &order, false)).unwrap()).unwrap();
        let (path, query) = signed.split_once('?').unwrap();
        let mut pairs: Vec<(String, String)> = query.split('&').map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        }).collect();
        let mut path = path.to_string();
        let identity: Vec<usize> = (0..pairs.len()).filter(|&i| !["k", "s"].contains(&pairs[i].0.as_str())).collect();
        match change {
            // Another path.
            0 => path = "/og/u.png".to_string(),
            // A new parameter.
            1 => {
                prop_assume!(!pairs.iter().any(|(k, _)| *k == extra));
                pairs.push((extra, encode(&new_value)));
            }
            // A changed value.
            2 => {
                prop_assume!(!identity.is_empty());
                let i = identity[flip.index(identity.len())];
                let old = percent_encoding::percent_decode_str(&pairs[i].1).decode_utf8().unwrap().to_string();
                prop_assume!(old != new_value);
                pairs[i].1 = encode(&new_value);
            }
            // A removed parameter.
            3 => {
                prop_assume!(!identity.is_empty());
                pairs.remove(identity[flip.index(identity.len())]);
            }
            // A changed signature.
            _ => {
                let s = pairs.iter_mut().find(|(k, _)| k == "s").unwrap();
                let mut bytes = s.1.clone().into_bytes();
                let i = flip.index(bytes.len());
                bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
                s.1 = String::from_utf8(bytes).unwrap();
            }
        }
        let query = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
        let tampered = card(&path, &query).unwrap();
        prop_assert!(ring.verify(&tampered).is_err(), "{path}?{query} verified");
    }
}
