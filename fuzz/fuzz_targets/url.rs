//! Request lines (`path?query`) through the contract: parse, verify,
//! canonicalise, key. The properties are `imgate_contract::fuzz::url`'s.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| imgate_contract::fuzz::url(data));
