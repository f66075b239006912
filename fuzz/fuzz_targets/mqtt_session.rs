#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mesero::fuzzing::mqtt_session(data));
