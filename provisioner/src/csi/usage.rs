//! What a directory volume holds: the bytes and inodes under its directory,
//! measured the way `du -x` does, and a per-volume cache so that
//! NodeGetVolumeStats never waits long on a walk of a large tree.
//!
//! A directory volume has no file system of its own (its capacity is
//! accounted, not enforced: see `quota.rs`), so statvfs on it describes
//! the host's disk; only walking the tree tells what the volume itself
//! uses. The usage watch ([`spawn_watch`]) walks every directory volume on
//! an interval, through the same cache, and reports those holding more
//! than their capacity: a warning in the log, the driver's metrics, an
//! event on the claim (the node agent) and NodeGetVolumeStats' abnormal
//! VolumeCondition.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

/// A measurement is reused for at least this long. The kubelet polls every
/// volume about once a minute, and `kubectl describe`, the health monitor
/// and metrics scrapes may ask in between: those should share one walk,
/// while a user who just wrote data sees it counted within seconds.
pub const MIN_FRESH: Duration = Duration::from_secs(2);

/// A measurement stays fresh for this many times as long as it took, so a
/// tree that takes minutes to walk is not walked back to back: the walks
/// occupy at most about a tenth of the node's time for that volume.
pub const FRESH_PER_WALK: u32 = 10;

/// How long an RPC waits for a walk it started (or found running) before
/// answering with the last measurement. Small trees finish well within it,
/// so their figures are current; a large tree's RPC still answers within a
/// second, far below the kubelet's and sidecars' RPC timeouts.
pub const RPC_WAIT: Duration = Duration::from_secs(1);

/// Bytes st_blocks counts in, whatever the file system's block size.
const STAT_BLOCK: u64 = 512;

/// What a directory tree holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes allocated on disk (sparse files count what they hold).
    pub bytes: u64,
    /// Files, directories, symlinks and the like, the root included; each
    /// hard-linked file once.
    pub inodes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("reading {path}: {source}")]
    Root {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("starting a thread to measure {path}: {source}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Measures the tree under `root` without following symlinks or crossing
/// into other file systems (a mount inside a volume belongs to someone
/// else). Entries that vanish or cannot be read while the walk runs are
/// skipped: the volume is live and changes under the walk, and a figure
/// that misses a file being deleted is still the best answer.
pub fn measure(root: &Path) -> Result<Usage, UsageError> {
    let top = std::fs::symlink_metadata(root).map_err(|source| UsageError::Root {
        path: root.to_path_buf(),
        source,
    })?;
    let dev = top.dev();
    let mut usage = Usage {
        bytes: top.blocks().saturating_mul(STAT_BLOCK),
        inodes: 1,
    };
    // Only files with more than one link can be met twice, so only they
    // are remembered; the set stays small on ordinary trees.
    let mut linked = HashSet::new();
    let mut dirs = Vec::new();
    if top.is_dir() {
        dirs.push(root.to_path_buf());
    }
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            // DirEntry::metadata does not follow symlinks on unix.
            let Ok(m) = entry.metadata() else {
                continue;
            };
            if m.dev() != dev {
                continue;
            }
            if m.is_dir() {
                dirs.push(entry.path());
            } else if m.nlink() > 1 && !linked.insert(m.ino()) {
                continue;
            }
            usage.inodes = usage.inodes.saturating_add(1);
            usage.bytes = usage
                .bytes
                .saturating_add(m.blocks().saturating_mul(STAT_BLOCK));
        }
    }
    Ok(usage)
}

/// `bytes` for people: `512 B`, `16.0 MiB`, `1.5 GiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// What the cache can say about a volume right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// The latest finished measurement (older than [`MIN_FRESH`] when a
    /// new walk is still running).
    Measured(Usage),
    /// The first walk has not finished yet.
    Pending,
    /// Nothing could be measured; the last walk's error.
    Failed(String),
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    usage: Usage,
    started: Instant,
    took: Duration,
}

impl Sample {
    fn fresh(&self) -> bool {
        let lifetime = MIN_FRESH.max(self.took.saturating_mul(FRESH_PER_WALK));
        self.started.elapsed() < lifetime
    }
}

#[derive(Default)]
struct SlotState {
    last: Option<Sample>,
    walking: bool,
    failure: Option<String>,
}

/// One volume's measurements; a walk thread keeps its own reference, so a
/// volume forgotten mid-walk just lets the result fall on the floor.
#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    done: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here panics while holding a lock; should something still
    // have, the state it left is a plain measurement and safe to reuse.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

type Walker = fn(&Path) -> Result<Usage, UsageError>;

/// Measurements of directory volumes by volume id, held by the driver.
/// Entries are dropped by [`UsageCache::forget`] when a volume is unstaged
/// or deleted, and only volumes that exist on disk are ever measured, so
/// the map is bounded by the node's volumes.
pub struct UsageCache {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    walker: Walker,
    wait: Duration,
}

impl Default for UsageCache {
    fn default() -> Self {
        Self::new()
    }
}

impl UsageCache {
    pub fn new() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            walker: measure,
            wait: RPC_WAIT,
        }
    }

    /// The usage of volume `id`, whose data is the directory `dir`: a
    /// fresh measurement when there is one; otherwise one walk is started
    /// (unless one already runs) and awaited for at most [`RPC_WAIT`].
    pub fn usage(&self, id: &str, dir: &Path) -> Reading {
        let slot = lock(&self.slots).entry(id.to_string()).or_default().clone();
        let mut state = lock(&slot.state);
        if let Some(sample) = state.last.filter(Sample::fresh) {
            return Reading::Measured(sample.usage);
        }
        if !state.walking {
            state.walking = true;
            if let Err(e) = self.spawn_walk(slot.clone(), dir) {
                state.walking = false;
                state.failure = Some(e.to_string());
            }
        }
        let (state, _) = slot
            .done
            .wait_timeout_while(state, self.wait, |s| s.walking)
            .unwrap_or_else(PoisonError::into_inner);
        match (&state.last, &state.failure) {
            (Some(sample), _) => Reading::Measured(sample.usage),
            (None, Some(failure)) => Reading::Failed(failure.clone()),
            (None, None) => Reading::Pending,
        }
    }

    /// The usage of volume `id` as [`UsageCache::usage`] gives it, but
    /// measured on the calling thread and awaited however long it takes
    /// (the usage watch's own thread has nobody waiting on it). A walk an
    /// RPC started is joined, not repeated.
    pub fn usage_now(&self, id: &str, dir: &Path) -> Reading {
        let slot = lock(&self.slots).entry(id.to_string()).or_default().clone();
        let mut state = lock(&slot.state);
        if let Some(sample) = state.last.filter(Sample::fresh) {
            return Reading::Measured(sample.usage);
        }
        if state.walking {
            state = slot
                .done
                .wait_while(state, |s| s.walking)
                .unwrap_or_else(PoisonError::into_inner);
        } else {
            state.walking = true;
            drop(state);
            let started = Instant::now();
            let result = (self.walker)(dir);
            record(&slot, dir, started, result);
            state = lock(&slot.state);
        }
        match (&state.last, &state.failure) {
            (Some(sample), _) => Reading::Measured(sample.usage),
            (None, Some(failure)) => Reading::Failed(failure.clone()),
            (None, None) => Reading::Pending,
        }
    }

    /// Drops what is known about volume `id` (it was unstaged or deleted).
    pub fn forget(&self, id: &str) {
        lock(&self.slots).remove(id);
    }

    fn spawn_walk(&self, slot: Arc<Slot>, dir: &Path) -> Result<(), UsageError> {
        let walker = self.walker;
        let path = dir.to_path_buf();
        std::thread::Builder::new()
            .name("berth-usage".into())
            .spawn(move || {
                let started = Instant::now();
                let result = walker(&path);
                record(&slot, &path, started, result);
            })
            .map(drop)
            .map_err(|source| UsageError::Spawn {
                path: dir.to_path_buf(),
                source,
            })
    }
}

/// Stores a finished walk's outcome and wakes whoever waits for it.
fn record(slot: &Slot, path: &Path, started: Instant, result: Result<Usage, UsageError>) {
    let mut state = lock(&slot.state);
    state.walking = false;
    match result {
        Ok(usage) => {
            state.last = Some(Sample {
                usage,
                started,
                took: started.elapsed(),
            });
            state.failure = None;
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "measuring volume usage failed");
            state.failure = Some(e.to_string());
        }
    }
    drop(state);
    slot.done.notify_all();
}

/// The usage watch's default interval (`--usage-check-interval-secs`):
/// the kubelet asks for volume stats about once a minute, so an overrun
/// shows in the metrics and as an event at least as soon as in
/// `kubelet_volume_stats_*`.
pub const DEFAULT_CHECK_INTERVAL_SECS: u64 = 30;

/// The StorageClass parameters the external-provisioner (and berth's
/// agent) add with the claim's name; the watch names the claim with them.
const PVC_NAMESPACE_PARAM: &str = "csi.storage.k8s.io/pvc/namespace";
const PVC_NAME_PARAM: &str = "csi.storage.k8s.io/pvc/name";

/// A claim by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRef {
    pub namespace: String,
    pub name: String,
}

/// A directory volume found holding more than its capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overrun {
    pub volume_id: String,
    /// The CreateVolume name (`pvc-<claim uid>` when Kubernetes made it).
    pub volume_name: String,
    pub claim: Option<ClaimRef>,
    pub used: u64,
    pub capacity: u64,
}

impl Overrun {
    /// A volume's overrun, when its parameters name its claim.
    pub fn new(
        volume_id: &str,
        volume_name: &str,
        parameters: &BTreeMap<String, String>,
        used: u64,
        capacity: u64,
    ) -> Overrun {
        let claim = match (
            parameters.get(PVC_NAMESPACE_PARAM),
            parameters.get(PVC_NAME_PARAM),
        ) {
            (Some(namespace), Some(name)) => Some(ClaimRef {
                namespace: namespace.clone(),
                name: name.clone(),
            }),
            _ => None,
        };
        Overrun {
            volume_id: volume_id.to_string(),
            volume_name: volume_name.to_string(),
            claim,
            used,
            capacity,
        }
    }

    /// What the VolumeCondition, the log and the event say, with figures.
    pub fn message(&self) -> String {
        over_capacity_message(self.used, self.capacity)
    }
}

/// `volume uses 20.0 MiB of its 16.0 MiB capacity`; exact bytes when the
/// rounded figures would read alike.
pub fn over_capacity_message(used: u64, capacity: u64) -> String {
    let (u, c) = (human_bytes(used), human_bytes(capacity));
    if u == c {
        // Rounded alike, the two figures would read as no overrun at all.
        format!("volume uses {used} bytes of its {capacity}-byte capacity")
    } else {
        format!("volume uses {u} of its {c} capacity")
    }
}

/// What the last pass of the usage watch found.
#[derive(Debug, Clone, Default)]
pub struct WatchReport {
    /// Directory volumes over their capacity, by volume id.
    pub overruns: BTreeMap<String, Overrun>,
    /// Directory volumes measured.
    pub checked: usize,
    /// How long the pass took.
    pub took: Duration,
    /// Whether a pass has finished at all.
    pub done: bool,
}

/// The usage watch's findings, kept by the driver: the last pass's report
/// and a channel announcing each volume that newly went over (the node
/// agent turns those into events on the claims).
pub struct UsageWatch {
    report: Mutex<WatchReport>,
    newly_over: tokio::sync::broadcast::Sender<Overrun>,
}

impl Default for UsageWatch {
    fn default() -> Self {
        Self::new()
    }
}

impl UsageWatch {
    pub fn new() -> Self {
        Self {
            report: Mutex::new(WatchReport::default()),
            // A burst larger than this drops the oldest notices; events are
            // best effort and the metrics and the log still have them.
            newly_over: tokio::sync::broadcast::channel(256).0,
        }
    }

    pub fn report(&self) -> WatchReport {
        lock(&self.report).clone()
    }

    /// Each volume that newly goes over its capacity, from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Overrun> {
        self.newly_over.subscribe()
    }

    /// Takes a finished pass: logs and announces volumes that went over,
    /// logs those back under, and keeps the report.
    pub fn finish_pass(&self, overruns: BTreeMap<String, Overrun>, checked: usize, took: Duration) {
        let mut report = lock(&self.report);
        for (id, o) in &overruns {
            if !report.overruns.contains_key(id) {
                let claim = o
                    .claim
                    .as_ref()
                    .map(|c| format!("{}/{}", c.namespace, c.name))
                    .unwrap_or_default();
                tracing::warn!(volume_id = %id, volume_name = %o.volume_name, %claim, used = o.used, capacity = o.capacity, "directory volume over its capacity: {}", o.message());
                // No receiver (`berth csi` alone) is not an error.
                let _ = self.newly_over.send(o.clone());
            }
        }
        for id in report.overruns.keys() {
            if !overruns.contains_key(id) {
                tracing::info!(volume_id = %id, "directory volume back within its capacity (or gone)");
            }
        }
        *report = WatchReport {
            overruns,
            checked,
            took,
            done: true,
        };
    }
}

/// Runs `pass` (the driver's check of every directory volume) on a thread
/// of its own, then sleeps `interval`, for as long as `owner` lives. The
/// sleep comes after the pass, so the watch never takes more than one
/// thread however slow the walks, and an overrun is reported within
/// `interval` plus one pass.
pub fn spawn_watch<T: Send + Sync + 'static>(
    owner: Weak<T>,
    interval: Duration,
    pass: fn(&T),
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("berth-usage-watch".into())
        .spawn(move || {
            while let Some(o) = owner.upgrade() {
                pass(&o);
                drop(o);
                std::thread::sleep(interval);
            }
        })
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(path: &Path, len: usize) {
        let mut f = std::fs::File::create(path).expect("create");
        f.write_all(&vec![7u8; len]).expect("write");
        f.sync_all().expect("sync");
    }

    fn allocated(path: &Path) -> u64 {
        std::fs::symlink_metadata(path).expect("stat").blocks() * STAT_BLOCK
    }

    #[test]
    fn walker_counts_files_and_directories_once_and_never_follows_symlinks() {
        let tmp = tempdir();
        let root = tmp.join("vol");
        std::fs::create_dir_all(root.join("sub/deeper")).expect("mkdir");
        write(&root.join("a"), 64 * 1024);
        write(&root.join("sub/deeper/b"), 32 * 1024);
        std::fs::hard_link(root.join("a"), root.join("sub/a-again")).expect("link");
        // A symlink to a large tree outside: only the link itself counts.
        let outside = tmp.join("outside");
        std::fs::create_dir(&outside).expect("mkdir");
        write(&outside.join("big"), 1024 * 1024);
        std::os::unix::fs::symlink(&outside, root.join("sub/escape")).expect("symlink");

        let got = measure(&root).expect("measure");
        // vol, sub, deeper, a (with its second name), b, escape.
        assert_eq!(got.inodes, 6);
        let want: u64 = [
            root.clone(),
            root.join("sub"),
            root.join("sub/deeper"),
            root.join("a"),
            root.join("sub/deeper/b"),
            root.join("sub/escape"),
        ]
        .iter()
        .map(|p| allocated(p))
        .sum();
        assert_eq!(got.bytes, want);
        assert!(got.bytes >= 96 * 1024, "{got:?}");
        assert!(got.bytes < 1024 * 1024, "followed the symlink: {got:?}");
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn walker_refuses_a_missing_root() {
        let tmp = tempdir();
        assert!(matches!(
            measure(&tmp.join("nope")),
            Err(UsageError::Root { .. })
        ));
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn a_fresh_measurement_is_reused_until_forgotten() {
        let tmp = tempdir();
        let cache = UsageCache::new();
        let first = cache.usage("v", &tmp);
        assert_eq!(
            first,
            Reading::Measured(measure(&tmp).expect("measure")),
            "a small tree is measured within the wait"
        );
        write(&tmp.join("more"), 256 * 1024);
        assert_eq!(cache.usage("v", &tmp), first, "still fresh");
        cache.forget("v");
        let Reading::Measured(after) = cache.usage("v", &tmp) else {
            panic!("not measured after forget");
        };
        assert!(after.inodes == 2 && after.bytes > 0, "{after:?}");
        let _ = std::fs::remove_dir_all(&tmp);
    }

    fn slow_walk(root: &Path) -> Result<Usage, UsageError> {
        std::thread::sleep(Duration::from_millis(300));
        measure(root)
    }

    #[test]
    fn a_slow_walk_answers_pending_then_its_result() {
        let tmp = tempdir();
        let cache = UsageCache {
            walker: slow_walk,
            wait: Duration::from_millis(20),
            ..UsageCache::new()
        };
        assert_eq!(cache.usage("v", &tmp), Reading::Pending);
        // A second caller joins the running walk rather than starting one.
        assert_eq!(cache.usage("v", &tmp), Reading::Pending);
        std::thread::sleep(Duration::from_millis(600));
        assert!(matches!(cache.usage("v", &tmp), Reading::Measured(_)));
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn a_missing_directory_is_reported_as_a_failure() {
        let tmp = tempdir();
        let cache = UsageCache::new();
        assert!(matches!(
            cache.usage("v", &tmp.join("gone")),
            Reading::Failed(m) if m.contains("gone")
        ));
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn the_watch_measures_on_its_own_thread_and_joins_a_running_walk() {
        let tmp = tempdir();
        let cache = UsageCache {
            walker: slow_walk,
            wait: Duration::from_millis(20),
            ..UsageCache::new()
        };
        // An RPC starts a walk and gives up waiting; the watch joins it.
        assert_eq!(cache.usage("v", &tmp), Reading::Pending);
        assert!(matches!(cache.usage_now("v", &tmp), Reading::Measured(_)));
        // Nothing running and nothing fresh: it walks itself.
        let other = UsageCache::new();
        assert!(matches!(other.usage_now("w", &tmp), Reading::Measured(u) if u.inodes == 1));
        let _ = std::fs::remove_dir_all(&tmp);
    }

    #[test]
    fn only_volumes_newly_over_are_announced() {
        let watch = UsageWatch::new();
        let mut rx = watch.subscribe();
        let params: BTreeMap<String, String> = [
            (PVC_NAMESPACE_PARAM.to_string(), "ns".to_string()),
            (PVC_NAME_PARAM.to_string(), "data".to_string()),
        ]
        .into();
        let over = |used| Overrun::new("vol-1", "pvc-1", &params, used, 16 << 20);
        let pass = |used| BTreeMap::from([("vol-1".to_string(), over(used))]);
        watch.finish_pass(pass(20 << 20), 3, Duration::from_millis(1));
        watch.finish_pass(pass(21 << 20), 3, Duration::from_millis(1));
        let first = rx.try_recv().expect("announced");
        assert_eq!(
            first.claim,
            Some(ClaimRef {
                namespace: "ns".into(),
                name: "data".into()
            })
        );
        assert_eq!(
            first.message(),
            "volume uses 20.0 MiB of its 16.0 MiB capacity"
        );
        assert!(rx.try_recv().is_err(), "still over is not news");
        watch.finish_pass(BTreeMap::new(), 3, Duration::from_millis(1));
        watch.finish_pass(pass(20 << 20), 3, Duration::from_millis(1));
        assert!(rx.try_recv().is_ok(), "over again after being under is");
        assert_eq!(watch.report().overruns.len(), 1);
    }

    #[test]
    fn sizes_read_like_du_h() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(16 << 20), "16.0 MiB");
        assert_eq!(human_bytes(20 << 20), "20.0 MiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }

    /// A fresh directory under the system's temp dir (the crate has no
    /// tempfile dependency).
    fn tempdir() -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "berth-usage-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }
}
