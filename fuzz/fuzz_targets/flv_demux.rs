#![no_main]
//! Whatever the bytes, reading them as FLV (tags, H.264/H.265 configuration records and frames, AAC/MP3) must
//! not panic.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tessera::flv::codec::fuzz_one(data);
});
