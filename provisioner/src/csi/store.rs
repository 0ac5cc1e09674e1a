//! Crash-safe driver state: volumes, snapshots and node staging records kept
//! in an embedded transactional store (redb). Every mutation is committed
//! with immediate durability before the RPC answers, so a `kill -9` leaves
//! the store at either the old or the new record. Writes from concurrent
//! RPCs are group-committed by one writer thread: one fsync covers a whole
//! batch, and the cost of a commit does not grow with the number of records.
//!
//! Ordering rule that makes crashes safe: a volume or snapshot record is
//! written only after its data exists, and removed before its data is
//! removed. A crash can therefore leave data without a record (swept on
//! start) but never a record without its data.
//!
//! A full disk: redb latches its first I/O failure (a commit that hit
//! ENOSPC) and fails every later call with `PreviousIo` until the database
//! is closed and opened again. The failed commit never became visible, so
//! the store closes and reopens itself on the next call (redb's recovery
//! runs then) and keeps failing that call cleanly for as long as the
//! reopen itself fails: a full disk costs errors, never a restart or a
//! corrupt store.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::error::{CsiError, io_out_of_space};

const VOLUMES: TableDefinition<&str, &[u8]> = TableDefinition::new("volumes");
const VOLUME_NAMES: TableDefinition<&str, &str> = TableDefinition::new("volume_names");
const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");
const SNAPSHOT_NAMES: TableDefinition<&str, &str> = TableDefinition::new("snapshot_names");
const STAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("stages");
const PUBLICATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("publications");

/// How a volume's bytes are laid out under the data dir.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// A plain directory; capacity is accounted, not enforced.
    Dir,
    /// A sparse image file, attached to a loop device at NodeStage and, for
    /// mount access, formatted with `fs_type` on first stage.
    Image,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum ContentSource {
    Snapshot(String),
    Volume(String),
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct VolumeRecord {
    pub id: String,
    pub name: String,
    pub capacity: u64,
    pub layout: Layout,
    pub fs_type: Option<String>,
    pub parameters: BTreeMap<String, String>,
    pub source: Option<ContentSource>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct SnapshotRecord {
    pub id: String,
    pub name: String,
    pub source_volume_id: String,
    pub size: u64,
    pub layout: Layout,
    pub fs_type: Option<String>,
    pub created_unix_nanos: i64,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StageState {
    Staging,
    Staged,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct StageRecord {
    pub volume_id: String,
    pub staging_path: String,
    pub block: bool,
    pub loop_device: Option<String>,
    pub state: StageState,
}

/// One change inside a group-committed write transaction.
enum Op {
    Put {
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        names: Option<TableDefinition<'static, &'static str, &'static str>>,
        id: String,
        name: String,
        bytes: Vec<u8>,
    },
    Remove {
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        names: Option<TableDefinition<'static, &'static str, &'static str>>,
        id: String,
        name: String,
    },
}

/// A commit's failure as the writer thread reports it to every RPC in the
/// batch: whether the disk was full, and what redb said.
#[derive(Clone, Debug)]
struct WriteFailure {
    full: bool,
    message: String,
}

impl From<WriteFailure> for CsiError {
    fn from(f: WriteFailure) -> CsiError {
        if f.full {
            CsiError::StoreFull(f.message)
        } else {
            CsiError::Store(f.message)
        }
    }
}

type Reply = mpsc::SyncSender<Result<(), WriteFailure>>;

/// A ControllerPublishVolume grant: which node may use the volume, how.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Publication {
    pub volume_id: String,
    pub node_id: String,
    pub readonly: bool,
    pub block: bool,
}

pub struct Store {
    shared: Arc<Shared>,
    writer: Mutex<mpsc::Sender<(Op, Reply)>>,
}

/// How long a reopen waits for transactions begun on the failed database
/// to end (they are single reads or one batch's commit: milliseconds).
const REOPEN_WAIT: Duration = Duration::from_secs(5);

/// The open database, shared by the RPCs' reads and the writer thread,
/// and whether an I/O failure has latched it.
struct Shared {
    path: PathBuf,
    /// `None` only while a reopen is failing.
    db: RwLock<Option<Arc<Database>>>,
    broken: AtomicBool,
}

impl Shared {
    /// The database to use now, reopened first when an I/O failure has
    /// latched the current one.
    fn db(&self) -> Result<Arc<Database>, CsiError> {
        if self.broken.load(Ordering::Acquire) {
            self.reopen()?;
        }
        self.db
            .read()
            .map_err(|_| CsiError::Store("database lock poisoned".into()))?
            .clone()
            .ok_or_else(|| CsiError::Store("the state store is not open".into()))
    }

    fn reopen(&self) -> Result<(), CsiError> {
        let mut slot = self
            .db
            .write()
            .map_err(|_| CsiError::Store("database lock poisoned".into()))?;
        if !self.broken.load(Ordering::Acquire) {
            // Another caller reopened it while this one waited.
            return Ok(());
        }
        if let Some(mut old) = slot.take() {
            // redb's file lock is held until the last handle goes, and a
            // second open in this process would meet it.
            let deadline = Instant::now() + REOPEN_WAIT;
            loop {
                match Arc::try_unwrap(old) {
                    Ok(db) => {
                        drop(db);
                        break;
                    }
                    Err(still) if Instant::now() < deadline => {
                        old = still;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(still) => {
                        *slot = Some(still);
                        return Err(CsiError::Store(
                            "an earlier write failed and the store is still in use; retry".into(),
                        ));
                    }
                }
            }
        }
        let db = Database::create(&self.path).map_err(|e| self.failed(e))?;
        *slot = Some(Arc::new(db));
        self.broken.store(false, Ordering::Release);
        tracing::warn!(path = %self.path.display(), "state store reopened after an I/O failure");
        Ok(())
    }

    /// A redb error as the driver's: an I/O failure latches the store
    /// for a reopen, and a full disk says so.
    fn failed(&self, e: impl Into<redb::Error>) -> CsiError {
        let e: redb::Error = e.into();
        let full = match &e {
            redb::Error::Io(io) => {
                self.broken.store(true, Ordering::Release);
                io_out_of_space(io)
            }
            redb::Error::DatabaseClosed | redb::Error::PreviousIo => {
                self.broken.store(true, Ordering::Release);
                false
            }
            _ => false,
        };
        let message = e.to_string();
        if full {
            CsiError::StoreFull(message)
        } else {
            CsiError::Store(message)
        }
    }
}

/// Largest number of RPC writes folded into one commit.
const MAX_BATCH: usize = 256;

fn apply(txn: &redb::WriteTransaction, op: &Op) -> Result<(), redb::Error> {
    match op {
        Op::Put {
            table,
            names,
            id,
            name,
            bytes,
        } => {
            txn.open_table(*table)?
                .insert(id.as_str(), bytes.as_slice())?;
            if let Some(names) = names {
                txn.open_table(*names)?.insert(name.as_str(), id.as_str())?;
            }
        }
        Op::Remove {
            table,
            names,
            id,
            name,
        } => {
            txn.open_table(*table)?.remove(id.as_str())?;
            if let Some(names) = names {
                let mut n = txn.open_table(*names)?;
                // Only drop the name if it still points at this id.
                let owned = n.get(name.as_str())?.is_some_and(|v| v.value() == id);
                if owned {
                    n.remove(name.as_str())?;
                }
            }
        }
    }
    Ok(())
}

/// The writer thread: take one queued op, fold in whatever else is queued,
/// commit once, answer everyone. Exits when the store is dropped.
fn writer_loop(shared: Arc<Shared>, rx: mpsc::Receiver<(Op, Reply)>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter().take(MAX_BATCH - 1));
        let result = match shared.db() {
            Ok(db) => {
                let committed = (|| -> Result<(), redb::Error> {
                    let txn = db.begin_write()?;
                    for (op, _) in &batch {
                        apply(&txn, op)?;
                    }
                    txn.commit()?;
                    Ok(())
                })();
                // Let go of the handle before answering, so a reopen the
                // next call asks for does not wait on it.
                drop(db);
                committed.map_err(|e| shared.failed(e))
            }
            Err(e) => Err(e),
        }
        .map_err(|e| WriteFailure {
            full: e.is_out_of_space(),
            // The reply becomes a store error again: keep the inner text
            // so it is not prefixed twice.
            message: match e {
                CsiError::Store(m) | CsiError::StoreFull(m) => m,
                other => other.to_string(),
            },
        });
        for (_, reply) in batch {
            let _ = reply.send(result.clone());
        }
    }
}

fn store_err(e: impl std::fmt::Display) -> CsiError {
    CsiError::Store(e.to_string())
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CsiError> {
    serde_json::from_slice(bytes).map_err(store_err)
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CsiError> {
    serde_json::to_vec(value).map_err(store_err)
}

impl Store {
    pub fn open(path: &Path) -> Result<Self, CsiError> {
        // After a crash the old process may take a moment to be fully gone
        // (its file lock is released on last close), so wait for the lock
        // rather than failing the restart.
        let mut attempts = 0;
        let db = loop {
            match Database::create(path) {
                Ok(db) => break db,
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if attempts < 100 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(e) => return Err(store_err(e)),
            }
        };
        // Create every table up front so read transactions never see a
        // missing table on a fresh state dir.
        let txn = db.begin_write().map_err(store_err)?;
        txn.open_table(VOLUMES).map_err(store_err)?;
        txn.open_table(VOLUME_NAMES).map_err(store_err)?;
        txn.open_table(SNAPSHOTS).map_err(store_err)?;
        txn.open_table(SNAPSHOT_NAMES).map_err(store_err)?;
        txn.open_table(STAGES).map_err(store_err)?;
        txn.open_table(PUBLICATIONS).map_err(store_err)?;
        txn.commit().map_err(store_err)?;
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            db: RwLock::new(Some(Arc::new(db))),
            broken: AtomicBool::new(false),
        });
        let (tx, rx) = mpsc::channel();
        let writer = shared.clone();
        std::thread::Builder::new()
            .name("csi-store-writer".into())
            .spawn(move || writer_loop(writer, rx))
            .map_err(store_err)?;
        Ok(Self {
            shared,
            writer: Mutex::new(tx),
        })
    }

    /// A read transaction on the current database; errors latch it as
    /// writes' do.
    fn read(&self) -> Result<redb::ReadTransaction, CsiError> {
        let db = self.shared.db()?;
        db.begin_read().map_err(|e| self.shared.failed(e))
    }

    fn read_err(&self, e: impl Into<redb::Error>) -> CsiError {
        self.shared.failed(e)
    }

    /// Queue one change and wait until the commit that contains it is
    /// durable.
    fn write(&self, op: Op) -> Result<(), CsiError> {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        self.writer
            .lock()
            .map_err(|_| CsiError::Store("writer lock poisoned".into()))?
            .send((op, reply_tx))
            .map_err(|_| CsiError::Store("store writer has stopped".into()))?;
        reply_rx
            .recv()
            .map_err(|_| CsiError::Store("store writer has stopped".into()))?
            .map_err(CsiError::from)
    }

    /// Cheap liveness check for `/healthz`.
    pub fn healthy(&self) -> bool {
        self.read()
            .map(|t| t.open_table(VOLUMES).is_ok())
            .unwrap_or(false)
    }

    fn get<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>, CsiError> {
        let txn = self.read()?;
        let t = txn.open_table(table).map_err(|e| self.read_err(e))?;
        match t.get(key).map_err(|e| self.read_err(e))? {
            Some(v) => Ok(Some(decode(v.value())?)),
            None => Ok(None),
        }
    }

    fn name_lookup(
        &self,
        table: TableDefinition<&str, &str>,
        name: &str,
    ) -> Result<Option<String>, CsiError> {
        let txn = self.read()?;
        let t = txn.open_table(table).map_err(|e| self.read_err(e))?;
        Ok(t.get(name)
            .map_err(|e| self.read_err(e))?
            .map(|v| v.value().to_string()))
    }

    /// Records in key order strictly after `after`, at most `limit` of them
    /// (0 = all). Also returns whether more records follow, which is what
    /// paging needs without a second scan.
    fn page<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<T>, bool), CsiError> {
        let txn = self.read()?;
        let t = txn.open_table(table).map_err(|e| self.read_err(e))?;
        let lower = match after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for item in t
            .range::<&str>((lower, Bound::Unbounded))
            .map_err(|e| self.read_err(e))?
        {
            let (_, v) = item.map_err(|e| self.read_err(e))?;
            if limit != 0 && out.len() == limit {
                return Ok((out, true));
            }
            out.push(decode(v.value())?);
        }
        Ok((out, false))
    }

    fn put_named<T: Serialize>(
        &self,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        names: TableDefinition<'static, &'static str, &'static str>,
        id: &str,
        name: &str,
        value: &T,
    ) -> Result<(), CsiError> {
        self.write(Op::Put {
            table,
            names: Some(names),
            id: id.to_string(),
            name: name.to_string(),
            bytes: encode(value)?,
        })
    }

    fn remove_named(
        &self,
        table: TableDefinition<'static, &'static str, &'static [u8]>,
        names: TableDefinition<'static, &'static str, &'static str>,
        id: &str,
        name: &str,
    ) -> Result<(), CsiError> {
        self.write(Op::Remove {
            table,
            names: Some(names),
            id: id.to_string(),
            name: name.to_string(),
        })
    }

    pub fn volume(&self, id: &str) -> Result<Option<VolumeRecord>, CsiError> {
        self.get(VOLUMES, id)
    }
    pub fn volume_by_name(&self, name: &str) -> Result<Option<VolumeRecord>, CsiError> {
        match self.name_lookup(VOLUME_NAMES, name)? {
            Some(id) => self.volume(&id),
            None => Ok(None),
        }
    }
    pub fn put_volume(&self, rec: &VolumeRecord) -> Result<(), CsiError> {
        self.put_named(VOLUMES, VOLUME_NAMES, &rec.id, &rec.name, rec)
    }
    pub fn remove_volume(&self, rec: &VolumeRecord) -> Result<(), CsiError> {
        self.remove_named(VOLUMES, VOLUME_NAMES, &rec.id, &rec.name)
    }
    pub fn volumes_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<VolumeRecord>, bool), CsiError> {
        self.page(VOLUMES, after, limit)
    }

    pub fn snapshot(&self, id: &str) -> Result<Option<SnapshotRecord>, CsiError> {
        self.get(SNAPSHOTS, id)
    }
    pub fn snapshot_by_name(&self, name: &str) -> Result<Option<SnapshotRecord>, CsiError> {
        match self.name_lookup(SNAPSHOT_NAMES, name)? {
            Some(id) => self.snapshot(&id),
            None => Ok(None),
        }
    }
    pub fn put_snapshot(&self, rec: &SnapshotRecord) -> Result<(), CsiError> {
        self.put_named(SNAPSHOTS, SNAPSHOT_NAMES, &rec.id, &rec.name, rec)
    }
    pub fn remove_snapshot(&self, rec: &SnapshotRecord) -> Result<(), CsiError> {
        self.remove_named(SNAPSHOTS, SNAPSHOT_NAMES, &rec.id, &rec.name)
    }
    pub fn snapshots_page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<SnapshotRecord>, bool), CsiError> {
        self.page(SNAPSHOTS, after, limit)
    }

    pub fn stage(&self, volume_id: &str) -> Result<Option<StageRecord>, CsiError> {
        self.get(STAGES, volume_id)
    }
    pub fn put_stage(&self, rec: &StageRecord) -> Result<(), CsiError> {
        self.write(Op::Put {
            table: STAGES,
            names: None,
            id: rec.volume_id.clone(),
            name: String::new(),
            bytes: encode(rec)?,
        })
    }
    pub fn remove_stage(&self, volume_id: &str) -> Result<(), CsiError> {
        self.write(Op::Remove {
            table: STAGES,
            names: None,
            id: volume_id.to_string(),
            name: String::new(),
        })
    }
    pub fn stages(&self) -> Result<Vec<StageRecord>, CsiError> {
        Ok(self.page(STAGES, None, 0)?.0)
    }
    pub fn stage_count(&self) -> Result<u64, CsiError> {
        let txn = self.read()?;
        let t = txn.open_table(STAGES).map_err(|e| self.read_err(e))?;
        t.len().map_err(|e| self.read_err(e))
    }

    pub fn publication(&self, volume_id: &str) -> Result<Option<Publication>, CsiError> {
        self.get(PUBLICATIONS, volume_id)
    }
    pub fn put_publication(&self, rec: &Publication) -> Result<(), CsiError> {
        self.write(Op::Put {
            table: PUBLICATIONS,
            names: None,
            id: rec.volume_id.clone(),
            name: String::new(),
            bytes: encode(rec)?,
        })
    }
    pub fn remove_publication(&self, volume_id: &str) -> Result<(), CsiError> {
        self.write(Op::Remove {
            table: PUBLICATIONS,
            names: None,
            id: volume_id.to_string(),
            name: String::new(),
        })
    }
    pub fn publication_count(&self) -> Result<u64, CsiError> {
        let txn = self.read()?;
        let t = txn.open_table(PUBLICATIONS).map_err(|e| self.read_err(e))?;
        t.len().map_err(|e| self.read_err(e))
    }
}
