//! Our own writes, remembered until the watch shows them.
//!
//! The binder plans from reflector stores, which lag behind the API server
//! by one watch event. Planning again from a store that has not yet seen our
//! last write would redo it and fail on a conflict (or, worse, plan around a
//! volume we just took). An [`Overlay`] keeps the object each write returned
//! next to the resourceVersion the store had before it; while the store still
//! shows that version, the overlay's object is used instead, and the entry
//! is dropped as soon as the store has caught up with it. A store can also
//! show a version between the two (someone else wrote the object just
//! before us and that event arrives first): resourceVersions are etcd
//! revisions, so one below our write's is older than it, and our object
//! (which includes that change) still wins. A version berth cannot read as
//! a number counts as caught up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::{Resource, ResourceExt};

struct Entry<K> {
    /// resourceVersion the store had when we first wrote the object.
    stale: Option<String>,
    newest: Arc<K>,
}

pub struct Overlay<K> {
    entries: Mutex<HashMap<(String, String), Entry<K>>>,
}

impl<K> Default for Overlay<K> {
    fn default() -> Self {
        Overlay {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

/// Whether `seen` is an older version than `ours` (both resourceVersions
/// read as numbers).
fn older<K: Resource>(seen: &K, ours: &K) -> bool {
    let rv = |o: &K| o.resource_version()?.parse::<u64>().ok();
    matches!((rv(seen), rv(ours)), (Some(a), Some(b)) if a < b)
}

fn key<K: Resource>(o: &K) -> (String, String) {
    (o.namespace().unwrap_or_default(), o.name_any())
}

impl<K: Resource> Overlay<K> {
    /// Records that `before` (as planned from) was written and is now
    /// `written`; returns the latter for the next write in the same round.
    pub fn record(&self, before: &Arc<K>, mut written: K) -> Arc<K> {
        // Kept like the caches keep objects: without what berth never reads
        // (a burst of writes holds many of these until the watch catches up).
        crate::controller::caches::trim(&mut written);
        let written = Arc::new(written);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let stale = match entries.get(&key(&**before)) {
            // Several writes in a row: the store is still at the first's base.
            Some(e) => e.stale.clone(),
            None => before.resource_version(),
        };
        entries.insert(
            key(&**before),
            Entry {
                stale,
                newest: written.clone(),
            },
        );
        written
    }

    /// The store's objects with our newer writes laid over them.
    pub fn view(&self, store: Vec<Arc<K>>) -> Vec<Arc<K>> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let mut live = std::collections::HashSet::new();
        let out = store
            .into_iter()
            .map(|o| {
                let k = key(&*o);
                let replaced = match entries.get(&k) {
                    Some(e) if e.stale == o.resource_version() || older(&*o, &*e.newest) => {
                        Some(e.newest.clone())
                    }
                    Some(_) => {
                        entries.remove(&k);
                        None
                    }
                    None => None,
                };
                live.insert(k);
                replaced.unwrap_or(o)
            })
            .collect();
        // Objects deleted meanwhile take their entries with them.
        entries.retain(|k, _| live.contains(k));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PersistentVolume;

    fn pv(name: &str, rv: &str, phase: &str) -> Arc<PersistentVolume> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "resourceVersion": rv},
                "status": {"phase": phase},
            }))
            .expect("pv"),
        )
    }

    fn phase(p: &PersistentVolume) -> &str {
        p.status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("")
    }

    #[test]
    fn our_write_shows_until_the_store_catches_up() {
        let o = Overlay::default();
        let before = pv("a", "1", "Available");
        let mid = o.record(&before, (*pv("a", "2", "Available")).clone());
        o.record(&mid, (*pv("a", "3", "Bound")).clone());
        let seen = o.view(vec![before.clone(), pv("b", "7", "Available")]);
        assert_eq!(phase(&seen[0]), "Bound", "store still at 1: overlay wins");
        assert_eq!(seen[1].resource_version().as_deref(), Some("7"));
        let caught_up = o.view(vec![pv("a", "3", "Bound")]);
        assert_eq!(caught_up[0].resource_version().as_deref(), Some("3"));
        // The entry is gone: a store that moved on is authoritative.
        let later = o.view(vec![pv("a", "9", "Released")]);
        assert_eq!(phase(&later[0]), "Released");
    }

    #[test]
    fn a_version_between_the_plan_and_our_write_does_not_hide_our_write() {
        let o = Overlay::default();
        let before = pv("a", "10", "Available");
        o.record(&before, (*pv("a", "12", "Bound")).clone());
        // Someone else's write (11) arrives before ours (12).
        let seen = o.view(vec![pv("a", "11", "Available")]);
        assert_eq!(phase(&seen[0]), "Bound");
        let seen = o.view(vec![pv("a", "12", "Bound")]);
        assert_eq!(seen[0].resource_version().as_deref(), Some("12"));
        let later = o.view(vec![pv("a", "11", "Available")]);
        assert_eq!(
            phase(&later[0]),
            "Available",
            "the entry went once caught up"
        );
    }

    #[test]
    fn deleted_objects_drop_their_entries() {
        let o = Overlay::default();
        let before = pv("a", "1", "Available");
        o.record(&before, (*pv("a", "2", "Bound")).clone());
        assert!(o.view(vec![]).is_empty());
        let back = o.view(vec![before]);
        assert_eq!(phase(&back[0]), "Available");
    }
}
