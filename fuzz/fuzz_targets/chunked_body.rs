#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ringproxy::fuzz::chunked_body(data));
