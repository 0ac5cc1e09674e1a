//! Small helpers the comparison binaries share: where the repository and
//! the built upstream peers are, and how a size list is written on the
//! command line.

use std::path::{Path, PathBuf};

/// The workspace root (the parent of `bench/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Where `bench/peers/build.sh` puts the upstream binary `name`.
pub fn peer_bin(name: &str) -> PathBuf {
    repo_root().join(".cache/bench/bin").join(name)
}

/// A comma-separated list of counts, e.g. `1000,10000,50000`.
pub fn parse_list(s: &str) -> Result<Vec<usize>, String> {
    s.split(',')
        .map(|x| x.trim().parse::<usize>().map_err(|e| format!("{x:?}: {e}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_list_reads_counts_and_rejects_words() {
        assert_eq!(parse_list("1000, 10000"), Ok(vec![1000, 10000]));
        assert!(parse_list("1k").is_err());
    }
}
