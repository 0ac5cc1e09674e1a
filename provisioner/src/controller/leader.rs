//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does
//! it: the holder renews the lease every `retry` period; another replica
//! takes it only once `renewTime + leaseDurationSeconds` has passed. A leader
//! that cannot renew within the lease duration stops acting (the process
//! exits), so two replicas never both act.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error("lost the lease {namespace}/{name}: not renewed for {after:?}")]
    Lost {
        namespace: String,
        name: String,
        after: Duration,
    },
}

pub struct Elector {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    duration: Duration,
    retry: Duration,
}

impl Elector {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Self {
        Elector {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            duration,
            retry: duration / 4,
        }
    }

    /// One round: take or renew the lease. `Ok(true)` while we hold it.
    async fn try_hold(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let secs = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX);
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease: Lease = serde_json::from_value(serde_json::json!({
                "metadata": { "name": self.name, "namespace": self.namespace },
                "spec": {},
            }))
            .expect("a valid Lease");
            let mut lease = lease;
            let spec = lease.spec.get_or_insert_with(Default::default);
            spec.holder_identity = Some(self.identity.clone());
            spec.lease_duration_seconds = Some(secs);
            spec.acquire_time = Some(MicroTime(now));
            spec.renew_time = Some(MicroTime(now));
            spec.lease_transitions = Some(0);
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        if holder != self.identity {
            let held_for = i64::from(spec.lease_duration_seconds.unwrap_or(secs));
            let expired = match &spec.renew_time {
                Some(t) => {
                    t.0.checked_add(SignedDuration::from_secs(held_for))
                        .is_ok_and(|end| end <= now)
                }
                None => true,
            };
            if !holder.is_empty() && !expired {
                return Ok(false);
            }
            spec.holder_identity = Some(self.identity.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.lease_duration_seconds = Some(secs);
        spec.renew_time = Some(MicroTime(now));
        // The update carries the resourceVersion we read: if another replica
        // wrote the lease in between, ours conflicts and loses this round.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_hold().await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "acquired the lease");
                    return;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election round failed"),
            }
            tokio::time::sleep(self.retry).await;
        }
    }

    /// Renews the lease for as long as possible; returns when it was lost.
    pub async fn keep(&self) -> LeaderError {
        // Give up a little before the lease could expire for the others.
        let deadline = self.duration.mul_f32(0.75);
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.retry).await;
            match self.try_hold().await {
                Ok(true) => last = tokio::time::Instant::now(),
                Ok(false) => {
                    return LeaderError::Lost {
                        namespace: self.namespace.clone(),
                        name: self.name.clone(),
                        after: last.elapsed(),
                    };
                }
                Err(e) => tracing::warn!(error = %e, "renewing the lease failed"),
            }
            if last.elapsed() > deadline {
                return LeaderError::Lost {
                    namespace: self.namespace.clone(),
                    name: self.name.clone(),
                    after: last.elapsed(),
                };
            }
        }
    }

    /// Hands the lease back on a clean shutdown so a standby need not wait
    /// for it to expire.
    pub async fn release(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await {
            let spec = lease.spec.get_or_insert_with(Default::default);
            if spec.holder_identity.as_deref() == Some(self.identity.as_str()) {
                spec.holder_identity = None;
                spec.renew_time = None;
                let _ = self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await;
            }
        }
    }
}
