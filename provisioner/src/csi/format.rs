//! Filesystems on block-backed volumes: probe, format on first stage, grow
//! after expansion. These shell out to the standard e2fsprogs/xfsprogs tools
//! because reimplementing mkfs is out of scope.

use std::path::Path;
use std::process::Command;

use super::error::CsiError;

/// Filesystems the driver formats; the storage-class catalog offers these.
pub const SUPPORTED: [&str; 2] = ["ext4", "xfs"];

/// The smallest device each file system's mkfs accepts, measured on the
/// project's machines (Debian 12: e2fsprogs 1.47.0, xfsprogs 6.1.0) by
/// formatting ever smaller sparse images: xfs refuses anything under 300 MiB
/// ("Filesystem must be larger than 300MB"), ext4 anything under 104 KiB.
/// CreateVolume and ControllerExpandVolume round a smaller request up to
/// these (or refuse it when `limit_bytes` is lower), so a volume is never
/// made that NodeStage could not format.
pub const MINIMUM_BYTES: [(&str, u64); 2] = [("ext4", 106_496), ("xfs", 314_572_800)];

/// The smallest volume `fs_type` can be made on (0 for none).
pub fn minimum_bytes(fs_type: &str) -> u64 {
    MINIMUM_BYTES
        .iter()
        .find(|(fs, _)| *fs == fs_type)
        .map_or(0, |(_, min)| *min)
}

/// Make a helper process die with the driver: a `kill -9` of the driver
/// must not leave an mkfs or copy running against data that reconciliation
/// is about to roll back.
pub fn die_with_parent(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    let driver = nix::unistd::getpid();
    // SAFETY: the closure runs between fork and exec and only calls
    // prctl(PR_SET_PDEATHSIG) and getppid, which are async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)?;
            // A driver killed between the fork and the prctl sends no
            // signal: the helper would run on, orphaned, and could write
            // data after the restarted driver's reconciliation swept.
            if nix::unistd::getppid() != driver {
                return Err(std::io::Error::other(
                    "the driver exited before the helper started",
                ));
            }
            Ok(())
        })
    }
}

fn run(cmd: &mut Command) -> Result<std::process::Output, CsiError> {
    die_with_parent(cmd);
    let command = format!("{cmd:?}");
    cmd.output().map_err(|e| CsiError::Command {
        command,
        detail: e.to_string(),
    })
}

fn check(cmd: &mut Command) -> Result<(), CsiError> {
    let command = format!("{cmd:?}");
    let out = run(cmd)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(CsiError::Command {
            command,
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}

/// The filesystem type found on `device`, if any. blkid exits 2 when it
/// finds no signature, which is the "blank, format me" case.
pub fn probe(device: &Path) -> Result<Option<String>, CsiError> {
    let out = run(Command::new("blkid")
        .args(["-p", "-s", "TYPE", "-o", "value"])
        .arg(device))?;
    match out.status.code() {
        Some(0) => {
            let t = String::from_utf8_lossy(&out.stdout).trim().to_string();
            Ok(if t.is_empty() { None } else { Some(t) })
        }
        Some(2) => Ok(None),
        _ => Err(CsiError::Command {
            command: format!("blkid -p {}", device.display()),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }),
    }
}

pub fn mkfs(device: &Path, fs_type: &str) -> Result<(), CsiError> {
    match fs_type {
        "ext4" => check(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(device)),
        "xfs" => check(Command::new("mkfs.xfs").args(["-q", "-f"]).arg(device)),
        other => Err(CsiError::InvalidArgument(format!(
            "unsupported fsType {other:?}"
        ))),
    }
}

/// Grow the filesystem on `device` (mounted at `mount_point`) to fill it.
pub fn grow(device: &Path, mount_point: &Path, fs_type: &str) -> Result<(), CsiError> {
    match fs_type {
        "ext4" => check(Command::new("resize2fs").arg(device)),
        "xfs" => check(Command::new("xfs_growfs").arg(mount_point)),
        other => Err(CsiError::InvalidArgument(format!(
            "unsupported fsType {other:?}"
        ))),
    }
}

/// Bytes an ext4 file system spans (`dumpe2fs -h`: block count × size).
fn ext4_bytes(device: &Path) -> Result<u64, CsiError> {
    let out = run(Command::new("dumpe2fs").arg("-h").arg(device))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    match (field("Block count:"), field("Block size:")) {
        (Some(n), Some(size)) => Ok(n.saturating_mul(size)),
        _ => Err(CsiError::Command {
            command: format!("dumpe2fs -h {}", device.display()),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }),
    }
}

/// Grows an unmounted ext4 file system to fill `device_bytes` when the
/// volume was expanded while no pod used it: offline growth needs no
/// privilege beyond the device, where growing it mounted needs
/// CAP_SYS_RESOURCE (which some nodes' root lacks). XFS only grows mounted
/// and is left to NodeExpandVolume.
pub fn grow_unmounted(device: &Path, fs_type: &str, device_bytes: u64) -> Result<(), CsiError> {
    if fs_type != "ext4" || ext4_bytes(device)? >= device_bytes {
        return Ok(());
    }
    // resize2fs insists on a checked file system; e2fsck exits 1 when it
    // fixed something, which is fine here.
    let out = run(Command::new("e2fsck").args(["-f", "-p"]).arg(device))?;
    if !matches!(out.status.code(), Some(0 | 1)) {
        return Err(CsiError::Command {
            command: format!("e2fsck -f -p {}", device.display()),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    check(Command::new("resize2fs").arg(device))
}
