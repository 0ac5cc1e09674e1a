//! The binding core: a pure, synchronous `plan(&Snapshot) -> Plan`.
//!
//! It predicts what kube-controller-manager's PV controller, the scheduler's
//! VolumeBinding and NodeVolumeLimits plugins and the storage admission
//! plugins do with a snapshot of a cluster. No I/O happens here.
//!
//! Order of work (each step is its own module):
//! 1. `expand`: StatefulSet claim templates become claims.
//! 2. `admission`: claims are admitted or rejected in creation order.
//! 3. `reclaim`: each volume's state from its claimRef; released volumes get
//!    their reclaim action.
//! 4. `index`: free volumes are indexed by class, volume mode, access-mode set
//!    and capacity.
//! 5. Claims are decided, in this documented deterministic order: first the
//!    claims that name a volume (`spec.volumeName`), by namespace/name; then all
//!    others by namespace/name. Upstream processes claims in work-queue order;
//!    berth fixes the order so the same snapshot always gives the same plan.
//!    WaitForFirstConsumer claims whose consumer pod is already on a node are
//!    then decided as the scheduler does: pod by pod (namespace/name), each
//!    pod's claims from the smallest request up.
//! 6. `placement`: Immediate claims of node-local provisioners get the node
//!    with the most free storage (berth's controller writes it as
//!    `volume.kubernetes.io/selected-node`).
//! 7. `schedule`: pods without a node go through the scheduler's filters
//!    and get a node, one at a time in creation order; their
//!    WaitForFirstConsumer claims are bound or provisioned there.
//! 8. `limits`: per-node volume counts against CSINode limits.

pub mod admission;
pub mod data_source;
mod engine;
pub mod expand;
pub mod explain;
pub mod index;
pub mod limits;
pub mod matcher;
mod near;
mod placement;
pub mod plan;
pub mod reclaim;
pub mod schedule;
pub mod snapshot;
mod warnings;

use admission::Admitted;
use engine::Engine;
use matcher::VolumeState;
pub use plan::*;
pub use snapshot::Snapshot;

use crate::model::ClaimKey;

/// Knobs that change how much the planner explains, and whether it predicts
/// the scheduler; never what it decides for claims the scheduler has placed.
#[derive(Debug, Clone)]
pub struct Options {
    /// Compute "nearly matched" volumes for pending claims.
    pub near_misses: bool,
    /// Keep, for every pod berth schedules, each rejected node with the
    /// filter that rejected it (`explain pod`).
    pub node_verdicts: bool,
    /// Predict the scheduler for pods without a node. The binder turns it
    /// off: the real scheduler decides those pods, the binder only acts on
    /// what it decided.
    pub schedule_pods: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            near_misses: true,
            node_verdicts: false,
            schedule_pods: true,
        }
    }
}

/// Plans a snapshot with default options.
pub fn plan(snapshot: &Snapshot) -> Plan {
    plan_with(snapshot, &Options::default())
}

pub fn plan_with(snapshot: &Snapshot, options: &Options) -> Plan {
    run(snapshot, options).plan
}

/// The plan plus the intermediate facts `explain` reports.
pub(crate) struct Outcome<'s> {
    pub plan: Plan,
    pub admitted: Vec<Admitted<'s>>,
    pub states: Vec<VolumeState>,
    /// Per volume: the index in `plan.bindings` of the claim bound to it.
    pub taken: Vec<Option<u32>>,
}

pub(crate) fn run<'s>(snap: &'s Snapshot, options: &Options) -> Outcome<'s> {
    // Stage spans let `BERTH_LOG=berth=debug` show where planning time goes.
    let stage = |name: &'static str| tracing::debug_span!("plan", stage = name).entered();
    let s = stage("expand");
    let expanded = expand::expand(snap);
    drop(s);
    let s = stage("admission");
    let admission = admission::admit(snap, expanded.claims);
    drop(s);
    let s = stage("index");
    let mut engine = Engine::new(snap, &admission.admitted);

    engine.plan.rejected = admission.rejected;
    engine.plan.reclaim = reclaim::reclaim_actions(&snap.volumes, &engine.states, &engine.claims);

    drop(s);
    let s = stage("consumers");
    // Consumers of each claim: real pods and the StatefulSet pods to come.
    for pod in &snap.pods {
        if pod.terminated {
            continue;
        }
        for v in &pod.volumes {
            if let snapshot::PodVolume::Claim(name) = v {
                let key = ClaimKey::new(pod.key.namespace.clone(), name.clone());
                engine
                    .consumers
                    .entry(key)
                    .or_default()
                    .push((pod.key.clone(), pod.node_name.clone()));
            }
        }
    }
    for pod in &expanded.set_pods {
        for name in &pod.claims {
            let key = ClaimKey::new(pod.key.namespace.clone(), name.clone());
            engine
                .consumers
                .entry(key)
                .or_default()
                .push((pod.key.clone(), None));
        }
    }

    drop(s);
    let s = stage("decide");
    // Sorted on the keys themselves, laid out next to each other, rather
    // than through the claims: the sort is most of this stage's time.
    // Keys are unique, so an unstable sort is still deterministic.
    let mut keyed: Vec<(bool, &str, &str, usize)> = admission
        .admitted
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let c = &a.claim;
            (
                c.volume_name.is_none(),
                c.key.namespace.as_str(),
                c.key.name.as_str(),
                i,
            )
        })
        .collect();
    keyed.sort_unstable();
    let order: Vec<usize> = keyed.into_iter().map(|k| k.3).collect();
    for i in order {
        engine.decide(i, &admission.admitted[i]);
    }
    drop(s);
    let s = stage("schedule");
    engine.schedule_deferred(&admission.admitted);
    drop(s);
    let s = stage("placement");
    let unplaced = std::mem::take(&mut engine.unplaced);
    engine.place_unplaced(&admission.admitted, unplaced);
    drop(s);
    let s = stage("pods");
    if options.schedule_pods {
        engine.schedule_pods(
            &admission.admitted,
            &expanded.set_pods,
            options.node_verdicts,
        );
    }
    drop(s);

    if options.near_misses {
        let _s = stage("near-misses");
        engine.fill_near_misses(&admission.admitted);
    }
    let s = stage("limits-and-warnings");
    let (usage, warnings) = {
        let bound = engine.bound();
        let usage = engine.usage(&admission.admitted, &bound);
        let warnings = engine.warnings(&admission.admitted, &usage, &bound);
        (usage, warnings)
    };
    engine.plan.violations = limits::violations(snap, &usage);
    engine.plan.warnings = warnings;

    drop(s);
    let Engine {
        mut plan,
        states,
        taken,
        ..
    } = engine;
    // Sort bindings by claim and keep `taken` pointing at the same bindings.
    let mut tagged: Vec<(usize, Binding)> = std::mem::take(&mut plan.bindings)
        .into_iter()
        .enumerate()
        .collect();
    tagged.sort_by(|a, b| a.1.claim.cmp(&b.1.claim));
    let mut new_pos = vec![0u32; tagged.len()];
    for (new, (old, _)) in tagged.iter().enumerate() {
        new_pos[*old] = new as u32;
    }
    plan.bindings = tagged.into_iter().map(|(_, b)| b).collect();
    let taken = taken
        .into_iter()
        .map(|b| b.map(|b| new_pos[b as usize]))
        .collect();
    plan.provisioning.sort_by(|a, b| a.claim.cmp(&b.claim));
    plan.pending.sort_by(|a, b| a.claim.cmp(&b.claim));
    Outcome {
        plan,
        admitted: admission.admitted,
        states,
        taken,
    }
}
