//! The driver core shared by every service: data-dir layout, per-object
//! in-flight locks, capacity accounting and start-up reconciliation of disk
//! against the store. All methods here are synchronous; the gRPC edge runs
//! them on the blocking pool.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

use super::error::CsiError;
use super::store::{Layout, StageState, Store};
use super::usage::{self, Overrun, Reading, UsageCache, UsageWatch};
use super::{loopdev, mount, quota};

/// Longest volume/snapshot name or ID accepted (the CSI spec's 128 bytes).
pub const MAX_ID_LEN: usize = 128;

/// How much the driver may promise to volumes and snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapacityLimit {
    /// `--capacity`: this many bytes in all.
    Fixed(u64),
    /// The data directory's file system: its free space plus what berth's
    /// own data already occupies there. Space promised to volumes but not
    /// yet written counts as taken, so the same free bytes are never
    /// promised twice; other users of the file system shrink it as they
    /// write.
    FileSystem,
}

pub struct Config {
    pub node_id: String,
    pub topology_key: String,
    pub max_volumes_per_node: i64,
    pub capacity: CapacityLimit,
    pub controller: bool,
    pub node: bool,
    /// Where the node service may stage and publish.
    pub paths: super::paths::PathPolicy,
}

pub struct Driver {
    pub cfg: Config,
    pub store: Store,
    pub data_dir: PathBuf,
    locks: DashMap<String, ()>,
    /// Bytes promised to volumes and snapshots, including ones being created.
    used: Mutex<Used>,
    /// Bytes berth's volumes and snapshots occupy on disk, as last sampled
    /// (only kept under [`CapacityLimit::FileSystem`]).
    occupied: AtomicU64,
    /// Fires whenever the free capacity may have changed.
    capacity_changed: tokio::sync::watch::Sender<()>,
    id_counter: AtomicU64,
    /// What each directory volume holds, for NodeGetVolumeStats.
    pub usage: UsageCache,
    /// Whether the data directory's file system could enforce directory
    /// volumes' capacity, found at start-up.
    pub quota: quota::Detection,
    /// The usage watch's findings.
    pub watch: UsageWatch,
}

/// What capacity is promised to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pool {
    Volumes,
    Snapshots,
}

#[derive(Debug, Default, Clone, Copy)]
struct Used {
    volumes: u64,
    snapshots: u64,
}

impl Used {
    fn total(self) -> u64 {
        self.volumes.saturating_add(self.snapshots)
    }

    fn of(&mut self, pool: Pool) -> &mut u64 {
        match pool {
            Pool::Volumes => &mut self.volumes,
            Pool::Snapshots => &mut self.snapshots,
        }
    }
}

/// The driver's capacity at one instant: what is free, and how much its
/// volumes hold (both taken under one lock, so they agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapacityReading {
    pub available: u64,
    pub volume_bytes: u64,
}

/// Holds the in-flight lock for one key; dropping it releases the key.
pub struct InFlight<'a> {
    locks: &'a DashMap<String, ()>,
    key: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.locks.remove(&self.key);
    }
}

/// Validate a CO-supplied name or ID before it is used as a path component
/// or key: nothing may escape the data dir.
pub fn validate_id(kind: &str, value: &str) -> Result<(), CsiError> {
    if value.is_empty() {
        return Err(CsiError::InvalidArgument(format!("{kind} is required")));
    }
    if value.len() > MAX_ID_LEN {
        return Err(CsiError::InvalidArgument(format!(
            "{kind} is longer than {MAX_ID_LEN} bytes"
        )));
    }
    // "." alone would name the volumes or snapshots directory itself.
    if value == "." || value.contains(['/', '\\', '\0']) || value.contains("..") {
        return Err(CsiError::InvalidArgument(format!(
            "{kind} {value:?} contains a path separator, '..' or NUL"
        )));
    }
    Ok(())
}

fn remove_path(path: &Path) -> Result<(), CsiError> {
    let result = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(CsiError::io(format!("removing {}", path.display())))
}

impl Driver {
    pub fn new(cfg: Config, store: Store, data_dir: PathBuf) -> Result<Self, CsiError> {
        for sub in ["volumes", "snapshots"] {
            std::fs::create_dir_all(data_dir.join(sub)).map_err(CsiError::io(format!(
                "creating {}",
                data_dir.join(sub).display()
            )))?;
        }
        let quota = quota::detect(&data_dir);
        tracing::info!(
            mode = quota.mode().label(),
            data_dir = %data_dir.display(),
            "directory volume capacity {}",
            quota.summary()
        );
        Ok(Self {
            cfg,
            store,
            data_dir,
            locks: DashMap::new(),
            used: Mutex::new(Used::default()),
            occupied: AtomicU64::new(0),
            capacity_changed: tokio::sync::watch::channel(()).0,
            id_counter: AtomicU64::new(0),
            usage: UsageCache::new(),
            quota,
            watch: UsageWatch::new(),
        })
    }

    /// One pass of the usage watch: measures every directory volume with
    /// a record (through the usage cache, so a figure an RPC just took is
    /// reused) and hands what it found over capacity to [`UsageWatch`].
    /// A volume without a record (`--mode node` with a store of its own)
    /// has no capacity to compare with and is not checked.
    pub fn check_usage(&self) {
        let started = std::time::Instant::now();
        let records = match self.store.volumes_page(None, 0) {
            Ok((records, _)) => records,
            Err(e) => {
                tracing::warn!(error = %e, "usage watch: listing volumes failed; retrying next interval");
                return;
            }
        };
        let mut overruns = std::collections::BTreeMap::new();
        let mut checked = 0;
        for v in records.iter().filter(|v| v.layout == Layout::Dir) {
            let Some((Layout::Dir, dir)) = self.volume_on_disk(&v.id) else {
                continue;
            };
            checked += 1;
            if let Reading::Measured(u) = self.usage.usage_now(&v.id, &dir)
                && u.bytes > v.capacity
            {
                overruns.insert(
                    v.id.clone(),
                    Overrun::new(&v.id, &v.name, &v.parameters, u.bytes, v.capacity),
                );
            }
        }
        self.watch.finish_pass(overruns, checked, started.elapsed());
    }

    /// A receiver that wakes whenever the free capacity may have changed
    /// (the node agent republishes its CSIStorageCapacity then).
    pub fn subscribe_capacity(&self) -> tokio::sync::watch::Receiver<()> {
        self.capacity_changed.subscribe()
    }

    /// Take the in-flight lock for `key` or fail with ABORTED.
    pub fn lock(&self, key: String) -> Result<InFlight<'_>, CsiError> {
        use dashmap::mapref::entry::Entry;
        match self.locks.entry(key.clone()) {
            Entry::Occupied(_) => Err(CsiError::InProgress(key)),
            Entry::Vacant(v) => {
                v.insert(());
                Ok(InFlight {
                    locks: &self.locks,
                    key,
                })
            }
        }
    }

    /// A fresh, unguessable-enough ID: the per-process random hasher seed
    /// mixed with time and a counter, so restarts never reuse IDs.
    pub fn new_id(&self, prefix: &str) -> String {
        use std::hash::{BuildHasher, Hasher};
        let n = self.id_counter.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u64(n);
        let a = h.finish();
        h.write_u64(a);
        format!("{prefix}-{a:016x}{:016x}", h.finish())
    }

    pub fn volume_path(&self, id: &str, layout: Layout) -> PathBuf {
        match layout {
            Layout::Dir => self.data_dir.join("volumes").join(id),
            Layout::Image => self.data_dir.join("volumes").join(format!("{id}.img")),
        }
    }

    pub fn snapshot_path(&self, id: &str, layout: Layout) -> PathBuf {
        match layout {
            Layout::Dir => self.data_dir.join("snapshots").join(id),
            Layout::Image => self.data_dir.join("snapshots").join(format!("{id}.img")),
        }
    }

    /// The volume's layout as found on disk. The node service uses this
    /// instead of the controller's records so it works in `--mode node`.
    /// Only a directory is a directory volume and only a regular file an
    /// image, so the ID `vol-x.img` does not name vol-x's image as a
    /// directory volume.
    pub fn volume_on_disk(&self, id: &str) -> Option<(Layout, PathBuf)> {
        [Layout::Image, Layout::Dir].into_iter().find_map(|l| {
            let p = self.volume_path(id, l);
            let m = std::fs::symlink_metadata(&p).ok()?;
            let fits = match l {
                Layout::Dir => m.is_dir(),
                Layout::Image => m.is_file(),
            };
            fits.then_some((l, p))
        })
    }

    pub fn remove_volume_data(&self, id: &str) -> Result<(), CsiError> {
        self.usage.forget(id);
        for layout in [Layout::Dir, Layout::Image] {
            let p = self.volume_path(id, layout);
            // A loop device may still hold an image whose create or stage was
            // interrupted; detach it so the file is really gone.
            if layout == Layout::Image {
                for dev in loopdev::devices_for(&p) {
                    loopdev::detach_backed_by(&dev, &p)?;
                }
            }
            remove_path(&p)?;
        }
        Ok(())
    }

    pub fn remove_snapshot_data(&self, id: &str) -> Result<(), CsiError> {
        remove_path(&self.snapshot_path(id, Layout::Dir))?;
        remove_path(&self.snapshot_path(id, Layout::Image))
    }

    /// Everything the driver may promise: the fixed capacity, or what the
    /// file system has free plus what berth's data already occupies.
    fn total(&self) -> u64 {
        match self.cfg.capacity {
            CapacityLimit::Fixed(bytes) => bytes,
            CapacityLimit::FileSystem => {
                let free = nix::sys::statvfs::statvfs(&self.data_dir)
                    .map(|s| s.blocks_available().saturating_mul(s.fragment_size()))
                    .unwrap_or(0);
                free.saturating_add(self.occupied.load(Ordering::Relaxed))
            }
        }
    }

    pub fn available(&self) -> u64 {
        self.capacity_reading().available
    }

    /// Free bytes and the bytes held by volumes, read together.
    pub fn capacity_reading(&self) -> CapacityReading {
        let total = self.total();
        match self.used.lock() {
            Ok(u) => CapacityReading {
                available: total.saturating_sub(u.total()),
                volume_bytes: u.volumes,
            },
            Err(_) => CapacityReading {
                available: 0,
                volume_bytes: 0,
            },
        }
    }

    /// Reserve `bytes` of the capacity or fail. Checking and reserving
    /// under one lock keeps concurrent creates from overbooking. A request
    /// that does not fit is RESOURCE_EXHAUSTED even when it exceeds the
    /// node's whole capacity: another node may hold it, and that code is
    /// what sends a claim back to the scheduler (OUT_OF_RANGE would fail it
    /// for good).
    pub fn reserve(&self, bytes: u64, pool: Pool) -> Result<(), CsiError> {
        let total = self.total();
        let mut used = self
            .used
            .lock()
            .map_err(|_| CsiError::Store("capacity accounting lock poisoned".into()))?;
        let free = total.saturating_sub(used.total());
        if bytes > free {
            return Err(CsiError::ResourceExhausted(if bytes > total {
                format!(
                    "{bytes} bytes requested but node {} holds at most {total}",
                    self.cfg.node_id
                )
            } else {
                format!(
                    "{bytes} bytes requested but node {} has only {free} free",
                    self.cfg.node_id
                )
            }));
        }
        *used.of(pool) += bytes;
        drop(used);
        self.capacity_changed.send_replace(());
        Ok(())
    }

    pub fn release(&self, bytes: u64, pool: Pool) {
        if let Ok(mut used) = self.used.lock() {
            let held = used.of(pool);
            *held = held.saturating_sub(bytes);
        }
        self.capacity_changed.send_replace(());
    }

    /// Re-measures what berth's data occupies on disk (file system
    /// capacity only); returns the bytes found.
    pub fn sample_occupied(&self) -> u64 {
        if self.cfg.capacity != CapacityLimit::FileSystem {
            return 0;
        }
        let bytes = ["volumes", "snapshots"]
            .iter()
            .map(|sub| {
                // A missing directory holds nothing.
                usage::measure(&self.data_dir.join(sub)).map_or(0, |u| u.bytes)
            })
            .sum();
        if self.occupied.swap(bytes, Ordering::Relaxed) != bytes {
            self.capacity_changed.send_replace(());
        }
        bytes
    }

    /// Make disk agree with the store after a restart: drop data nobody has
    /// a record for (a create or delete cut short), undo interrupted stages
    /// and detach loop devices nobody staged.
    pub fn reconcile(&self) -> Result<(), CsiError> {
        if self.cfg.node {
            self.reconcile_node()?;
        }
        if self.cfg.controller {
            self.reconcile_controller()?;
        }
        Ok(())
    }

    fn reconcile_node(&self) -> Result<(), CsiError> {
        let mut keep = std::collections::HashSet::new();
        let mut rolled_back = std::collections::HashSet::new();
        for st in self.store.stages()? {
            match st.state {
                StageState::Staged => {
                    if let Some(dev) = &st.loop_device {
                        keep.insert(PathBuf::from(dev));
                    }
                }
                StageState::Staging => {
                    tracing::warn!(volume_id = %st.volume_id, "rolling back interrupted NodeStage");
                    let staging = Path::new(&st.staging_path);
                    mount::unmount_all(staging)?;
                    if let Some((Layout::Image, file)) = self.volume_on_disk(&st.volume_id) {
                        for dev in loopdev::devices_for(&file) {
                            loopdev::detach_backed_by(&dev, &file)?;
                            rolled_back.insert(dev);
                        }
                    }
                    self.store.remove_stage(&st.volume_id)?;
                }
            }
        }
        let volumes_dir = self.data_dir.join("volumes");
        // LOOP_CLR_FD only schedules the detach while anything else still
        // holds the device open (e.g. a helper killed along with the old
        // driver that has not finished exiting), so keep detaching until
        // sysfs shows the devices gone before serving.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let stray: Vec<_> = loopdev::attached()
                .into_iter()
                .filter(|(dev, backing)| backing.starts_with(&volumes_dir) && !keep.contains(dev))
                .collect();
            if stray.is_empty() {
                break;
            }
            if std::time::Instant::now() > deadline {
                tracing::error!(devices = ?stray, "loop devices still attached after repeated detaches");
                break;
            }
            for (dev, backing) in stray {
                if !rolled_back.contains(&dev) {
                    tracing::warn!(device = %dev.display(), backing = %backing.display(), "detaching orphaned loop device");
                    rolled_back.insert(dev.clone());
                }
                loopdev::detach_backed_by(&dev, &backing)?;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(())
    }

    fn reconcile_controller(&self) -> Result<(), CsiError> {
        let mut used = Used::default();
        let mut known_volumes = std::collections::HashSet::new();
        for v in self.store.volumes_page(None, 0)?.0 {
            used.volumes += v.capacity;
            if self.volume_on_disk(&v.id).is_none() {
                // Records are written only after their data exists, so this
                // means someone removed the data behind our back; keep the
                // record (VOLUME_CONDITION reports it abnormal) rather than
                // silently forgetting a volume the CO still references.
                tracing::error!(volume_id = %v.id, "volume record has no data on disk");
            }
            known_volumes.insert(v.id);
        }
        let mut known_snapshots = std::collections::HashSet::new();
        for s in self.store.snapshots_page(None, 0)?.0 {
            used.snapshots += s.size;
            known_snapshots.insert(s.id);
        }
        self.sweep_unrecorded("volumes", &known_volumes)?;
        self.sweep_unrecorded("snapshots", &known_snapshots)?;
        if let Ok(mut u) = self.used.lock() {
            *u = used;
        }
        self.sample_occupied();
        Ok(())
    }

    /// Remove entries under `data_dir/sub` whose ID has no ready record:
    /// data written by a create that crashed before its record landed.
    fn sweep_unrecorded(
        &self,
        sub: &str,
        known: &std::collections::HashSet<String>,
    ) -> Result<(), CsiError> {
        let dir = self.data_dir.join(sub);
        let entries =
            std::fs::read_dir(&dir).map_err(CsiError::io(format!("reading {}", dir.display())))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(".img").unwrap_or(&name);
            if !known.contains(id) {
                tracing::warn!(path = %entry.path().display(), "rolling back interrupted operation: removing data without a record");
                if sub == "volumes" {
                    self.remove_volume_data(id)?;
                }
                remove_path(&entry.path())?;
            }
        }
        Ok(())
    }
}
