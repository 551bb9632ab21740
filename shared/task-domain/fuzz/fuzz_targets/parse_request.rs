//! Fuzzes request parsing: arbitrary bytes as a create body, a patch body
//! (against a stored task) and a list query string. Nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    task_domain::input::parse_any(data);
});
