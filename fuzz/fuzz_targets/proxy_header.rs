#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ringproxy::fuzz::proxy_header(data));
