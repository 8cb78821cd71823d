#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| enlace::testing::fuzz::oblivious(data));
