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
//! Volumes taken during planning are skipped with a "next free" array with
//! path compression, so binding n claims costs O(n log n) overall.

use std::collections::HashMap;

use super::snapshot::Volume;
use crate::model::{AccessModes, LabelSelector, Labels, VolumeMode};
use crate::quantity::Quantity;

/// Free volumes of one class, volume mode and access-mode set.
#[derive(Debug)]
struct Bucket {
    modes: AccessModes,
    /// Volume indexes sorted by (capacity, name).
    entries: Vec<u32>,
    capacities: Vec<i128>,
    /// `next[i]` points at or before the first free entry at or after `i`.
    next: Vec<u32>,
}

impl Bucket {
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

    fn take(&mut self, pos: usize) {
        self.next[pos] = (pos + 1) as u32;
    }
}

/// Where a volume sits in the index.
#[derive(Debug, Clone, Copy)]
struct Slot {
    bucket: u32,
    pos: u32,
}

/// Extra conditions a candidate must meet besides class/mode/size.
pub struct Filter<'a> {
    pub selector: Option<&'a LabelSelector>,
    /// The scheduler path checks PV node affinity against this node.
    pub node: Option<(&'a str, &'a Labels)>,
}

impl Filter<'_> {
    fn accepts(&self, v: &Volume) -> bool {
        if let Some(sel) = self.selector {
            if !sel.matches(&v.labels) {
                return false;
            }
        }
        if let Some((name, labels)) = self.node {
            if let Some(aff) = &v.node_affinity {
                if !aff.matches(name, labels) {
                    return false;
                }
            }
        }
        true
    }
}

#[derive(Debug, Default)]
pub struct VolumeIndex {
    buckets: Vec<Bucket>,
    /// (class, volume mode) → bucket ids sorted by (mode count, mode bits).
    groups: HashMap<(String, VolumeMode), Vec<u32>>,
    slots: Vec<Option<Slot>>,
}

fn set_order(m: AccessModes) -> (u32, u8) {
    (m.len(), m.bits())
}

impl VolumeIndex {
    /// Indexes the volumes for which `free(i)` holds (Available, unclaimed, not
    /// being deleted, with a capacity).
    pub fn build(volumes: &[Volume], free: impl Fn(usize) -> bool) -> Self {
        let mut keyed: HashMap<(String, VolumeMode, AccessModes), Vec<u32>> = HashMap::new();
        for (i, v) in volumes.iter().enumerate() {
            if !free(i) || v.capacity.is_none() {
                continue;
            }
            keyed
                .entry((v.class.clone(), v.volume_mode, v.access_modes))
                .or_default()
                .push(i as u32);
        }
        let mut index = VolumeIndex {
            slots: vec![None; volumes.len()],
            ..Default::default()
        };
        let mut keys: Vec<_> = keyed.into_iter().collect();
        // Deterministic bucket numbering regardless of hash order.
        keys.sort_by(|a, b| {
            (&a.0.0, a.0.1 as u8, set_order(a.0.2)).cmp(&(&b.0.0, b.0.1 as u8, set_order(b.0.2)))
        });
        for ((class, mode, modes), mut entries) in keys {
            entries.sort_by(|&a, &b| {
                let (va, vb) = (&volumes[a as usize], &volumes[b as usize]);
                va.capacity
                    .cmp(&vb.capacity)
                    .then_with(|| va.name.cmp(&vb.name))
            });
            let bucket_id = index.buckets.len() as u32;
            for (pos, &e) in entries.iter().enumerate() {
                index.slots[e as usize] = Some(Slot {
                    bucket: bucket_id,
                    pos: pos as u32,
                });
            }
            let capacities = entries
                .iter()
                .map(|&e| volumes[e as usize].capacity.map_or(0, |q| q.as_nanos()))
                .collect();
            index.buckets.push(Bucket {
                modes,
                next: (0..entries.len() as u32).collect(),
                entries,
                capacities,
            });
            index
                .groups
                .entry((class, mode))
                .or_default()
                .push(bucket_id);
        }
        for ids in index.groups.values_mut() {
            let buckets = &index.buckets;
            ids.sort_by_key(|&id| set_order(buckets[id as usize].modes));
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

    fn group(&self, class: &str, mode: VolumeMode) -> &[u32] {
        self.groups
            .get(&(class.to_string(), mode))
            .map_or(&[], |v| v.as_slice())
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
        let bucket = &mut self.buckets[id as usize];
        let lower = bucket
            .capacities
            .partition_point(|&c| c < request.as_nanos());
        let mut i = bucket.find_free(lower);
        while i < bucket.entries.len() {
            let v = bucket.entries[i] as usize;
            if filter.accepts(&volumes[v]) {
                return Some(v);
            }
            i = bucket.find_free(i + 1);
        }
        None
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
        let ids: Vec<u32> = self
            .group(class, mode)
            .iter()
            .copied()
            .filter(|&id| self.buckets[id as usize].modes.contains_all(wanted))
            .collect();
        let mut best: Option<usize> = None;
        for id in ids {
            if let Some(v) = self.smallest_in_bucket(volumes, id, request, filter) {
                best = match best {
                    Some(b) => {
                        let (vb, vv) = (&volumes[b], &volumes[v]);
                        if (vv.capacity, &vv.name) < (vb.capacity, &vb.name) {
                            Some(v)
                        } else {
                            Some(b)
                        }
                    }
                    None => Some(v),
                };
            }
        }
        best
    }

    /// Marks a volume as bound so later searches skip it.
    pub fn take(&mut self, volume: usize) {
        if let Some(Some(slot)) = self.slots.get(volume).copied() {
            self.buckets[slot.bucket as usize].take(slot.pos as usize);
        }
    }
}
