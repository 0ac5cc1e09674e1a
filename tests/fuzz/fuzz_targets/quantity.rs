//! Fuzz target: arbitrary strings through the quantity parser, checking
//! what any accepted quantity must satisfy: its canonical form parses back
//! to the same value (and, after at most one re-read, to the same text),
//! and the arithmetic the binding core does on it
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
    // Upstream prints a binary quantity that is no whole number of any
    // binary unit without a suffix (`62.5Ki` → `64000`), which reads back
    // as decimal (`64k`): the text may change once, never the value, and
    // is stable from then on.
    let again = back.to_string();
    let third = Quantity::parse(&again)
        .unwrap_or_else(|e| panic!("{text:?} printed as {again:?}, which does not parse: {e}"));
    assert_eq!(
        third.cmp(&q),
        std::cmp::Ordering::Equal,
        "{text:?} printed as {again:?}, which parses to another value"
    );
    assert_eq!(
        third.to_string(),
        again,
        "{text:?}: the canonical form is not stable after one re-read"
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
