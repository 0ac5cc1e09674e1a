//! Whether a directory volume's capacity could be enforced by the data
//! directory's file system, decided once at start-up.
//!
//! A directory volume shares the data directory's file system, so only a
//! project quota (one project id per volume directory, a hard block limit
//! of its capacity) could stop it at its capacity. That needs all of:
//! a kernel built with quota support, a file system with project quotas
//! (xfs, or ext4 made with `-O quota,project`) and project quotas on for
//! that mount (xfs `prjquota`/`pquota`; ext4 `prjquota`).
//!
//! The probe, in order:
//! 1. the mount holding the data directory, from `/proc/self/mountinfo`
//!    (the entry whose device is the directory's `st_dev` and whose mount
//!    point is the longest prefix of its canonical path);
//! 2. its type: anything but xfs or ext4 has no project quotas berth
//!    knows how to use;
//! 3. the kernel's word, `quotactl_fd(Q_XGETQSTATV, PRJQUOTA)` on the
//!    directory (`quotactl` on the mount's device on kernels before 5.14,
//!    which lack `quotactl_fd`): ENOSYS means the kernel was built without
//!    quota support; ESRCH or ENOENT that project quotas are off for this
//!    mount; otherwise the reply's flags say whether they are accounted and
//!    enforced.
//!
//! berth does not set project quotas yet (none of the project's machines
//! can run them, so it could not be tested): whatever the probe finds,
//! directory capacity is not enforced, and the probe's finding is the
//! reason reported at start-up, in `/readyz` and as a metric. Usage is
//! watched instead (`usage.rs`'s [`super::usage::spawn_watch`]).

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::mount::unescape;

/// How directory capacity is enforced; the metric's `mode` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Not enforced: usage is watched and overruns reported.
    None,
    /// A project quota per volume. Not applied by berth yet; kept so the
    /// metric's label set is stable when it is.
    ProjectQuota,
}

impl Mode {
    pub const ALL: [Mode; 2] = [Mode::None, Mode::ProjectQuota];

    pub fn label(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::ProjectQuota => "project_quota",
        }
    }
}

/// What the probe found about the data directory's file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// The mount holding the data directory could not be determined.
    Unknown(String),
    /// A file system type without project quotas berth could use.
    UnsupportedFs,
    /// The kernel has no quota support (`quotactl` answers ENOSYS).
    NoKernelSupport,
    /// Project quotas are not on for this mount.
    Off,
    /// Project quotas are accounted but not enforced on this mount.
    AccountingOnly,
    /// Project quotas are accounted and enforced on this mount.
    Enforced,
    /// The kernel refused the probe for another reason.
    ProbeFailed(nix::errno::Errno),
}

/// The start-up finding: the mount, its type and what it supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub support: Support,
}

impl Detection {
    /// How directory capacity is enforced. Always [`Mode::None`] today:
    /// see the module's doc.
    pub fn mode(&self) -> Mode {
        Mode::None
    }

    /// Why directory capacity is (not) enforced, in one sentence.
    pub fn reason(&self) -> String {
        let at = format!("{} at {}", self.fs_type, self.mount_point.display());
        match &self.support {
            Support::Unknown(why) => format!("the data directory's file system is unknown: {why}"),
            Support::UnsupportedFs => format!("{at} has no project quotas berth can use"),
            Support::NoKernelSupport => {
                "the kernel has no quota support (quotactl: ENOSYS)".to_string()
            }
            Support::Off => format!(
                "project quotas are off for {at} (xfs: mount with prjquota; ext4: mkfs -O quota,project and mount with prjquota)"
            ),
            Support::AccountingOnly => {
                format!("project quotas are accounted but not enforced on {at}")
            }
            Support::Enforced => {
                format!("project quotas are on for {at}, but berth does not set them yet")
            }
            Support::ProbeFailed(errno) => format!("probing project quotas on {at}: {errno}"),
        }
    }

    /// The line `/readyz` and the start-up log give.
    pub fn summary(&self) -> String {
        match self.mode() {
            Mode::None => format!("not enforced: {}", self.reason()),
            Mode::ProjectQuota => format!("enforced by project quotas on {}", self.fs_type),
        }
    }
}

/// One line of `/proc/self/mountinfo`, the fields the probe needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MountEntry {
    dev: (u64, u64),
    mount_point: PathBuf,
    fs_type: String,
    source: String,
}

fn parse_mountinfo_line(line: &str) -> Option<MountEntry> {
    let fields: Vec<&str> = line.split(' ').collect();
    let (major, minor) = fields.get(2)?.split_once(':')?;
    let dev = (major.parse().ok()?, minor.parse().ok()?);
    let mount_point = PathBuf::from(unescape(fields.get(4)?));
    // Optional fields end at the lone "-".
    let sep = fields.iter().position(|f| *f == "-")?;
    Some(MountEntry {
        dev,
        mount_point,
        fs_type: (*fields.get(sep + 1)?).to_string(),
        source: unescape(fields.get(sep + 2)?),
    })
}

/// The mount holding `path` (canonical) on device `dev`.
fn mount_of(mountinfo: &str, path: &Path, dev: (u64, u64)) -> Option<MountEntry> {
    let entries: Vec<MountEntry> = mountinfo.lines().filter_map(parse_mountinfo_line).collect();
    let best = |same_dev: bool| {
        entries
            .iter()
            .filter(|e| path.starts_with(&e.mount_point) && (!same_dev || e.dev == dev))
            // Later lines are mounted over earlier ones at the same point.
            .max_by_key(|e| e.mount_point.as_os_str().len())
            .cloned()
    };
    // A btrfs subvolume's st_dev is not its mount's; then the longest
    // prefix alone decides.
    best(true).or_else(|| best(false))
}

const PRJQUOTA: i32 = 2;
/// XQM_CMD(8): `('X' << 8) + 8`.
const Q_XGETQSTATV: i32 = (0x58 << 8) + 8;
const FS_QSTATV_VERSION1: i8 = 1;
const FS_QUOTA_PDQ_ACCT: u16 = 1 << 4;
const FS_QUOTA_PDQ_ENFD: u16 = 1 << 5;

fn qcmd(cmd: i32, kind: i32) -> i32 {
    (cmd << 8) | (kind & 0xff)
}

/// `struct fs_quota_statv` is 160 bytes; the kernel reads the version from
/// byte 0 and writes the flags at bytes 2..4. Generously sized and
/// aligned for the u64 fields it holds.
#[repr(C, align(8))]
struct StatV([u8; 256]);

/// Asks the kernel about project quotas on the file system of `dir`
/// (whose mount's source is `device`): the state flags, or the errno.
fn quota_state(dir: &Path, device: &str) -> Result<u16, nix::errno::Errno> {
    let cmd = qcmd(Q_XGETQSTATV, PRJQUOTA);
    let mut buf = StatV([0; 256]);
    buf.0[0] = FS_QSTATV_VERSION1 as u8;
    let file = std::fs::File::open(dir)
        .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(nix::libc::EIO)))?;
    // SAFETY: the kernel writes at most sizeof(struct fs_quota_statv)
    // (160) bytes into the 256-byte buffer, which outlives the call; the
    // descriptor is open for the call's duration.
    let r = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_quotactl_fd,
            file.as_raw_fd(),
            cmd,
            0,
            buf.0.as_mut_ptr(),
        )
    };
    let mut result = nix::errno::Errno::result(r).map(drop);
    if result == Err(nix::errno::Errno::ENOSYS) {
        // Before Linux 5.14 there is no quotactl_fd, only the path-based
        // call on the block device; ENOSYS from both means no quota
        // support at all.
        let special = CString::new(device).map_err(|_| nix::errno::Errno::EINVAL)?;
        // SAFETY: as above; `special` is a NUL-terminated path that
        // outlives the call.
        let r = unsafe { nix::libc::quotactl(cmd, special.as_ptr(), 0, buf.0.as_mut_ptr().cast()) };
        result = nix::errno::Errno::result(r).map(drop);
    }
    result.map(|()| u16::from_ne_bytes([buf.0[2], buf.0[3]]))
}

/// Probes the data directory `dir` (see the module's doc).
pub fn detect(dir: &Path) -> Detection {
    let unknown = |why: String| Detection {
        mount_point: dir.to_path_buf(),
        fs_type: "unknown".into(),
        support: Support::Unknown(why),
    };
    let canonical = match std::fs::canonicalize(dir) {
        Ok(p) => p,
        Err(e) => return unknown(format!("{}: {e}", dir.display())),
    };
    let st_dev = match std::fs::metadata(&canonical) {
        Ok(m) => m.dev(),
        Err(e) => return unknown(format!("{}: {e}", canonical.display())),
    };
    let dev = (
        u64::from(nix::sys::stat::major(st_dev)),
        u64::from(nix::sys::stat::minor(st_dev)),
    );
    let mountinfo = match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(t) => t,
        Err(e) => return unknown(format!("/proc/self/mountinfo: {e}")),
    };
    let Some(mount) = mount_of(&mountinfo, &canonical, dev) else {
        return unknown(format!("no mount holds {}", canonical.display()));
    };
    let support = if !matches!(mount.fs_type.as_str(), "xfs" | "ext4") {
        Support::UnsupportedFs
    } else {
        classify(quota_state(&canonical, &mount.source))
    };
    Detection {
        mount_point: mount.mount_point,
        fs_type: mount.fs_type,
        support,
    }
}

/// The kernel's answer as a [`Support`].
fn classify(state: Result<u16, nix::errno::Errno>) -> Support {
    use nix::errno::Errno;
    match state {
        Err(Errno::ENOSYS) => Support::NoKernelSupport,
        Err(Errno::ESRCH | Errno::ENOENT) => Support::Off,
        Err(Errno::EINVAL | Errno::EOPNOTSUPP | Errno::ENOTTY) => Support::UnsupportedFs,
        Err(e) => Support::ProbeFailed(e),
        Ok(flags) if flags & FS_QUOTA_PDQ_ENFD != 0 => Support::Enforced,
        Ok(flags) if flags & FS_QUOTA_PDQ_ACCT != 0 => Support::AccountingOnly,
        Ok(_) => Support::Off,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::errno::Errno;

    const MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 27 7:3 / /var/lib/berth rw,relatime shared:5 - xfs /dev/loop3 rw,prjquota
41 40 7:4 / /var/lib/berth/odd\\040name rw - ext4 /dev/loop4 rw
";

    #[test]
    fn the_longest_mount_on_the_same_device_holds_the_directory() {
        let cases: [(&str, &Path, (u64, u64), &str, &str); 4] = [
            ("root fs", Path::new("/srv/data"), (254, 0), "/", "ext4"),
            (
                "nested xfs",
                Path::new("/var/lib/berth/data"),
                (7, 3),
                "/var/lib/berth",
                "xfs",
            ),
            (
                "escaped space",
                Path::new("/var/lib/berth/odd name/d"),
                (7, 4),
                "/var/lib/berth/odd name",
                "ext4",
            ),
            (
                "device unknown: longest prefix",
                Path::new("/var/lib/berth/data"),
                (0, 99),
                "/var/lib/berth",
                "xfs",
            ),
        ];
        for (name, path, dev, want_mp, want_fs) in cases {
            let m = mount_of(MOUNTINFO, path, dev).unwrap_or_else(|| panic!("{name}: none"));
            assert_eq!(m.mount_point, Path::new(want_mp), "{name}");
            assert_eq!(m.fs_type, want_fs, "{name}");
        }
    }

    #[test]
    fn the_kernels_answer_decides_the_support() {
        let cases = [
            (
                "no CONFIG_QUOTA",
                Err(Errno::ENOSYS),
                Support::NoKernelSupport,
            ),
            ("quotas off", Err(Errno::ESRCH), Support::Off),
            (
                "no project feature",
                Err(Errno::EINVAL),
                Support::UnsupportedFs,
            ),
            (
                "other",
                Err(Errno::EPERM),
                Support::ProbeFailed(Errno::EPERM),
            ),
            (
                "enforced",
                Ok(FS_QUOTA_PDQ_ACCT | FS_QUOTA_PDQ_ENFD),
                Support::Enforced,
            ),
            ("accounting", Ok(FS_QUOTA_PDQ_ACCT), Support::AccountingOnly),
            ("user quota only", Ok(1), Support::Off),
        ];
        for (name, state, want) in cases {
            assert_eq!(classify(state), want, "{name}");
        }
    }

    #[test]
    fn every_finding_is_not_enforced_with_its_reason() {
        let d = Detection {
            mount_point: PathBuf::from("/data"),
            fs_type: "ext4".into(),
            support: Support::NoKernelSupport,
        };
        assert_eq!(d.mode(), Mode::None);
        assert_eq!(
            d.summary(),
            "not enforced: the kernel has no quota support (quotactl: ENOSYS)"
        );
        let tmpfs = Detection {
            fs_type: "tmpfs".into(),
            support: Support::UnsupportedFs,
            ..d
        };
        assert_eq!(
            tmpfs.summary(),
            "not enforced: tmpfs at /data has no project quotas berth can use"
        );
    }
}
