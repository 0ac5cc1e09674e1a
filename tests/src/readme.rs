//! Blocks of the repository's documentation that tests run or apply as
//! written. A block is marked by an HTML comment right before its fence,
//! e.g. `<!-- real-node: install (…) -->` then a `sh` block, so the prose
//! around it can change freely while the block a user copies stays tested.

/// The fenced block of language `lang` right after the comment starting
/// with `marker` (e.g. `"<!-- real-node: install "`) in `doc`, a path
/// relative to the repository root. Panics, naming what is missing, when
/// the marker is absent or is not followed by such a block (only blank
/// space may separate the comment from the fence).
pub fn marked_block(doc: &str, marker: &str, lang: &str) -> String {
    let path = crate::repo_root().join(doc);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let after = text
        .split_once(marker)
        .unwrap_or_else(|| panic!("{doc} has no {marker}"))
        .1;
    let after = after
        .split_once("-->")
        .unwrap_or_else(|| panic!("{doc}: {marker} is not closed by -->"))
        .1;
    let fence = format!("```{lang}\n");
    let body = after
        .trim_start()
        .strip_prefix(&fence)
        .unwrap_or_else(|| panic!("{doc}: no ```{lang} block right after {marker}"));
    let end = body
        .find("```")
        .unwrap_or_else(|| panic!("{doc}: the block after {marker} never ends"));
    body[..end].to_string()
}
