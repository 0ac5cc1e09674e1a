//! "Nearly matched" volumes for pending claims: the few volumes of the claim's
//! class closest to its request, with every reason they were not taken
//! (`pv0003: 5Gi < 8Gi requested`).
//!
//! Only volumes near the request in capacity are examined, so this stays
//! O(log n) per claim however large the cluster is.

use rustc_hash::FxHashMap as HashMap;

use super::admission::Admitted;
use super::engine::Engine;
use super::matcher::{ClaimView, mismatches};
use super::plan::NearMiss;
use crate::model::ClaimKey;

/// How many volumes to examine on each side of the request, and to report.
const EACH_SIDE: usize = 4;
const REPORTED: usize = 3;

impl Engine<'_> {
    pub(super) fn fill_near_misses(&mut self, admitted: &[Admitted<'_>]) {
        if self.plan.pending.is_empty() {
            return;
        }
        let volumes = &self.snap.volumes;
        let by_key: HashMap<&ClaimKey, &Admitted<'_>> =
            admitted.iter().map(|a| (&a.claim.key, a)).collect();
        // Every volume of each class a pending claim asks for, sorted by
        // capacity (then name).
        let mut by_class: HashMap<&str, Vec<usize>> = HashMap::default();
        for p in &self.plan.pending {
            if let Some(a) = by_key.get(&p.claim) {
                by_class.entry(a.class.as_str()).or_default();
            }
        }
        for (i, v) in volumes.iter().enumerate() {
            if let Some(list) = by_class.get_mut(v.class.as_str()) {
                list.push(i);
            }
        }
        for list in by_class.values_mut() {
            // Names are unique, so an unstable sort is still deterministic.
            let mut keyed: Vec<_> = list
                .iter()
                .map(|&i| (volumes[i].capacity, volumes[i].name.as_str(), i))
                .collect();
            keyed.sort_unstable();
            list.clear();
            list.extend(keyed.into_iter().map(|k| k.2));
        }
        let mut filled = Vec::with_capacity(self.plan.pending.len());
        for p in &self.plan.pending {
            let Some(a) = by_key.get(&p.claim) else {
                filled.push(Vec::new());
                continue;
            };
            let claim = a.claim.as_ref();
            let view = ClaimView::of(a);
            let request = view.request;
            let mut candidates: Vec<usize> = Vec::new();
            if let Some(list) = by_class.get(a.class.as_str()) {
                let lower = list.partition_point(|&i| volumes[i].capacity < Some(request));
                let from = lower.saturating_sub(EACH_SIDE);
                let to = (lower + EACH_SIDE).min(list.len());
                candidates.extend(&list[from..to]);
            }
            if let Some(r) = self.reserved.get(&claim.key) {
                candidates.extend(r);
            }
            if let Some(v) = claim
                .volume_name
                .as_deref()
                .and_then(|n| self.by_name.get(n))
            {
                candidates.push(*v);
            }
            candidates.sort_unstable();
            candidates.dedup();
            let mut misses: Vec<NearMiss> = candidates
                .into_iter()
                .map(|v| NearMiss {
                    volume: volumes[v].name.clone(),
                    problems: mismatches(
                        &volumes[v],
                        &self.states[v],
                        self.taken_by(v),
                        &view,
                        None,
                    ),
                })
                .filter(|m| !m.problems.is_empty())
                .collect();
            misses
                .sort_by(|a, b| (a.problems.len(), &a.volume).cmp(&(b.problems.len(), &b.volume)));
            misses.truncate(REPORTED);
            filled.push(misses);
        }
        for (p, misses) in self.plan.pending.iter_mut().zip(filled) {
            p.candidates = misses;
        }
    }
}
