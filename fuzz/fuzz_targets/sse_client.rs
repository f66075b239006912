#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mesero::fuzzing::sse_client(data));
