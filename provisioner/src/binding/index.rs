//! The volume index: free volumes grouped the way upstream's PV controller
//! searches them, so a claim finds its volume without scanning every PV.
//!
//! Upstream keeps PVs in an index keyed by their access-mode set and, for a
//! claim, walks the sets that contain every requested mode from fewest modes
//! to most, returning the smallest fitting volume of the first set that has
//! one. Within a (class, volumeMode, access-mode set) bucket berth keeps the
//! volumes sorted by (capacity, name), so "smallest fitting" is a binary search
//! and a tie on capacity goes to the smallest name — upstream leaves that tie
//! to map iteration order; berth makes it deterministic. Sets with the same
//! number of modes (upstream: unspecified order) are tried in bitset order.
//!
//! Filters that reject most of a bucket (a label selector, a node for which
//! only a few volumes have affinity) would make that search linear, and the
//! whole plan quadratic. So a bucket also has *views*: the same sorted list
//! restricted to one `key=value` label or to one node, built the first time
//! a claim needs it and shared by every later claim.
//!
//! Taken volumes are skipped with a "next free" array per view, with path
//! compression. Taking a volume only flags it; each view learns of it the
//! first time a search steps on it, so every entry is skipped at most once
//! per view and binding n claims costs O(n log n) overall.

use rustc_hash::FxHashMap;

use super::snapshot::Volume;
use crate::model::{AccessModes, LabelRequirement, LabelSelector, Labels, VolumeMode};
use crate::quantity::Quantity;

/// Volume indexes sorted by (capacity, name), with their free-list.
#[derive(Debug)]
struct View {
    entries: Vec<u32>,
    capacities: Vec<i128>,
    /// `next[i]` points at or before the first entry at or after `i` not known to be taken.
    next: Vec<u32>,
}

impl View {
    fn new(entries: Vec<u32>, volumes: &[Volume]) -> Self {
        View {
            capacities: entries
                .iter()
                .map(|&e| volumes[e as usize].capacity.map_or(0, |q| q.as_nanos()))
                .collect(),
            next: (0..entries.len() as u32).collect(),
            entries,
        }
    }

    fn find_free(&mut self, mut i: usize) -> usize {
        let len = self.entries.len();
        let start = i;
        while i < len && self.next[i] as usize != i {
            i = self.next[i] as usize;
        }
        // Path compression: everything on the walk now points at the answer.
        let mut j = start;
        while j < len && self.next[j] as usize != j {
            let n = self.next[j] as usize;
            self.next[j] = i as u32;
            j = n;
        }
        i
    }

    /// The first entry with capacity ≥ `request` that is free and accepted.
    fn smallest(
        &mut self,
        volumes: &[Volume],
        taken: &[bool],
        request: Quantity,
        accept: impl Fn(usize, &Volume) -> bool,
    ) -> Option<usize> {
        let lower = self.capacities.partition_point(|&c| c < request.as_nanos());
        let mut i = self.find_free(lower);
        while i < self.entries.len() {
            let v = self.entries[i] as usize;
            if taken[v] {
                self.next[i] = (i + 1) as u32;
            } else if accept(v, &volumes[v]) {
                return Some(v);
            }
            i = self.find_free(i + 1);
        }
        None
    }

    /// The largest capacity among free accepted entries. Walks down from
    /// the top without touching the free-list, which only skips forwards.
    fn largest(
        &self,
        volumes: &[Volume],
        taken: &[bool],
        accept: impl Fn(&Volume) -> bool,
    ) -> Option<i128> {
        self.entries
            .iter()
            .zip(&self.capacities)
            .rev()
            .find(|&(&e, _)| !taken[e as usize] && accept(&volumes[e as usize]))
            .map(|(_, &c)| c)
    }
}

/// Free volumes of one class, volume mode and access-mode set.
#[derive(Debug)]
struct Bucket {
    modes: AccessModes,
    all: View,
    /// Built on the first node search of this bucket.
    affinity: Option<AffinityIndex>,
    /// label key → label value → the volumes carrying that label.
    label_views: FxHashMap<String, FxHashMap<String, View>>,
    /// node name → the volumes whose affinity admits that node.
    node_views: FxHashMap<String, View>,
}

impl Bucket {
    /// The view of one node: the volumes whose affinity admits it, built on
    /// first use.
    fn node_view(&mut self, volumes: &[Volume], node: &str, labels: &Labels) -> Option<&mut View> {
        if !self.node_views.contains_key(node) {
            let all = &self.all;
            let entries = self
                .affinity
                .get_or_insert_with(|| AffinityIndex::build(all, volumes))
                .positions(all, volumes, node, labels)
                .into_iter()
                .map(|p| all.entries[p as usize])
                .collect();
            self.node_views
                .insert(node.to_string(), View::new(entries, volumes));
        }
        self.node_views.get_mut(node)
    }
}

/// Positions (in `Bucket::all`) of volumes by the node label their affinity
/// needs, so a node's view is assembled from a few lists, not a full scan.
#[derive(Debug, Default)]
struct AffinityIndex {
    /// `key=value` → positions of volumes whose affinity is `key In (…value…)`.
    by_label: FxHashMap<(String, String), Vec<u32>>,
    keys: Vec<String>,
    /// Volumes without affinity (every node) or with a more complex one
    /// (tested one by one).
    rest: Vec<u32>,
}

impl AffinityIndex {
    fn build(all: &View, volumes: &[Volume]) -> Self {
        let mut index = AffinityIndex::default();
        for (pos, &e) in all.entries.iter().enumerate() {
            match volumes[e as usize]
                .node_affinity
                .as_ref()
                .and_then(|a| a.as_single_in())
            {
                Some((k, vs)) => {
                    if !index.keys.iter().any(|x| x == k) {
                        index.keys.push(k.to_string());
                    }
                    for v in vs {
                        index
                            .by_label
                            .entry((k.to_string(), v.clone()))
                            .or_default()
                            .push(pos as u32);
                    }
                }
                None => index.rest.push(pos as u32),
            }
        }
        index
    }

    /// Positions of the volumes whose affinity admits the node, in order.
    fn positions(&self, all: &View, volumes: &[Volume], node: &str, labels: &Labels) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .rest
            .iter()
            .copied()
            .filter(|&p| {
                volumes[all.entries[p as usize] as usize]
                    .node_affinity
                    .as_ref()
                    .is_none_or(|a| a.matches(node, labels))
            })
            .collect();
        for k in &self.keys {
            if let Some(list) = labels
                .get(k)
                .and_then(|v| self.by_label.get(&(k.clone(), v.clone())))
            {
                out.extend(list);
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// Extra conditions a candidate must meet besides class/mode/size.
pub struct Filter<'a> {
    pub selector: Option<&'a LabelSelector>,
    /// The claim's VolumeAttributesClass: a volume's must be the same
    /// (both unset counts as the same).
    pub attributes_class: &'a str,
    /// The scheduler path: only volumes whose node affinity admits this
    /// node (the bucket's view of the node holds exactly those).
    pub node: Option<(&'a str, &'a Labels)>,
    /// Volumes held by a trial (one node's check during scheduling): not
    /// candidates, yet not taken either, so no view learns to skip them.
    pub exclude: &'a [usize],
}

impl Filter<'_> {
    fn accepts(&self, i: usize, v: &Volume) -> bool {
        self.selector.is_none_or(|sel| sel.matches(&v.labels))
            && v.attributes_class == self.attributes_class
            && !self.exclude.contains(&i)
    }

    /// One single-valued `In` requirement of the selector, whose label view
    /// narrows the search.
    fn label_in(&self) -> Option<(&str, &str)> {
        self.selector?.requirements.iter().find_map(|r| match r {
            LabelRequirement::In(k, vs) if vs.len() == 1 => Some((k.as_str(), vs[0].as_str())),
            _ => None,
        })
    }
}

#[derive(Debug, Default)]
pub struct VolumeIndex {
    buckets: Vec<Bucket>,
    /// class → per volume mode (Filesystem, Block) the bucket ids sorted by
    /// (mode count, mode bits).
    groups: FxHashMap<String, [Vec<u32>; 2]>,
    taken: Vec<bool>,
}

fn mode_slot(m: VolumeMode) -> usize {
    match m {
        VolumeMode::Filesystem => 0,
        VolumeMode::Block => 1,
    }
}

fn set_order(m: AccessModes) -> (u32, u8) {
    (m.len(), m.bits())
}

impl VolumeIndex {
    /// Indexes the volumes for which `free(i)` holds (Available, unclaimed, not
    /// being deleted, with a capacity).
    pub fn build(volumes: &[Volume], free: impl Fn(usize) -> bool) -> Self {
        let mut keyed: FxHashMap<(&str, VolumeMode, AccessModes), Vec<u32>> = FxHashMap::default();
        for (i, v) in volumes.iter().enumerate() {
            if !free(i) || v.capacity.is_none() {
                continue;
            }
            keyed
                .entry((v.class.as_str(), v.volume_mode, v.access_modes))
                .or_default()
                .push(i as u32);
        }
        let mut index = VolumeIndex {
            taken: vec![false; volumes.len()],
            ..Default::default()
        };
        let mut keys: Vec<_> = keyed.into_iter().collect();
        // Deterministic bucket numbering regardless of hash order.
        keys.sort_by(|a, b| {
            (&a.0.0, a.0.1 as u8, set_order(a.0.2)).cmp(&(&b.0.0, b.0.1 as u8, set_order(b.0.2)))
        });
        for ((class, mode, modes), entries) in keys {
            // By capacity, then name, sorted on the keys laid out next to
            // each other; names are unique, so unstable is deterministic.
            let mut sorted: Vec<_> = entries
                .into_iter()
                .map(|i| {
                    let v = &volumes[i as usize];
                    (v.capacity, v.name.as_str(), i)
                })
                .collect();
            sorted.sort_unstable();
            let entries: Vec<u32> = sorted.into_iter().map(|k| k.2).collect();
            let bucket_id = index.buckets.len() as u32;
            index.buckets.push(Bucket {
                modes,
                all: View::new(entries, volumes),
                affinity: None,
                label_views: FxHashMap::default(),
                node_views: FxHashMap::default(),
            });
            index.groups.entry(class.to_string()).or_default()[mode_slot(mode)].push(bucket_id);
        }
        for pair in index.groups.values_mut() {
            let buckets = &index.buckets;
            for ids in pair {
                ids.sort_by_key(|&id| set_order(buckets[id as usize].modes));
            }
        }
        index
    }

    /// The access-mode sets of a (class, mode) group that can serve `wanted`,
    /// in upstream's search order.
    pub fn candidate_sets(
        &self,
        class: &str,
        mode: VolumeMode,
        wanted: AccessModes,
    ) -> Vec<AccessModes> {
        self.group(class, mode)
            .iter()
            .map(|&id| self.buckets[id as usize].modes)
            .filter(|m| m.contains_all(wanted))
            .collect()
    }

    /// The buckets of a (class, mode) group whose access modes contain
    /// `wanted`, as owned ids so the caller may search them mutably.
    fn buckets_serving(&self, class: &str, mode: VolumeMode, wanted: AccessModes) -> Vec<u32> {
        self.group(class, mode)
            .iter()
            .copied()
            .filter(|&id| self.buckets[id as usize].modes.contains_all(wanted))
            .collect()
    }

    fn group(&self, class: &str, mode: VolumeMode) -> &[u32] {
        self.groups
            .get(class)
            .map_or(&[], |pair| pair[mode_slot(mode)].as_slice())
    }

    /// The smallest free volume of exactly the access-mode set `set` with at
    /// least `request` that passes `filter`.
    pub fn smallest_in_set(
        &mut self,
        volumes: &[Volume],
        class: &str,
        mode: VolumeMode,
        set: AccessModes,
        request: Quantity,
        filter: &Filter<'_>,
    ) -> Option<usize> {
        let id = self
            .group(class, mode)
            .iter()
            .copied()
            .find(|&id| self.buckets[id as usize].modes == set)?;
        self.smallest_in_bucket(volumes, id, request, filter)
    }

    fn smallest_in_bucket(
        &mut self,
        volumes: &[Volume],
        id: u32,
        request: Quantity,
        filter: &Filter<'_>,
    ) -> Option<usize> {
        let taken = &self.taken;
        let bucket = &mut self.buckets[id as usize];
        let view = if let Some((node, labels)) = filter.node {
            bucket.node_view(volumes, node, labels)
        } else if let Some((k, val)) = filter.label_in() {
            let by_value = bucket.label_views.entry(k.to_string()).or_default();
            if !by_value.contains_key(val) {
                let entries = bucket
                    .all
                    .entries
                    .iter()
                    .copied()
                    .filter(|&e| volumes[e as usize].labels.get(k).map(String::as_str) == Some(val))
                    .collect();
                by_value.insert(val.to_string(), View::new(entries, volumes));
            }
            by_value.get_mut(val)
        } else {
            Some(&mut bucket.all)
        };
        let view = view?;
        view.smallest(volumes, taken, request, |i, v| filter.accepts(i, v))
    }

    /// The largest capacity (as `Quantity::as_nanos`) of a free volume of
    /// the class whose modes contain `wanted`, with the VolumeAttributesClass
    /// `attributes_class` and node affinity admitting the node: a claim of
    /// that shape without a selector finds a volume there exactly when it
    /// asks for no more than this.
    #[allow(clippy::too_many_arguments)]
    pub fn largest_on_node(
        &mut self,
        volumes: &[Volume],
        class: &str,
        mode: VolumeMode,
        wanted: AccessModes,
        attributes_class: &str,
        node: &str,
        labels: &Labels,
    ) -> Option<i128> {
        let ids = self.buckets_serving(class, mode, wanted);
        let mut best: Option<i128> = None;
        for id in ids {
            let found = self.buckets[id as usize]
                .node_view(volumes, node, labels)
                .and_then(|view| {
                    view.largest(volumes, &self.taken, |v| {
                        v.attributes_class == attributes_class
                    })
                });
            best = best.max(found);
        }
        best
    }

    /// The scheduler's search: the smallest free volume of the class whose
    /// modes contain `wanted`, across all access-mode sets.
    pub fn smallest_any_set(
        &mut self,
        volumes: &[Volume],
        class: &str,
        mode: VolumeMode,
        wanted: AccessModes,
        request: Quantity,
        filter: &Filter<'_>,
    ) -> Option<usize> {
        let ids = self.buckets_serving(class, mode, wanted);
        let mut best: Option<usize> = None;
        for id in ids {
            if let Some(v) = self.smallest_in_bucket(volumes, id, request, filter) {
                let better = best.is_none_or(|b| {
                    (volumes[v].capacity, &volumes[v].name)
                        < (volumes[b].capacity, &volumes[b].name)
                });
                if better {
                    best = Some(v);
                }
            }
        }
        best
    }

    /// Marks a volume as bound so later searches skip it.
    pub fn take(&mut self, volume: usize) {
        if let Some(t) = self.taken.get_mut(volume) {
            *t = true;
        }
    }
}
