//! Mount-table mechanics for the node service: bind mounts, filesystem
//! mounts, read-only remounts, unmounts and "is this path a mount point"
//! checks, done with syscalls rather than the `mount` binary.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

use super::error::CsiError;

/// Undo the octal escapes (`\040` for space, ...) the kernel uses for
/// whitespace and backslashes in /proc/self/mountinfo.
pub(super) fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points currently visible to this process, outermost last.
pub fn mount_points() -> Result<Vec<PathBuf>, CsiError> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(CsiError::io("reading /proc/self/mountinfo"))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|f| PathBuf::from(unescape(f)))
        .collect())
}

/// Whether `path` itself is a mount point. Asks the kernel directly via
/// statx's STATX_ATTR_MOUNT_ROOT (O(1), unlike scanning a mount table that
/// grows with every published volume); falls back to mountinfo on kernels
/// that do not report the attribute.
pub fn is_mount_point(path: &Path) -> Result<bool, CsiError> {
    let Ok(real) = std::fs::canonicalize(path) else {
        return Ok(false);
    };
    if let Some(answer) = statx_mount_root(&real) {
        return Ok(answer);
    }
    Ok(mount_points()?.contains(&real))
}

fn statx_mount_root(path: &Path) -> Option<bool> {
    use nix::libc;
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut buf = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `c` is a valid NUL-terminated path and `buf` is a writable
    // statx buffer that outlives the call.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_BASIC_STATS,
            buf.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: statx returned success, so it initialised the buffer (and it
    // was zeroed beforehand anyway).
    let stx = unsafe { buf.assume_init() };
    let bit = libc::STATX_ATTR_MOUNT_ROOT as u64;
    (stx.stx_attributes_mask & bit != 0).then_some(stx.stx_attributes & bit != 0)
}

pub fn bind(source: &Path, target: &Path, readonly: bool) -> Result<(), CsiError> {
    nix::mount::mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(CsiError::sys(format!(
        "bind-mounting {} on {}",
        source.display(),
        target.display()
    )))?;
    if readonly {
        // MS_RDONLY is ignored on the initial bind; only a remount of the
        // bind applies it, and only to this mount, not the source.
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        if let Err(errno) =
            nix::mount::mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        {
            let _ = unmount(target);
            return Err(CsiError::sys(format!(
                "remounting {} read-only",
                target.display()
            ))(errno));
        }
    }
    Ok(())
}

/// Mount a formatted block device. Flags the kernel knows as MS_* bits are
/// translated; anything else is handed to the filesystem as data options.
pub fn mount_fs(
    device: &Path,
    target: &Path,
    fs_type: &str,
    options: &[String],
    readonly: bool,
) -> Result<(), CsiError> {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    if readonly {
        flags |= MsFlags::MS_RDONLY;
    }
    for opt in options.iter().flat_map(|o| o.split(',')) {
        match opt {
            "" | "rw" | "defaults" => {}
            "ro" => flags |= MsFlags::MS_RDONLY,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "nodiratime" => flags |= MsFlags::MS_NODIRATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "sync" => flags |= MsFlags::MS_SYNCHRONOUS,
            other => data.push(other),
        }
    }
    // Clones and restores are byte copies of their source, UUID included,
    // and XFS refuses a second mounted file system with the same UUID: the
    // copy could not be staged while its source is.
    if fs_type == "xfs" && !data.contains(&"nouuid") {
        data.push("nouuid");
    }
    let data = data.join(",");
    nix::mount::mount(
        Some(device),
        target,
        Some(fs_type),
        flags,
        if data.is_empty() {
            None
        } else {
            Some(data.as_str())
        },
    )
    .map_err(CsiError::sys(format!(
        "mounting {} ({fs_type}) on {}",
        device.display(),
        target.display()
    )))
}

/// Unmount `target`; a path that is not mounted counts as done so retries
/// after a crash are idempotent.
pub fn unmount(target: &Path) -> Result<(), CsiError> {
    match nix::mount::umount2(target, MntFlags::empty()) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(errno) => Err(CsiError::sys(format!("unmounting {}", target.display()))(
            errno,
        )),
    }
}

/// Unmount every mount stacked on `target` (a crash between two mounts can
/// leave more than one).
pub fn unmount_all(target: &Path) -> Result<(), CsiError> {
    for _ in 0..16 {
        if !is_mount_point(target)? {
            return Ok(());
        }
        unmount(target)?;
    }
    Err(CsiError::FailedPrecondition(format!(
        "{} is still mounted after repeated unmounts",
        target.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_fields() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/x\\"), "/x\\");
    }
}
