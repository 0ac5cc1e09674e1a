//! The orphan sweep: the node agent's second line of defence against leaked
//! volumes.
//!
//! Provisioning deletes a volume whose claim went away while it worked, but
//! a process killed between CreateVolume and the PV's creation, or a claim
//! deleted while the agent was down, leaves a volume nobody will ever
//! reclaim. Every volume berth provisions is named `pvc-<claim uid>`, so
//! the agent can tell such a volume from its own store: no PV of that name
//! exists and no live claim has that uid. It is deleted once it has been an
//! orphan on every sweep for the grace period, which leaves time for a
//! provisioning in flight to create its PV and for caches to catch up.
//!
//! Each sweep reads the agent's store (no API call) and the PV cache; only
//! when a candidate remains does it ask the API server (one metadata LIST of
//! claims, one metadata GET per candidate PV), so an idle node costs
//! nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::api::{Api, ListParams};
use kube::runtime::reflector::ObjectRef;

use crate::controller::Context;
use crate::csi::CsiError;
use crate::csi::volumes::Driver;

/// Prefix of the volumes berth provisions: `pvc-<claim uid>`.
const PREFIX: &str = "pvc-";
/// Store page size while listing.
const PAGE: usize = 256;

#[derive(clap::Args, Debug, Clone)]
pub struct SweepArgs {
    /// Seconds between two orphan sweeps (0 turns the sweep off).
    #[arg(long, default_value_t = 300)]
    pub orphan_sweep_interval_secs: u64,
    /// Seconds a volume must have been an orphan (no PV, no live claim of
    /// its uid) on every sweep before it is deleted.
    #[arg(long, default_value_t = 600)]
    pub orphan_grace_secs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("reading the volume store: {0}")]
    Store(#[from] CsiError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// A volume that may be an orphan.
struct Candidate {
    id: String,
    name: String,
    uid: String,
}

/// The sweep's state between runs.
pub struct Sweep {
    driver: Arc<Driver>,
    ctx: Arc<Context>,
    grace: Duration,
    /// Volume name → when it was first seen orphaned (in memory: after a
    /// restart the grace starts again, which only delays a deletion).
    since: HashMap<String, Instant>,
    /// `berth_orphaned_volumes_deleted_total`.
    deleted: Arc<AtomicU64>,
}

impl Sweep {
    pub fn new(
        driver: Arc<Driver>,
        ctx: Arc<Context>,
        grace: Duration,
        deleted: Arc<AtomicU64>,
    ) -> Self {
        Sweep {
            driver,
            ctx,
            grace,
            since: HashMap::new(),
            deleted,
        }
    }

    /// Sweeps every `interval` until the future is dropped.
    pub async fn run(mut self, interval: Duration) {
        // No wait for the caches: a volume the PV cache has not seen yet is
        // only a candidate, and the API server decides.
        tracing::info!(?interval, grace = ?self.grace, "orphan sweep running");
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.once().await {
                tracing::warn!(error = %e, "orphan sweep failed; trying again next time");
            }
        }
    }

    /// One sweep; returns how many volumes it deleted.
    pub async fn once(&mut self) -> Result<usize, SweepError> {
        let candidates = self.candidates()?;
        let names: HashSet<&str> = candidates.iter().map(|c| c.name.as_str()).collect();
        self.since.retain(|n, _| names.contains(n.as_str()));
        if candidates.is_empty() {
            return Ok(0);
        }
        tracing::debug!(
            candidates = candidates.len(),
            "orphan sweep: volumes without a cached PV"
        );
        // The cache may lag: the API server has the last word on claims and PVs.
        let claims: Api<PersistentVolumeClaim> = Api::all(self.ctx.client.clone());
        let live: HashSet<String> = claims
            .list_metadata(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|c| c.metadata.deletion_timestamp.is_none())
            .filter_map(|c| c.metadata.uid)
            .collect();
        let pvs: Api<PersistentVolume> = Api::all(self.ctx.client.clone());
        let now = Instant::now();
        let mut deleted = 0;
        for c in candidates {
            if live.contains(&c.uid) || pvs.get_metadata_opt(&c.name).await?.is_some() {
                self.since.remove(&c.name);
                continue;
            }
            let first = *self.since.entry(c.name.clone()).or_insert(now);
            if now.duration_since(first) < self.grace {
                continue;
            }
            match self.driver.delete_volume(&c.id) {
                Ok(()) => {
                    deleted += 1;
                    self.deleted.fetch_add(1, Ordering::Relaxed);
                    self.since.remove(&c.name);
                    tracing::info!(volume = %c.name, id = %c.id, claim_uid = %c.uid, orphaned_for = ?now.duration_since(first), "deleted an orphaned volume: no PV and no live claim of its uid");
                }
                Err(e) => {
                    tracing::warn!(volume = %c.name, id = %c.id, error = %e, "deleting an orphaned volume failed; trying again next sweep");
                }
            }
        }
        Ok(deleted)
    }

    /// Volumes named `pvc-<uid>` that no cached PV names.
    fn candidates(&self) -> Result<Vec<Candidate>, SweepError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (page, more) = self.driver.store.volumes_page(after.as_deref(), PAGE)?;
            after = page.last().map(|r| r.id.clone());
            for rec in page {
                let Some(uid) = rec.name.strip_prefix(PREFIX) else {
                    continue;
                };
                if uid.is_empty()
                    || self
                        .ctx
                        .caches
                        .volumes
                        .get(&ObjectRef::new(&rec.name))
                        .is_some()
                {
                    continue;
                }
                out.push(Candidate {
                    uid: uid.to_string(),
                    id: rec.id,
                    name: rec.name,
                });
            }
            if !more || after.is_none() {
                return Ok(out);
            }
        }
    }
}

/// The counter's line in the Prometheus text format.
pub fn render(deleted: &AtomicU64) -> String {
    format!(
        "# HELP berth_orphaned_volumes_deleted_total Volumes deleted by the orphan sweep (no PV, no live claim of their uid).\n# TYPE berth_orphaned_volumes_deleted_total counter\nberth_orphaned_volumes_deleted_total {}\n",
        deleted.load(Ordering::Relaxed)
    )
}
