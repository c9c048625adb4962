#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ringproxy::fuzz::request_head(data));
