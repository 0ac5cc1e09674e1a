//! Events on the claims of directory volumes the usage watch finds over
//! their capacity (`csi/usage.rs`): a `VolumeOverCapacity` Warning with
//! the figures, once each time a volume goes over. The claim is named by
//! the `csi.storage.k8s.io/pvc/*` parameters berth's provisioning passes
//! to CreateVolume; a volume made without them gets no event (its overrun
//! is still in the log, the metrics and NodeGetVolumeStats).

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use tokio::sync::broadcast::error::RecvError;

use crate::controller::Context;
use crate::controller::events::VOLUME_OVER_CAPACITY;
use crate::csi::usage::Overrun;

/// The claim an overrun is about, as an event's subject. Volumes berth
/// provisions are named `pvc-<claim uid>`, which gives the uid too.
pub fn claim_reference(o: &Overrun) -> Option<ObjectReference> {
    let claim = o.claim.as_ref()?;
    Some(ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        namespace: Some(claim.namespace.clone()),
        name: Some(claim.name.clone()),
        uid: o.volume_name.strip_prefix("pvc-").map(str::to_string),
        ..Default::default()
    })
}

/// Writes one event per announced overrun until the driver goes away.
pub async fn run(ctx: Arc<Context>, mut overruns: tokio::sync::broadcast::Receiver<Overrun>) {
    loop {
        match overruns.recv().await {
            Ok(o) => {
                let Some(reference) = claim_reference(&o) else {
                    continue;
                };
                let note = format!(
                    "{} (volume {}); directory volumes' capacity is not enforced on this node",
                    o.message(),
                    o.volume_id
                );
                ctx.events
                    .warning(&reference, VOLUME_OVER_CAPACITY, "CheckUsage", note)
                    .await;
            }
            // Missed notices are still in the metrics and the log.
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn the_event_names_the_claim_from_the_volumes_parameters() {
        let params: BTreeMap<String, String> = [
            (
                "csi.storage.k8s.io/pvc/namespace".to_string(),
                "shop".to_string(),
            ),
            ("csi.storage.k8s.io/pvc/name".to_string(), "db".to_string()),
        ]
        .into();
        let o = Overrun::new("vol-1", "pvc-1234", &params, 20 << 20, 16 << 20);
        let r = claim_reference(&o).expect("a claim");
        assert_eq!(r.namespace.as_deref(), Some("shop"));
        assert_eq!(r.name.as_deref(), Some("db"));
        assert_eq!(r.uid.as_deref(), Some("1234"));
        let anonymous = Overrun::new("vol-2", "v2", &BTreeMap::new(), 2, 1);
        assert!(claim_reference(&anonymous).is_none());
    }
}
