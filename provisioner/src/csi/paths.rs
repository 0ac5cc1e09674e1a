//! Where the node service may act: the paths a CO hands to NodeStage,
//! NodePublish, NodeUnpublish, NodeUnstage, NodeGetVolumeStats and
//! NodeExpand are checked here before anything is created, mounted,
//! unmounted or removed at them. A path must be absolute, lie under the
//! kubelet's directory (`--kubelet-dir`), pass through no symlink below it
//! and stay clear of berth's own data and state directories, so no request
//! can make berth create, mount over or remove anything elsewhere.

use std::path::{Component, Path, PathBuf};

use super::error::CsiError;

/// Longest path accepted (Linux's PATH_MAX, terminating NUL included).
pub const MAX_PATH_LEN: usize = 4095;

/// The syntax every CO-supplied path must have, checked without touching
/// the file system: present, absolute, no NUL, no `..`, not absurdly long.
pub fn require_path(kind: &str, p: &str) -> Result<PathBuf, CsiError> {
    if p.is_empty() {
        return Err(CsiError::InvalidArgument(format!("{kind} is required")));
    }
    if p.len() > MAX_PATH_LEN {
        return Err(CsiError::InvalidArgument(format!(
            "{kind} is longer than {MAX_PATH_LEN} bytes"
        )));
    }
    if p.contains('\0') || !p.starts_with('/') {
        return Err(CsiError::InvalidArgument(format!(
            "{kind} {p:?} must be an absolute path"
        )));
    }
    let path = PathBuf::from(p);
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(CsiError::InvalidArgument(format!(
            "{kind} {p:?} must not contain '..'"
        )));
    }
    Ok(path)
}

/// Why a well-formed path was refused: the caller decides the gRPC code
/// (INVALID_ARGUMENT where the path names a place to act on, NOT_FOUND
/// where it names where a volume should already be).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("is not under the kubelet directory {0}")]
    OutsideKubeletDir(PathBuf),
    #[error("passes through the symlink {0}")]
    Symlink(PathBuf),
    #[error("overlaps berth's own directory {0}")]
    Overlaps(PathBuf),
}

/// The directories that bound the node service's paths.
#[derive(Debug, Clone)]
pub struct PathPolicy {
    /// The kubelet's root: every staging and target path lies under it.
    pub kubelet_dir: PathBuf,
    /// berth's data and state directories: no path may lie in them or
    /// contain them.
    pub own_dirs: Vec<PathBuf>,
}

/// `p` made absolute through its existing part (symlinks resolved), or as
/// given when nothing of it exists.
fn resolved(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

impl PathPolicy {
    /// Checks a path that passed [`require_path`]: under the kubelet
    /// directory (as configured or as resolved, when that is a symlink),
    /// no symlink at or below it up to the first component that does not
    /// exist yet (so nothing berth creates there can land elsewhere), and
    /// neither inside nor around berth's own directories.
    pub fn confine(&self, path: &Path) -> Result<(), Refusal> {
        let root = resolved(&self.kubelet_dir);
        let rest = path
            .strip_prefix(&self.kubelet_dir)
            .or_else(|_| path.strip_prefix(&root))
            .map_err(|_| Refusal::OutsideKubeletDir(self.kubelet_dir.clone()))?;
        if rest.as_os_str().is_empty() {
            return Err(Refusal::OutsideKubeletDir(self.kubelet_dir.clone()));
        }
        let mut at = root.clone();
        for component in rest.components() {
            let Component::Normal(name) = component else {
                return Err(Refusal::OutsideKubeletDir(self.kubelet_dir.clone()));
            };
            at.push(name);
            match std::fs::symlink_metadata(&at) {
                Ok(m) if m.file_type().is_symlink() => return Err(Refusal::Symlink(at)),
                Ok(_) => {}
                // Nothing below a missing component exists to redirect us.
                Err(_) => break,
            }
        }
        let full = root.join(rest);
        for own in &self.own_dirs {
            let own = resolved(own);
            if full.starts_with(&own) || own.starts_with(&full) {
                return Err(Refusal::Overlaps(own));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_syntax_is_checked_before_the_file_system() {
        let long = format!("/{}", "a".repeat(MAX_PATH_LEN));
        for bad in [
            "",
            "relative/path",
            "/a\0b",
            "/a/../b",
            "/..",
            long.as_str(),
        ] {
            assert!(
                matches!(require_path("p", bad), Err(CsiError::InvalidArgument(_))),
                "{bad:?}"
            );
        }
        for good in ["/a", "/a/./b", "/a//b/", "/a/b..c"] {
            assert!(require_path("p", good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn paths_are_confined_to_the_kubelet_dir_without_symlinks_or_berths_dirs() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let kubelet = tmp.path().join("kubelet");
        let outside = tmp.path().join("outside");
        let data = kubelet.join("berth-data");
        for d in [&kubelet.join("pods"), &outside, &data] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::os::unix::fs::symlink(&outside, kubelet.join("pods/escape")).expect("symlink");
        std::os::unix::fs::symlink(tmp.path().join("gone"), kubelet.join("dangling"))
            .expect("symlink");
        let policy = PathPolicy {
            kubelet_dir: kubelet.clone(),
            own_dirs: vec![data.clone()],
        };
        let ok = |p: PathBuf| policy.confine(&p).is_ok();
        assert!(ok(kubelet.join("pods/uid/volumes/x/mount")));
        assert!(ok(kubelet.join("pods")));
        assert!(!ok(kubelet.clone()), "the kubelet dir itself");
        assert!(!ok(outside.join("x")), "outside");
        assert!(!ok(kubelet.join("pods/escape")), "a symlink itself");
        assert!(!ok(kubelet.join("pods/escape/x")), "through a symlink");
        assert!(
            !ok(kubelet.join("dangling/x")),
            "through a dangling symlink"
        );
        assert!(!ok(data.join("volumes/v")), "inside berth's data");
        assert!(!ok(kubelet.join("berth-data")), "berth's data dir itself");
    }
}
