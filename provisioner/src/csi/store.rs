//! Crash-safe driver state: volumes, snapshots and node staging records kept
//! in an embedded transactional store (redb). Every mutation is one write
//! transaction committed with immediate durability, so a `kill -9` leaves the
//! store at either the old or the new record, never in between; the
//! reconciler (see `volumes.rs`) then makes disk agree with the records.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::error::CsiError;

const VOLUMES: TableDefinition<&str, &[u8]> = TableDefinition::new("volumes");
const VOLUME_NAMES: TableDefinition<&str, &str> = TableDefinition::new("volume_names");
const SNAPSHOTS: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshots");
const SNAPSHOT_NAMES: TableDefinition<&str, &str> = TableDefinition::new("snapshot_names");
const STAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("stages");

/// Lifecycle of a record whose data lives on disk. A record is written in
/// `Creating` before its data is made and flipped to `Deleting` before its
/// data is removed, so after a crash the reconciler knows which half-done
/// operations to roll back.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordState {
    Creating,
    Ready,
    Deleting,
}

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
    pub state: RecordState,
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
    pub state: RecordState,
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

pub struct Store {
    db: Database,
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
        txn.commit().map_err(store_err)?;
        Ok(Self { db })
    }

    /// Cheap liveness check for `/healthz`.
    pub fn healthy(&self) -> bool {
        self.db
            .begin_read()
            .and_then(|t| Ok(t.open_table(VOLUMES).is_ok()))
            .unwrap_or(false)
    }

    fn get<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>, CsiError> {
        let txn = self.db.begin_read().map_err(store_err)?;
        let t = txn.open_table(table).map_err(store_err)?;
        match t.get(key).map_err(store_err)? {
            Some(v) => Ok(Some(decode(v.value())?)),
            None => Ok(None),
        }
    }

    fn name_lookup(
        &self,
        table: TableDefinition<&str, &str>,
        name: &str,
    ) -> Result<Option<String>, CsiError> {
        let txn = self.db.begin_read().map_err(store_err)?;
        let t = txn.open_table(table).map_err(store_err)?;
        Ok(t.get(name)
            .map_err(store_err)?
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
        let txn = self.db.begin_read().map_err(store_err)?;
        let t = txn.open_table(table).map_err(store_err)?;
        let lower = match after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for item in t
            .range::<&str>((lower, Bound::Unbounded))
            .map_err(store_err)?
        {
            let (_, v) = item.map_err(store_err)?;
            if limit != 0 && out.len() == limit {
                return Ok((out, true));
            }
            out.push(decode(v.value())?);
        }
        Ok((out, false))
    }

    fn put_named<T: Serialize>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        names: TableDefinition<&str, &str>,
        id: &str,
        name: &str,
        value: &T,
    ) -> Result<(), CsiError> {
        let bytes = encode(value)?;
        let txn = self.db.begin_write().map_err(store_err)?;
        {
            let mut t = txn.open_table(table).map_err(store_err)?;
            t.insert(id, bytes.as_slice()).map_err(store_err)?;
            let mut n = txn.open_table(names).map_err(store_err)?;
            n.insert(name, id).map_err(store_err)?;
        }
        txn.commit().map_err(store_err)
    }

    fn remove_named(
        &self,
        table: TableDefinition<&str, &[u8]>,
        names: TableDefinition<&str, &str>,
        id: &str,
        name: &str,
    ) -> Result<(), CsiError> {
        let txn = self.db.begin_write().map_err(store_err)?;
        {
            let mut t = txn.open_table(table).map_err(store_err)?;
            t.remove(id).map_err(store_err)?;
            let mut n = txn.open_table(names).map_err(store_err)?;
            // Only drop the name if it still points at this id: a name is
            // never reused for another id while the old record exists, but
            // being strict here costs nothing.
            let owned = n
                .get(name)
                .map_err(store_err)?
                .is_some_and(|v| v.value() == id);
            if owned {
                n.remove(name).map_err(store_err)?;
            }
        }
        txn.commit().map_err(store_err)
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
        let bytes = encode(rec)?;
        let txn = self.db.begin_write().map_err(store_err)?;
        {
            let mut t = txn.open_table(STAGES).map_err(store_err)?;
            t.insert(rec.volume_id.as_str(), bytes.as_slice())
                .map_err(store_err)?;
        }
        txn.commit().map_err(store_err)
    }
    pub fn remove_stage(&self, volume_id: &str) -> Result<(), CsiError> {
        let txn = self.db.begin_write().map_err(store_err)?;
        {
            let mut t = txn.open_table(STAGES).map_err(store_err)?;
            t.remove(volume_id).map_err(store_err)?;
        }
        txn.commit().map_err(store_err)
    }
    pub fn stages(&self) -> Result<Vec<StageRecord>, CsiError> {
        Ok(self.page(STAGES, None, 0)?.0)
    }
    pub fn stage_count(&self) -> Result<u64, CsiError> {
        let txn = self.db.begin_read().map_err(store_err)?;
        let t = txn.open_table(STAGES).map_err(store_err)?;
        t.len().map_err(store_err)
    }
}
