//! What the binder must change in the cluster for it to match a plan: the
//! difference between the plan and the objects' current state, as a list of
//! [`Effect`]s. Pure: the same snapshot always gives the same effects, so
//! the table-driven tests below pin the binder's behaviour without a cluster.
//!
//! It covers the PV controller's whole job once kube-controller-manager
//! runs without it: binding (`syncUnboundClaim`), handing claims to their
//! provisioner, volume phases (`syncVolume`: Available, Released, Failed,
//! unbinding volumes whose claim is bound elsewhere),
//! lost claims, and why a claim waits.

use crate::binding::matcher::VolumeState;
use crate::binding::snapshot::Volume;
use crate::binding::{BindHow, LostCause, PendingReason, ReclaimVerb, Snapshot};
use crate::model::{ClaimKey, ClaimPhase, VolumePhase};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Bind claim and volume; the executor performs whichever of upstream's
    /// four writes (PV claimRef, PV phase, claim volumeName, claim phase)
    /// are still missing.
    Bind {
        claim: ClaimKey,
        volume: String,
        /// The claim named no volume: berth chose it (`bound-by-controller`).
        chosen: bool,
    },
    /// Hand the claim to an external provisioner (its annotation); `node`
    /// is berth's placement for an Immediate claim of a node-local
    /// provisioner that names no node yet (`selected-node`, which its
    /// node's agent waits for).
    Provision {
        claim: ClaimKey,
        provisioner: String,
        node: Option<String>,
    },
    /// Tell why the claim waits (an event, written once per distinct reason).
    Wait {
        claim: ClaimKey,
        reason: PendingReason,
    },
    /// The claim lost its volume: phase Lost, with the PV controller's event.
    Lost { claim: ClaimKey, cause: LostCause },
    /// Upstream's `unbindVolume` for a volume whose claim is bound to
    /// another one: the claimRef is removed when the binder wrote it
    /// (`clear_ref`), else only its uid; then the phase is Available.
    Unbind { volume: String, clear_ref: bool },
    /// Set a volume's phase (with a message for Failed).
    VolumePhase {
        volume: String,
        phase: VolumePhase,
        message: Option<String>,
    },
}

/// The effects that bring the cluster in line with `plan`, in a stable
/// order: volume phases, then bindings, provisioning hand-offs and waits.
pub fn effects(
    snap: &Snapshot,
    plan: &crate::binding::Plan,
    states: &[VolumeState],
) -> Vec<Effect> {
    let mut out = Vec::new();
    let claims: std::collections::HashMap<&ClaimKey, &crate::binding::snapshot::Claim> =
        snap.claims.iter().map(|c| (&c.key, c)).collect();
    let reclaim: std::collections::HashMap<&str, &crate::binding::Reclaim> = plan
        .reclaim
        .iter()
        .map(|r| (r.volume.as_str(), r))
        .collect();

    // A volume about to be bound goes straight to Bound: writing Available
    // first would race the binding's own phase write.
    let binding: std::collections::HashSet<&str> =
        plan.bindings.iter().map(|b| b.volume.as_str()).collect();
    for (volume, state) in snap.volumes.iter().zip(states) {
        if volume.deleting || binding.contains(volume.name.as_str()) {
            continue;
        }
        if reclaim
            .get(volume.name.as_str())
            .is_some_and(|r| r.action == ReclaimVerb::Unbind)
        {
            out.push(Effect::Unbind {
                volume: volume.name.clone(),
                clear_ref: volume.bound_by_controller,
            });
            continue;
        }
        let want = match state {
            // An unreserved volume, or one reserved by a claimRef without a
            // uid (upstream leaves those Available until the claim binds).
            VolumeState::Free => Some((VolumePhase::Available, None)),
            VolumeState::Reserved(_) if unreserved_uid(volume) => {
                Some((VolumePhase::Available, None))
            }
            VolumeState::Released(_) => match reclaim.get(volume.name.as_str()) {
                Some(r) if r.action == ReclaimVerb::Fail => {
                    Some((VolumePhase::Failed, Some(r.reason.clone())))
                }
                // Recycle (deprecated upstream) is not run by berth: the
                // volume fails with the reason rather than wait forever.
                Some(r) if r.action == ReclaimVerb::Recycle => Some((
                    VolumePhase::Failed,
                    Some(format!(
                        "{}; berth does not run recycler pods: scrub the volume and clear spec.claimRef",
                        r.reason
                    )),
                )),
                _ => Some((VolumePhase::Released, None)),
            },
            VolumeState::Reserved(_) | VolumeState::Unusable(_) => None,
        };
        if let Some((phase, message)) = want {
            // Failed is final until an administrator clears claimRef.
            let settled = volume.phase == Some(phase)
                || (phase == VolumePhase::Released && volume.phase == Some(VolumePhase::Failed));
            if !settled {
                out.push(Effect::VolumePhase {
                    volume: volume.name.clone(),
                    phase,
                    message,
                });
            }
        }
    }

    let volumes: std::collections::HashMap<&str, &Volume> =
        snap.volumes.iter().map(|v| (v.name.as_str(), v)).collect();
    for b in &plan.bindings {
        // Claims that do not exist yet (StatefulSet templates) are not ours to bind.
        let Some(claim) = claims.get(&b.claim).filter(|c| c.exists()) else {
            continue;
        };
        let Some(volume) = volumes.get(b.volume.as_str()) else {
            continue;
        };
        // A claim without the bind-completed annotation still gets it, as
        // upstream finishes every binding it finds half done.
        let done = b.how == BindHow::AlreadyBound
            && claim.bind_completed
            && claim.phase == ClaimPhase::Bound
            && volume.phase == Some(VolumePhase::Bound);
        if !done {
            out.push(Effect::Bind {
                claim: b.claim.clone(),
                volume: b.volume.clone(),
                chosen: claim.volume_name.is_none(),
            });
        }
    }
    for p in &plan.provisioning {
        if let Some(claim) = claims.get(&p.claim).filter(|c| c.exists()) {
            let node = match (&p.placement, &p.node) {
                (Some(_), Some(n)) if claim.selected_node.is_none() => Some(n.clone()),
                _ => None,
            };
            out.push(Effect::Provision {
                claim: p.claim.clone(),
                provisioner: p.provisioner.clone(),
                node,
            });
        }
    }
    for p in &plan.pending {
        let Some(claim) = claims.get(&p.claim).filter(|c| c.exists()) else {
            continue;
        };
        match &p.reason {
            PendingReason::Lost(cause) => {
                // Upstream writes the phase (and says why) only once.
                if claim.phase != ClaimPhase::Lost {
                    out.push(Effect::Lost {
                        claim: p.claim.clone(),
                        cause: cause.clone(),
                    });
                }
            }
            reason => out.push(Effect::Wait {
                claim: p.claim.clone(),
                reason: reason.clone(),
            }),
        }
    }
    out
}

fn unreserved_uid(v: &Volume) -> bool {
    v.claim_ref.as_ref().is_some_and(|r| r.uid.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{parse_str, to_snapshot};

    /// Effects for a cluster written as YAML, as the binder would compute them.
    fn effects_of(yaml: &str) -> Vec<Effect> {
        let snap = to_snapshot(parse_str("test.yaml", yaml).expect("yaml")).expect("snapshot");
        let outcome = crate::binding::run(&snap, &crate::binding::Options::default());
        effects(&snap, &outcome.plan, &outcome.states)
    }

    const CLASS: &str = "
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: static}
provisioner: kubernetes.io/no-provisioner
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: fast}
provisioner: ebs.csi.aws.com
";

    /// Bound once by the binder (the annotation), their volume since gone;
    /// the second one is already marked Lost.
    const LOST: &str = "
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: lost
  namespace: default
  uid: uid-lost
  annotations: {pv.kubernetes.io/bind-completed: \"yes\"}
spec:
  storageClassName: static
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
  volumeName: vanished
status: {phase: Bound}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: lost-before
  namespace: default
  uid: uid-lost-before
  annotations: {pv.kubernetes.io/bind-completed: \"yes\"}
spec:
  storageClassName: static
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
  volumeName: vanished-too
status: {phase: Lost}
";

    fn pv(name: &str, size: &str, extra: &str) -> String {
        format!(
            "---
apiVersion: v1
kind: PersistentVolume
metadata: {{name: {name}}}
spec:
  capacity: {{storage: {size}}}
  accessModes: [ReadWriteOnce]
  storageClassName: static
  hostPath: {{path: /tmp/{name}}}
{extra}
"
        )
    }

    fn pvc(name: &str, class: &str, extra: &str) -> String {
        format!(
            "---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {name}, namespace: default, uid: uid-{name}}}
spec:
  storageClassName: {class}
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
{extra}
"
        )
    }

    fn key(name: &str) -> ClaimKey {
        ClaimKey::new("default", name)
    }

    fn phase(volume: &str, phase: VolumePhase) -> Effect {
        Effect::VolumePhase {
            volume: volume.into(),
            phase,
            message: None,
        }
    }

    #[test]
    fn a_new_volume_becomes_available_unless_a_claim_takes_it_at_once() {
        let got = effects_of(&format!(
            "{CLASS}{}{}{}",
            pv("big", "5Gi", "status: {phase: Available}"),
            pv("small", "1Gi", ""),
            pvc("data", "static", "")
        ));
        assert_eq!(
            got,
            [Effect::Bind {
                claim: key("data"),
                volume: "small".into(),
                chosen: true
            }]
        );
        let alone = effects_of(&format!("{CLASS}{}", pv("new", "1Gi", "")));
        assert_eq!(alone, [phase("new", VolumePhase::Available)]);
    }

    #[test]
    fn a_fully_bound_pair_needs_nothing_and_a_half_bound_one_is_finished() {
        let bound_pv =
            "  claimRef: {namespace: default, name: data, uid: uid-data}\nstatus: {phase: Bound}";
        let bound_pvc = pvc("data", "static", "  volumeName: v\nstatus: {phase: Bound}");
        let completed = bound_pvc.replace(
            "uid: uid-data}",
            "uid: uid-data, annotations: {pv.kubernetes.io/bind-completed: \"yes\"}}",
        );
        assert_ne!(completed, bound_pvc);
        let done = effects_of(&format!("{CLASS}{}{completed}", pv("v", "1Gi", bound_pv)));
        assert_eq!(done, []);
        // Bound both ways but never marked complete: upstream finishes it
        // (the binder writes the annotation).
        let unmarked = effects_of(&format!("{CLASS}{}{bound_pvc}", pv("v", "1Gi", bound_pv)));
        assert_eq!(
            unmarked,
            [Effect::Bind {
                claim: key("data"),
                volume: "v".into(),
                chosen: false
            }]
        );
        // Crash after the PV write: the claim does not know its volume yet.
        let half = effects_of(&format!(
            "{CLASS}{}{}",
            pv("v", "1Gi", bound_pv),
            pvc("data", "static", "")
        ));
        assert_eq!(
            half,
            [Effect::Bind {
                claim: key("data"),
                volume: "v".into(),
                chosen: true
            }]
        );
    }

    #[test]
    fn a_claim_naming_its_volume_is_bound_without_bound_by_controller() {
        let got = effects_of(&format!(
            "{CLASS}{}{}",
            pv("v", "1Gi", "status: {phase: Available}"),
            pvc("data", "static", "  volumeName: v")
        ));
        assert_eq!(
            got,
            [Effect::Bind {
                claim: key("data"),
                volume: "v".into(),
                chosen: false
            }]
        );
    }

    #[test]
    fn released_volumes_follow_their_policy() {
        let gone = "  claimRef: {namespace: default, name: gone, uid: uid-gone}\n";
        let got = effects_of(&format!(
            "{CLASS}{}{}{}",
            pv(
                "kept",
                "1Gi",
                &format!("{gone}  persistentVolumeReclaimPolicy: Retain\nstatus: {{phase: Bound}}")
            ),
            pv(
                "recycled",
                "1Gi",
                &format!(
                    "{gone}  persistentVolumeReclaimPolicy: Recycle\nstatus: {{phase: Bound}}"
                )
            ),
            pv(
                "settled",
                "1Gi",
                &format!(
                    "{gone}  persistentVolumeReclaimPolicy: Retain\nstatus: {{phase: Released}}"
                )
            ),
        ));
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], phase("kept", VolumePhase::Released));
        match &got[1] {
            Effect::VolumePhase {
                volume,
                phase: VolumePhase::Failed,
                message: Some(m),
            } => {
                assert_eq!(volume, "recycled");
                assert!(m.contains("recycler"), "{m}");
            }
            other => panic!("expected recycled to fail, got {other:?}"),
        }
    }

    #[test]
    fn claims_wait_get_provisioned_or_are_lost() {
        let got = effects_of(&format!(
            "{CLASS}{}{}{}",
            pvc("dynamic", "fast", ""),
            pvc("nothing", "static", ""),
            LOST,
        ));
        assert_eq!(
            got[0],
            Effect::Provision {
                claim: key("dynamic"),
                provisioner: "ebs.csi.aws.com".into(),
                node: None,
            }
        );
        assert!(got.contains(&Effect::Lost {
            claim: key("lost"),
            cause: LostCause::VolumeMissing("vanished".into())
        }));
        // Already Lost: nothing to write again.
        assert!(
            !got.iter()
                .any(|e| matches!(e, Effect::Lost { claim, .. } if *claim == key("lost-before"))),
            "{got:?}"
        );
        assert!(
            got.iter().any(|e| matches!(e,
                Effect::Wait { claim, reason: PendingReason::NoProvisioner(_) } if *claim == key("nothing"))),
            "{got:?}"
        );
    }

    #[test]
    fn claims_that_do_not_exist_yet_are_left_alone() {
        let got = effects_of(&format!(
            "{CLASS}{}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: planned, namespace: default}}
spec:
  storageClassName: static
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 1Gi}}}}
",
            pv("v", "1Gi", "status: {phase: Available}")
        ));
        assert_eq!(got, []);
    }

    #[test]
    fn an_immediate_node_local_claim_gets_the_placed_node_once() {
        let cluster = "---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local-now}
provisioner: csi.berth.dev
---
apiVersion: v1
kind: Node
metadata: {name: n1, labels: {topology.csi.berth.dev/node: n1}}
---
apiVersion: storage.k8s.io/v1
kind: CSINode
metadata: {name: n1}
spec:
  drivers: [{name: csi.berth.dev, nodeID: n1, topologyKeys: [topology.csi.berth.dev/node]}]
";
        let got = effects_of(&format!("{cluster}{}", pvc("fresh", "local-now", "")));
        assert_eq!(
            got,
            [Effect::Provision {
                claim: key("fresh"),
                provisioner: "csi.berth.dev".into(),
                node: Some("n1".into()),
            }]
        );
        let placed = pvc("fresh", "local-now", "").replace(
            "uid: uid-fresh}",
            "uid: uid-fresh, annotations: {volume.kubernetes.io/selected-node: n1}}",
        );
        let got = effects_of(&format!("{cluster}{placed}"));
        assert_eq!(
            got,
            [Effect::Provision {
                claim: key("fresh"),
                provisioner: "csi.berth.dev".into(),
                node: None,
            }],
            "a placed claim is not placed again"
        );
    }

    /// A volume whose claim is bound to another volume is unbound as
    /// upstream's `unbindVolume` does: its claimRef removed when the binder
    /// wrote it, else only the uid; never given a phase of its own.
    #[test]
    fn volume_whose_claim_is_bound_elsewhere_is_unbound() {
        let claim_ref = "  claimRef: {name: a, namespace: default, uid: uid-a}";
        for (annotation, clear_ref) in [
            ("pv.kubernetes.io/bound-by-controller: \"yes\"", true),
            ("", false),
        ] {
            let old = pv("old", "5Gi", claim_ref).replace(
                "metadata: {name: old}",
                &format!("metadata: {{name: old, annotations: {{{annotation}}}}}"),
            );
            let got = effects_of(&format!(
                "{CLASS}{old}{}{}",
                pv("new", "5Gi", claim_ref),
                pvc("a", "static", "  volumeName: new")
            ));
            assert!(
                got.contains(&Effect::Unbind {
                    volume: "old".into(),
                    clear_ref
                }),
                "{annotation:?}: {got:#?}"
            );
            assert!(
                !got.iter()
                    .any(|e| matches!(e, Effect::VolumePhase { volume, .. } if volume == "old")),
                "{got:#?}"
            );
        }
    }
}
