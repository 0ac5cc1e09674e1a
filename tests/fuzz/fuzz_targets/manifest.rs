//! Fuzz target: arbitrary bytes through what `berth dry-run -f` and
//! `berth explain` do with a file: the manifest loader, the converter to a
//! typed snapshot, the planner, and the explanation of every claim. Errors
//! are the loader's and converter's job; only a panic, an abort or a hang
//! is a finding.

#![no_main]

use berth::binding;
use berth::manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Files are read as UTF-8 text; anything else never reaches the loader.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(docs) = manifest::parse_str("fuzz.yaml", text) else {
        return;
    };
    let Ok(snapshot) = manifest::to_snapshot(docs) else {
        return;
    };
    let plan = binding::plan(&snapshot);
    // Planning is deterministic: the same snapshot gives the same plan.
    assert_eq!(
        format!("{plan:?}"),
        format!("{:?}", binding::plan(&snapshot)),
        "two plans of one snapshot differ"
    );
    for claim in &snapshot.claims {
        let _ = binding::explain::explain(&snapshot, &claim.key);
    }
});
