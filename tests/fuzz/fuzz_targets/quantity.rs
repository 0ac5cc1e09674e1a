//! Fuzz target: arbitrary strings through the quantity parser, checking
//! what any accepted quantity must satisfy: its canonical form parses back
//! to the same value, and the arithmetic the binding core does on it
//! (ordering, rounding up to bytes, saturating sums) never panics.

#![no_main]

use berth::quantity::Quantity;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(q) = Quantity::parse(text) else {
        return;
    };
    let canonical = q.to_string();
    let back = Quantity::parse(&canonical)
        .unwrap_or_else(|e| panic!("{text:?} printed as {canonical:?}, which does not parse: {e}"));
    assert_eq!(
        back.cmp(&q),
        std::cmp::Ordering::Equal,
        "{text:?} printed as {canonical:?}, which parses to another value"
    );
    assert_eq!(
        back.to_string(),
        canonical,
        "{text:?}: the canonical form is not stable"
    );
    let _ = q.value_ceil();
    let _ = q.is_positive();
    let _ = q.as_nanos();
    let sum = q.saturating_add(q);
    if q.is_positive() {
        assert!(sum >= q, "{text:?}: q + q < q");
    }
    let _ = berth::csi::parse_size(text);
});
