//! Loop devices for block-backed volumes: attach an image file, detach,
//! refresh capacity after expansion, and find which devices back files under
//! a directory (for reconciliation after a crash). Uses the loop ioctls
//! directly instead of the `losetup` binary.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::error::CsiError;

// Request numbers from <linux/loop.h>.
nix::ioctl_none_bad!(loop_ctl_get_free, 0x4C82);
nix::ioctl_write_int_bad!(loop_set_fd, 0x4C00);
nix::ioctl_none_bad!(loop_clr_fd, 0x4C01);
nix::ioctl_none_bad!(loop_set_capacity, 0x4C07);

/// Attach `file` to a free loop device and return the device path.
pub fn attach(file: &Path) -> Result<PathBuf, CsiError> {
    let backing = OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .map_err(CsiError::io(format!("opening {}", file.display())))?;
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")
        .map_err(CsiError::io("opening /dev/loop-control"))?;
    // GET_FREE and SET_FD are not atomic: another process can grab the same
    // device in between, which shows up as EBUSY, so retry a few times.
    for _ in 0..16 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and only returns an int.
        let n = unsafe { loop_ctl_get_free(control.as_raw_fd()) }
            .map_err(CsiError::sys("LOOP_CTL_GET_FREE"))?;
        let dev = PathBuf::from(format!("/dev/loop{n}"));
        let Ok(loopdev) = OpenOptions::new().read(true).write(true).open(&dev) else {
            continue;
        };
        // SAFETY: LOOP_SET_FD takes the backing file descriptor by value;
        // both descriptors are open for the duration of the call.
        match unsafe { loop_set_fd(loopdev.as_raw_fd(), backing.as_raw_fd()) } {
            Ok(_) => return Ok(dev),
            Err(Errno::EBUSY) => continue,
            Err(e) => {
                return Err(CsiError::sys(format!("LOOP_SET_FD on {}", dev.display()))(
                    e,
                ));
            }
        }
    }
    Err(CsiError::ResourceExhausted(
        "no free loop device after repeated attempts".into(),
    ))
}

/// Detach a loop device; an already-detached device (ENXIO) counts as done.
pub fn detach(dev: &Path) -> Result<(), CsiError> {
    let f = match OpenOptions::new().read(true).open(dev) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(CsiError::io(format!("opening {}", dev.display()))(e)),
    };
    // SAFETY: LOOP_CLR_FD takes no argument.
    match unsafe { loop_clr_fd(f.as_raw_fd()) } {
        Ok(_) | Err(Errno::ENXIO) => Ok(()),
        Err(e) => Err(CsiError::sys(format!("LOOP_CLR_FD on {}", dev.display()))(
            e,
        )),
    }
}

/// Detach `dev` only while it is still backed by `file`; `Ok(false)` when it
/// is not (already detached, or attached to something else). A device
/// number is free again the moment it is detached, and the next attach
/// anywhere on the node (a concurrent NodeStage of this driver, another
/// driver, `losetup`) may take it: detaching a remembered or listed device
/// without checking could pull the device from under another volume's
/// mkfs or mount (seen as EIO) or from a staged volume. The check reads the
/// backing file with the device open, right before LOOP_CLR_FD.
pub fn detach_backed_by(dev: &Path, file: &Path) -> Result<bool, CsiError> {
    let f = match OpenOptions::new().read(true).open(dev) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(CsiError::io(format!("opening {}", dev.display()))(e)),
    };
    if backing_file(dev).as_deref() != Some(file) {
        return Ok(false);
    }
    // SAFETY: LOOP_CLR_FD takes no argument.
    match unsafe { loop_clr_fd(f.as_raw_fd()) } {
        Ok(_) => Ok(true),
        Err(Errno::ENXIO) => Ok(false),
        Err(e) => Err(CsiError::sys(format!("LOOP_CLR_FD on {}", dev.display()))(
            e,
        )),
    }
}

/// The file behind loop device `dev` (sysfs), `None` when it is not
/// attached. The kernel appends " (deleted)" when the file was unlinked.
fn backing_file(dev: &Path) -> Option<PathBuf> {
    let name = dev.file_name()?;
    let text =
        std::fs::read_to_string(Path::new("/sys/block").join(name).join("loop/backing_file"))
            .ok()?;
    let text = text.trim_end_matches('\n');
    Some(PathBuf::from(
        text.strip_suffix(" (deleted)").unwrap_or(text),
    ))
}

/// Make the loop device pick up the backing file's new size.
pub fn refresh_capacity(dev: &Path) -> Result<(), CsiError> {
    let f = OpenOptions::new()
        .read(true)
        .open(dev)
        .map_err(CsiError::io(format!("opening {}", dev.display())))?;
    // SAFETY: LOOP_SET_CAPACITY takes no argument.
    unsafe { loop_set_capacity(f.as_raw_fd()) }.map_err(CsiError::sys(format!(
        "LOOP_SET_CAPACITY on {}",
        dev.display()
    )))?;
    Ok(())
}

/// Every attached loop device with its backing file, read from sysfs. The
/// kernel appends " (deleted)" when the backing file was unlinked.
pub fn attached() -> Vec<(PathBuf, PathBuf)> {
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("loop") {
            continue;
        }
        let Ok(backing) = std::fs::read_to_string(entry.path().join("loop/backing_file")) else {
            continue;
        };
        let backing = backing.trim_end_matches('\n');
        let backing = backing.strip_suffix(" (deleted)").unwrap_or(backing);
        out.push((
            PathBuf::from(format!("/dev/{name}")),
            PathBuf::from(backing),
        ));
    }
    out
}

/// Loop devices currently backed by exactly `file`.
pub fn devices_for(file: &Path) -> Vec<PathBuf> {
    attached()
        .into_iter()
        .filter(|(_, b)| b == file)
        .map(|(d, _)| d)
        .collect()
}
