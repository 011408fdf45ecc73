//! Uploaded files through the rendition engine: sniff, check, decode, render.
//! The properties are `imgate_rendition::fuzz::source`'s.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| imgate_rendition::fuzz::source(data));
