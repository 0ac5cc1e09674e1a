//! The binder's snapshot round after round, converting only what changed.
//!
//! Between two planner rounds a live cluster changes a little (a claim
//! created, a volume bound), yet every round plans from all of it. Once a
//! round is done its snapshot is taken apart again ([`Reconverter::recycle`])
//! and each object kept under its uid with the resourceVersion it was
//! converted at; the next round converts only the objects whose uid or
//! resourceVersion it has not kept and moves the others over. The API server
//! gives every change of an object a new resourceVersion, so an object kept
//! at the same one is the same object; objects without both are converted
//! every round.
//!
//! A conversion depends on the object and on its place in creation order
//! (admission order, the document an origin names), so a moved object is
//! given its new place (`Object::restamp`). The snapshot is the one
//! [`to_snapshot_typed`](super::to_snapshot_typed) makes of the same
//! objects; a property test holds the two equal over random rounds.

use rustc_hash::FxHashMap;

use super::InputError;
use super::convert::{Builder, Converted, Object, Typed, convert_typed};
use super::load::At;
use crate::binding::Snapshot;

/// A live object the reconverter can tell apart from its other versions.
pub trait Versioned {
    /// uid and resourceVersion, when the object has both.
    fn version(&self) -> Option<(&str, &str)>;
    /// A copy for the converter (the cache keeps its own).
    fn to_typed(&self) -> Typed;
}

/// Converted objects kept from one round to the next.
#[derive(Default)]
pub struct Reconverter {
    /// By uid: the resourceVersion converted and the result.
    kept: FxHashMap<String, (String, Object)>,
    /// The last snapshot's objects in input order, as kind and version:
    /// how [`Reconverter::recycle`] finds each object's uid again.
    order: Vec<(Kind, Option<(String, String)>)>,
}

/// How much of a round's snapshot was converted anew.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reuse {
    pub converted: usize,
    pub reused: usize,
}

impl Reconverter {
    /// The snapshot of `objects` (in creation order, numbered from 1 as
    /// `source: document N`), reusing what the last recycled snapshot held.
    /// An object the converter refuses (the API server accepted it, but
    /// berth cannot read it, say a quantity beyond its range) is left out
    /// and its error returned: the snapshot is the one of the other objects,
    /// numbered as if the refused ones were not there, so one bad object
    /// neither stops binding nor costs the others their reuse.
    pub fn snapshot<O: Versioned>(
        &mut self,
        source: &str,
        objects: &[O],
    ) -> (Snapshot, Reuse, Vec<InputError>) {
        let mut kept = std::mem::take(&mut self.kept);
        self.order.clear();
        self.order.reserve(objects.len());
        let mut b = Builder::default();
        let mut reuse = Reuse::default();
        let mut refused = Vec::new();
        let mut seq = 0;
        for o in objects {
            let at = At {
                source,
                index: seq + 1,
                item: None,
            };
            let version = o.version();
            // The kept uid and version strings go on into `order`: only new
            // objects allocate them.
            let found = version.and_then(|(uid, rv)| match kept.remove_entry(uid) {
                Some((uid, (was, object))) if was == rv => Some((uid, was, object)),
                _ => None,
            });
            let (object, version) = match found {
                Some((uid, rv, mut object)) => {
                    object.restamp(at, seq);
                    reuse.reused += 1;
                    (object, Some((uid, rv)))
                }
                None => {
                    let typed = o.to_typed();
                    match convert_typed(seq, at, typed.kind(), typed) {
                        Ok(object) => {
                            reuse.converted += 1;
                            let version =
                                version.map(|(uid, rv)| (uid.to_string(), rv.to_string()));
                            (object, version)
                        }
                        Err(e) => {
                            refused.push(e);
                            continue;
                        }
                    }
                }
            };
            seq += 1;
            self.order.push((Kind::of(&object), version));
            b.insert(
                at,
                Converted {
                    warnings: Vec::new(),
                    object: Some(object),
                },
            );
        }
        (b.finish(), reuse, refused)
    }

    /// Keeps the objects of the snapshot [`Reconverter::snapshot`] last
    /// returned, once the round no longer reads it.
    pub fn recycle(&mut self, snap: Snapshot) {
        let order = std::mem::take(&mut self.order);
        self.kept.clear();
        // Two objects of one identity leave one in the snapshot (and a
        // warning), so the objects no longer line up with `order`: start
        // afresh. A live cluster has no such pairs.
        if !snap.warnings.is_empty() {
            return;
        }
        let mut parts = Parts::new(snap);
        self.kept.reserve(order.len());
        for (kind, version) in order {
            let Some(object) = parts.next(kind) else {
                self.kept.clear();
                return;
            };
            if let Some((uid, rv)) = version {
                self.kept.insert(uid, (rv, object));
            }
        }
        if !parts.is_empty() {
            self.kept.clear();
        }
    }

    /// How many converted objects are kept for the next round.
    pub fn kept(&self) -> usize {
        self.kept.len()
    }
}

/// Which list of the snapshot an object goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Class,
    Volume,
    Claim,
    Node,
    CsiNode,
    CsiDriver,
    Capacity,
    Pod,
    StatefulSet,
    Namespace,
    LimitRange,
    Quota,
    Snapshot,
    SnapshotContent,
}

impl Kind {
    fn of(o: &Object) -> Kind {
        match o {
            Object::Class(_) => Kind::Class,
            Object::Volume(_) => Kind::Volume,
            Object::Claim(_) => Kind::Claim,
            Object::Node(_) => Kind::Node,
            Object::CsiNode(_) => Kind::CsiNode,
            Object::CsiDriver(_) => Kind::CsiDriver,
            Object::Capacity(_) => Kind::Capacity,
            Object::Pod(_) => Kind::Pod,
            Object::StatefulSet(_) => Kind::StatefulSet,
            Object::Namespace(_) => Kind::Namespace,
            Object::LimitRange(_) => Kind::LimitRange,
            Object::Quota(_) => Kind::Quota,
            Object::Snapshot(_) => Kind::Snapshot,
            Object::SnapshotContent(_) => Kind::SnapshotContent,
        }
    }
}

/// A snapshot taken apart: each list in the order its objects were added.
struct Parts {
    classes: std::vec::IntoIter<crate::binding::snapshot::StorageClass>,
    volumes: std::vec::IntoIter<crate::binding::snapshot::Volume>,
    claims: std::vec::IntoIter<crate::binding::snapshot::Claim>,
    nodes: std::vec::IntoIter<crate::binding::snapshot::Node>,
    csi_nodes: std::vec::IntoIter<crate::binding::snapshot::CsiNode>,
    csi_drivers: std::vec::IntoIter<crate::binding::snapshot::CsiDriver>,
    capacities: std::vec::IntoIter<crate::binding::snapshot::StorageCapacity>,
    pods: std::vec::IntoIter<crate::binding::snapshot::Pod>,
    stateful_sets: std::vec::IntoIter<crate::binding::snapshot::StatefulSet>,
    namespaces: std::vec::IntoIter<crate::binding::snapshot::Namespace>,
    limit_ranges: std::vec::IntoIter<crate::binding::snapshot::LimitRange>,
    quotas: std::vec::IntoIter<crate::binding::snapshot::ResourceQuota>,
    snapshots: std::vec::IntoIter<crate::binding::snapshot::VolumeSnapshot>,
    snapshot_contents: std::vec::IntoIter<crate::binding::snapshot::SnapshotContent>,
}

impl Parts {
    fn new(s: Snapshot) -> Parts {
        Parts {
            classes: s.classes.into_iter(),
            volumes: s.volumes.into_iter(),
            claims: s.claims.into_iter(),
            nodes: s.nodes.into_iter(),
            csi_nodes: s.csi_nodes.into_iter(),
            csi_drivers: s.csi_drivers.into_iter(),
            capacities: s.capacities.into_iter(),
            pods: s.pods.into_iter(),
            stateful_sets: s.stateful_sets.into_iter(),
            namespaces: s.namespaces.into_iter(),
            limit_ranges: s.limit_ranges.into_iter(),
            quotas: s.quotas.into_iter(),
            snapshots: s.snapshots.into_iter(),
            snapshot_contents: s.snapshot_contents.into_iter(),
        }
    }

    fn next(&mut self, kind: Kind) -> Option<Object> {
        Some(match kind {
            Kind::Class => Object::Class(self.classes.next()?),
            Kind::Volume => Object::Volume(self.volumes.next()?),
            Kind::Claim => Object::Claim(self.claims.next()?),
            Kind::Node => Object::Node(self.nodes.next()?),
            Kind::CsiNode => Object::CsiNode(self.csi_nodes.next()?),
            Kind::CsiDriver => Object::CsiDriver(self.csi_drivers.next()?),
            Kind::Capacity => Object::Capacity(self.capacities.next()?),
            Kind::Pod => Object::Pod(self.pods.next()?),
            Kind::StatefulSet => Object::StatefulSet(self.stateful_sets.next()?),
            Kind::Namespace => Object::Namespace(self.namespaces.next()?),
            Kind::LimitRange => Object::LimitRange(self.limit_ranges.next()?),
            Kind::Quota => Object::Quota(self.quotas.next()?),
            Kind::Snapshot => Object::Snapshot(self.snapshots.next()?),
            Kind::SnapshotContent => Object::SnapshotContent(self.snapshot_contents.next()?),
        })
    }

    fn is_empty(&self) -> bool {
        self.classes.len()
            + self.volumes.len()
            + self.claims.len()
            + self.nodes.len()
            + self.csi_nodes.len()
            + self.csi_drivers.len()
            + self.capacities.len()
            + self.pods.len()
            + self.stateful_sets.len()
            + self.namespaces.len()
            + self.limit_ranges.len()
            + self.quotas.len()
            + self.snapshots.len()
            + self.snapshot_contents.len()
            == 0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::manifest::to_snapshot_typed;

    /// A test object: its uid and resourceVersion are its metadata's, as
    /// for live objects.
    #[derive(Clone)]
    struct Live(Typed);

    impl Versioned for Live {
        fn version(&self) -> Option<(&str, &str)> {
            let m = self.0.metadata();
            Some((m.uid.as_deref()?, m.resource_version.as_deref()?))
        }
        fn to_typed(&self) -> Typed {
            self.0.clone()
        }
    }

    /// Object `shape` (a kind, by number) named after `n`, with values
    /// from `p`; `uid` and `rv` None leave them out.
    fn object(shape: u8, n: u8, p: u8, uid: Option<u32>, rv: u32) -> Live {
        let mut meta = json!({"name": format!("o{n}")});
        if let Some(uid) = uid {
            meta["uid"] = json!(format!("uid-{uid}"));
            meta["resourceVersion"] = json!(rv.to_string());
        }
        let ns = format!("ns{}", p % 2);
        let typed = match shape % 8 {
            0 => Typed::StorageClass(
                serde_json::from_value(json!({"metadata": meta,
                    "provisioner": if p % 2 == 0 { "csi.berth.dev" } else { "kubernetes.io/no-provisioner" },
                    "volumeBindingMode": if p % 3 == 0 { "WaitForFirstConsumer" } else { "Immediate" }}))
                .expect("class"),
            ),
            1 => Typed::PersistentVolume(
                serde_json::from_value(json!({"metadata": meta, "spec": {
                    "capacity": {"storage": format!("{}Gi", p % 7 + 1)},
                    "accessModes": ["ReadWriteOnce"], "storageClassName": format!("o{}", p % 3),
                    "hostPath": {"path": "/tmp/v"}}}))
                .expect("volume"),
            ),
            2 => {
                meta["namespace"] = json!(ns);
                Typed::PersistentVolumeClaim(
                    serde_json::from_value(json!({"metadata": meta, "spec": {
                        "storageClassName": format!("o{}", p % 3), "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": format!("{}Gi", p % 5 + 1)}}}}))
                    .expect("claim"),
                )
            }
            3 => Typed::Namespace(serde_json::from_value(json!({"metadata": meta})).expect("ns")),
            4 => {
                meta["namespace"] = json!(ns);
                Typed::LimitRange(
                    serde_json::from_value(json!({"metadata": meta, "spec": {"limits": [
                        {"type": "PersistentVolumeClaim", "min": {"storage": format!("{}Mi", p)}}]}}))
                    .expect("limit range"),
                )
            }
            5 => {
                meta["namespace"] = json!(ns);
                Typed::ResourceQuota(
                    serde_json::from_value(json!({"metadata": meta, "spec": {"hard": {
                        "requests.storage": format!("{}Gi", p % 9 + 1)}}}))
                    .expect("quota"),
                )
            }
            6 => {
                meta["namespace"] = json!(ns);
                Typed::Pod(
                    serde_json::from_value(json!({"metadata": meta, "spec": {
                        "containers": [{"name": "c"}],
                        "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": format!("o{}", p % 6)}}]}}))
                    .expect("pod"),
                )
            }
            _ => Typed::Node(
                serde_json::from_value(json!({"metadata": meta,
                    "status": {"allocatable": {"pods": (p % 4 + 1).to_string()}}}))
                .expect("node"),
            ),
        };
        Live(typed)
    }

    /// One change between rounds.
    #[derive(Debug, Clone)]
    enum Change {
        /// A new object at a place in the list (creation order).
        Add {
            at: usize,
            shape: u8,
            n: u8,
            p: u8,
            versioned: bool,
        },
        /// An object written: new values, next resourceVersion.
        Write {
            at: usize,
            p: u8,
        },
        Delete {
            at: usize,
        },
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            (
                any::<usize>(),
                0u8..8,
                0u8..6,
                any::<u8>(),
                prop::bool::weighted(0.9)
            )
                .prop_map(|(at, shape, n, p, versioned)| Change::Add {
                    at,
                    shape,
                    n,
                    p,
                    versioned
                }),
            (any::<usize>(), any::<u8>()).prop_map(|(at, p)| Change::Write { at, p }),
            any::<usize>().prop_map(|at| Change::Delete { at }),
        ]
    }

    /// What each object was built from, to rebuild it when written.
    #[derive(Clone)]
    struct Made {
        shape: u8,
        n: u8,
        uid: Option<u32>,
        rv: u32,
    }

    fn debug(s: &Snapshot) -> String {
        format!("{s:?}")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Round after round, the reused snapshot is the one converted
        /// from scratch, and exactly the objects unchanged since the last
        /// round (with a uid and resourceVersion) are reused.
        #[test]
        fn a_reconverted_snapshot_is_the_snapshot_converted_afresh(
            rounds in prop::collection::vec(prop::collection::vec(change(), 0..6), 1..8),
        ) {
            let mut made: Vec<Made> = Vec::new();
            let mut live: Vec<Live> = Vec::new();
            let mut next_uid = 0u32;
            let mut r = Reconverter::default();
            let mut previous: std::collections::HashSet<(String, String)> = Default::default();
            for changes in rounds {
                for c in changes {
                    match c {
                        Change::Add { at, shape, n, p, versioned } => {
                            let at = at % (live.len() + 1);
                            next_uid += 1;
                            let uid = versioned.then_some(next_uid);
                            made.insert(at, Made { shape, n, uid, rv: 1 });
                            live.insert(at, object(shape, n, p, uid, 1));
                        }
                        Change::Write { at, p } if !live.is_empty() => {
                            let at = at % live.len();
                            let m = &mut made[at];
                            m.rv += 1;
                            live[at] = object(m.shape, m.n, p, m.uid, m.rv);
                        }
                        Change::Delete { at } if !live.is_empty() => {
                            let at = at % live.len();
                            made.remove(at);
                            live.remove(at);
                        }
                        _ => {}
                    }
                }
                let afresh = to_snapshot_typed("cluster", live.iter().map(|o| o.0.clone()))
                    .expect("test objects convert");
                let (snap, reuse, refused) = r.snapshot("cluster", &live);
                prop_assert!(refused.is_empty());
                prop_assert_eq!(debug(&snap), debug(&afresh));
                let versions: Vec<(String, String)> = live
                    .iter()
                    .filter_map(|o| o.version().map(|(u, v)| (u.to_string(), v.to_string())))
                    .collect();
                // A snapshot with duplicates was not kept (see recycle).
                let expected = versions.iter().filter(|v| previous.contains(*v)).count();
                prop_assert_eq!(reuse.reused, expected);
                prop_assert_eq!(reuse.reused + reuse.converted, live.len());
                previous = if snap.warnings.is_empty() {
                    versions.into_iter().collect()
                } else {
                    Default::default()
                };
                r.recycle(snap);
            }
        }
    }

    #[test]
    fn an_unreadable_object_is_left_out_and_the_rest_reused() {
        let mut r = Reconverter::default();
        let objects: Vec<Live> = (0..4).map(|i| object(1, i, i, Some(i.into()), 1)).collect();
        let (snap, reuse, refused) = r.snapshot("cluster", &objects);
        assert_eq!(
            reuse,
            Reuse {
                converted: 4,
                reused: 0
            }
        );
        assert!(refused.is_empty());
        r.recycle(snap);
        assert_eq!(r.kept(), 4);

        // Volume o2 rewritten with a capacity berth cannot hold.
        let mut bad = objects.clone();
        let Typed::PersistentVolume(pv) = &mut bad[2].0 else {
            unreachable!("shape 1 is a volume")
        };
        pv.metadata.resource_version = Some("2".into());
        if let Some(c) = pv.spec.as_mut().and_then(|s| s.capacity.as_mut()) {
            c.insert(
                "storage".into(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                    "100000000000000000000000Ei".into(),
                ),
            );
        }
        let (snap, reuse, refused) = r.snapshot("cluster", &bad);
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].place, "cluster: document 3");
        assert_eq!(refused[0].name, "o2");
        assert_eq!(
            reuse,
            Reuse {
                converted: 0,
                reused: 3
            }
        );
        let names: Vec<&str> = snap.volumes.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["o0", "o1", "o3"]);
        assert_eq!(snap.volumes[2].origin.document, 3, "o3 moved up a place");
        // The snapshot of the readable objects, as converted afresh.
        let readable: Vec<Typed> = [0, 1, 3].iter().map(|&i| bad[i].0.clone()).collect();
        let afresh = to_snapshot_typed("cluster", readable).expect("readable objects");
        assert_eq!(debug(&snap), debug(&afresh));

        // Next round: the three are reused again, o2 is refused again.
        r.recycle(snap);
        let (_, reuse, refused) = r.snapshot("cluster", &bad);
        assert_eq!(
            reuse,
            Reuse {
                converted: 0,
                reused: 3
            }
        );
        assert_eq!(refused.len(), 1);
    }
}
