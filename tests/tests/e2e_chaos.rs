//! The chaos soak of issue 13: deploy/'s shape on the real control plane
//! (a `berth node` agent per fake node, two `berth controller` replicas
//! electing a leader, kube-scheduler, the stock PV binder and the garbage
//! collector), a workload that creates and deletes claims, and a seeded
//! schedule of crashes; then, once the load stops, the cluster must settle
//! into a state with nothing leaked, nothing lost and nothing doubled.
//!
//! The workload creates claims of an Immediate class, a WaitForFirstConsumer
//! class (each consumed by a pod without `spec.nodeName`, which
//! kube-scheduler places; there is no kubelet, so pods only get scheduled)
//! and an Immediate class with the Retain policy, in several namespaces,
//! and deletes them (pod first) at random moments — a share right after
//! their creation, while they are being provisioned. Meanwhile the schedule
//! kill -9s the controller that holds the lease (restarted after a moment as
//! a new replica), kill -9s a node agent (restarted on the same data),
//! kill -9s kube-apiserver (restarted on the same port, certificates and
//! flags) and stops and restarts etcd on the same data directory; after
//! those two the next event waits for `/readyz`. Like a kubelet would, the
//! test also restarts any berth process that exits by itself (a leader that
//! cannot renew its lease while the API server is away exits on purpose).
//!
//! At the end, within a deadline and stable for a few seconds after:
//! every live claim is Bound to exactly one PV (its own `pvc-<uid>`) and
//! carries no provisioning finalizer; every berth PV has exactly one volume,
//! on the disk and in the store of the node its affinity names and nowhere
//! else; no node holds a volume without a PV (the agents sweep orphans every
//! second with a 3 s grace); no PV outlives its claim unless its policy is
//! Retain; no claim, PV or pod is left deleting, and every claim the test
//! deleted is gone; the agents' `berth_orphaned_volumes_deleted_total` adds
//! up to the orphan deletions they logged, each of the volume of a claim the
//! test deleted; exactly one live controller says it leads, the one the
//! Lease names.
//!
//! Profiles (`BERTH_SOAK`):
//! - default (CI): 3 nodes, 2 namespaces, 8 chaos events (2 leader kills,
//!   3 agent kills, 2 API server kills, 1 etcd restart) 3–6 s apart, about
//!   a minute of load; the whole test takes about 75 s here.
//! - `BERTH_SOAK=long`: 4 nodes, 4 namespaces, a faster workload and chaos
//!   events 4–10 s apart for at least 10 minutes of load.
//!
//! The seed comes from `BERTH_SOAK_SEED` or the clock and is printed; it
//! fixes the chaos schedule (kinds, order, targets, gaps, restart delays)
//! and the workload's choices, though not how they interleave with the
//! processes' own timing. A failure prints the command that replays it.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use berth_tests::control_plane::{
    Cluster, NodeSpec, affinity_nodes, free_port, leader_election_flags, volume_handle,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

const PACKAGE: &str = "berth-tests";
const FINALIZER: &str = "csi.berth.dev/provisioning";
const LEASE: &str = "csi-berth-dev-controller";
const IMMEDIATE: &str = "soak-immediate";
const WFFC: &str = "soak-wffc";
const RETAIN: &str = "soak-retain";
/// The agents' orphan sweep: every second, 3 s of grace.
const SWEEP: [&str; 2] = ["--orphan-sweep-interval-secs=1", "--orphan-grace-secs=3"];
/// What an agent logs for each orphan it deletes (agent/sweep.rs).
const SWEPT_LINE: &str = "deleted an orphaned volume";
/// Every API call of the workload gives up after this (the call's outcome
/// is then unknown, as after a timeout in a real client).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// splitmix64: small, fast and good enough to draw a schedule from.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_millis() as u64;
        lo + Duration::from_millis(self.next() % (span + 1))
    }

    /// An independent stream, so one consumer's draws do not shift another's.
    fn fork(&mut self) -> Rng {
        Rng(self.next())
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Chaos {
    /// kill -9 of the controller holding the lease.
    Leader,
    /// kill -9 of a node's agent.
    Agent,
    /// kill -9 of kube-apiserver.
    ApiServer,
    /// etcd stopped and started again.
    Etcd,
}

struct Profile {
    name: &'static str,
    nodes: usize,
    namespaces: usize,
    /// Time between two workload operations.
    op_gap: (Duration, Duration),
    /// Claims alive at once, at most.
    max_live: usize,
    /// Time between two chaos events.
    event_gap: (Duration, Duration),
    /// The events, before shuffling; `None`: drawn until `min_load`.
    events: Option<Vec<Chaos>>,
    min_load: Duration,
    /// How long the cluster may take to settle once the load stopped.
    settle: Duration,
}

fn profile() -> Profile {
    let ms = Duration::from_millis;
    let secs = Duration::from_secs;
    match std::env::var("BERTH_SOAK").as_deref() {
        Ok("long") => Profile {
            name: "long",
            nodes: 4,
            namespaces: 4,
            op_gap: (ms(40), ms(250)),
            max_live: 60,
            event_gap: (secs(4), secs(10)),
            events: None,
            min_load: secs(600),
            settle: secs(240),
        },
        _ => {
            use Chaos::*;
            Profile {
                name: "short",
                nodes: 3,
                namespaces: 2,
                op_gap: (ms(60), ms(300)),
                max_live: 24,
                event_gap: (secs(3), secs(6)),
                events: Some(vec![
                    Leader, Leader, Agent, Agent, Agent, ApiServer, ApiServer, Etcd,
                ]),
                min_load: Duration::ZERO,
                settle: secs(90),
            }
        }
    }
}

/// One chaos event: what, on which node (agents), after how long a gap,
/// and how long the killed berth process stays down.
#[derive(Debug, Clone)]
struct Event {
    gap: Duration,
    kind: Chaos,
    node: usize,
    down: Duration,
}

fn schedule(p: &Profile, rng: &mut Rng) -> Vec<Event> {
    let kinds = match &p.events {
        Some(list) => {
            let mut list = list.clone();
            rng.shuffle(&mut list);
            list
        }
        None => {
            // One of each first, then drawn: agents and leaders most often.
            let mut list = vec![Chaos::Leader, Chaos::Agent, Chaos::ApiServer, Chaos::Etcd];
            rng.shuffle(&mut list);
            let mut planned: Duration = p.event_gap.0 * list.len() as u32;
            while planned < p.min_load {
                list.push(match rng.below(10) {
                    0..=3 => Chaos::Agent,
                    4..=6 => Chaos::Leader,
                    7..=8 => Chaos::ApiServer,
                    _ => Chaos::Etcd,
                });
                planned += (p.event_gap.0 + p.event_gap.1) / 2;
            }
            list
        }
    };
    kinds
        .into_iter()
        .map(|kind| Event {
            gap: rng.between(p.event_gap.0, p.event_gap.1),
            kind,
            node: rng.below(p.nodes),
            down: rng.between(Duration::from_millis(200), Duration::from_millis(2500)),
        })
        .collect()
}

/// Prints how to replay the run when the test fails, whatever failed.
struct Replay(String);

impl Drop for Replay {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("\nchaos soak FAILED; replay it with:\n  {}\n", self.0);
        }
    }
}

fn node_name(i: usize) -> String {
    format!("node-{}", (b'a' + i as u8) as char)
}

fn namespace_name(i: usize) -> String {
    format!("soak-{i}")
}

// ---------------------------------------------------------------------------
// The workload: a task of its own with its own client, so it keeps going
// (and failing, and retrying) while the chaos side restarts things.

/// What the workload did.
#[derive(Debug, Default)]
struct Workload {
    creates: usize,
    /// Creates whose outcome is unknown (error or timeout): the claim may
    /// or may not exist; the end state is read from the API server.
    uncertain_creates: usize,
    pods: usize,
    deletes: usize,
    /// Deleted before they were bound.
    deleted_mid_flight: usize,
    /// Of those, held by berth's provisioning finalizer when deleted.
    held_by_intent: usize,
    /// Calls that failed and were retried.
    retries: usize,
    /// Every claim the test deleted: `ns/name` → uid (when the API server
    /// returned the object; a 404 means it never existed).
    deleted: BTreeMap<String, Option<String>>,
}

impl Workload {
    fn operations(&self) -> usize {
        self.creates + self.pods + self.deletes
    }
}

struct Claim {
    ns: String,
    name: String,
    /// The consuming pod's name, for WaitForFirstConsumer claims.
    pod: Option<String>,
}

impl Claim {
    fn key(&self) -> String {
        format!("{}/{}", self.ns, self.name)
    }
}

/// A call with the workload's timeout; `Err` carries why.
async fn call<T, E: std::fmt::Display>(
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
    }
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

struct Load {
    client: Client,
    rng: Rng,
    p: Profile,
    seq: usize,
    live: Vec<Claim>,
    /// Pods still to be created (their claim's ns/name, pod name).
    pods_due: VecDeque<(String, String, String)>,
    /// Claims to delete at a moment (right after their creation).
    deletions_due: Vec<(Instant, Claim)>,
    /// Deletions that failed, retried.
    retry: VecDeque<Claim>,
    out: Workload,
}

impl Load {
    async fn run(mut self, stop: Arc<AtomicBool>) -> Workload {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(self.rng.between(self.p.op_gap.0, self.p.op_gap.1)).await;
            self.catch_up(false).await;
            // Grows to about half the cap, then hovers around it.
            let create = if self.live.len() < self.p.max_live / 2 {
                80
            } else {
                45
            };
            if self.live.len() < self.p.max_live
                && (self.live.is_empty() || self.rng.chance(create))
            {
                self.create().await;
            } else if !self.live.is_empty() {
                let c = self.live.swap_remove(self.rng.below(self.live.len()));
                self.delete(c).await;
            }
        }
        // The load stops; what was started is finished, so every deleted
        // claim is deleted and every live WaitForFirstConsumer claim has
        // its consumer.
        let deadline = Instant::now() + Duration::from_secs(120);
        while !(self.pods_due.is_empty() && self.deletions_due.is_empty() && self.retry.is_empty())
        {
            assert!(
                Instant::now() < deadline,
                "the workload could not finish its pending calls within 2 min"
            );
            self.catch_up(true).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.out
    }

    /// Due deletions, failed deletions and missing pods, once each.
    async fn catch_up(&mut self, all: bool) {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deletions_due)
            .into_iter()
            .partition(|(at, _)| all || *at <= now);
        self.deletions_due = later;
        for (_, c) in due {
            self.delete(c).await;
        }
        for _ in 0..self.retry.len() {
            let c = self.retry.pop_front().expect("counted");
            self.delete(c).await;
        }
        for _ in 0..self.pods_due.len() {
            let (ns, claim, pod) = self.pods_due.pop_front().expect("counted");
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
            match call(pods.create(
                &PostParams::default(),
                &Cluster::pod_object(&pod, &claim, json!({})),
            ))
            .await
            {
                Ok(_) => self.out.pods += 1,
                Err(e) if e.contains("already exists") => self.out.pods += 1,
                Err(_) => {
                    self.out.retries += 1;
                    self.pods_due.push_back((ns, claim, pod));
                }
            }
        }
    }

    async fn create(&mut self) {
        self.seq += 1;
        let ns = namespace_name(self.rng.below(self.p.namespaces));
        let class = match self.rng.below(10) {
            0..=3 => IMMEDIATE,
            4..=8 => WFFC,
            _ => RETAIN,
        };
        let name = format!("c{}", self.seq);
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &ns);
        self.out.creates += 1;
        if call(claims.create(
            &PostParams::default(),
            &Cluster::claim_object(&name, class, json!({})),
        ))
        .await
        .is_err()
        {
            // It may exist all the same; it is treated as live (deleting
            // it later finds out) and the end state is read from the API.
            self.out.uncertain_creates += 1;
        }
        let pod = (class == WFFC).then(|| format!("p-{name}"));
        if let Some(pod) = &pod {
            self.pods_due
                .push_back((ns.clone(), name.clone(), pod.clone()));
        }
        let claim = Claim { ns, name, pod };
        if self.rng.chance(30) {
            // Deleted while it is being provisioned (or before).
            let after = self
                .rng
                .between(Duration::ZERO, Duration::from_millis(1500));
            self.deletions_due.push((Instant::now() + after, claim));
        } else {
            self.live.push(claim);
        }
    }

    /// Deletes the claim's pod (at once: there is no kubelet to confirm),
    /// then the claim; on failure the whole deletion is retried later.
    async fn delete(&mut self, c: Claim) {
        if let Some(pod) = &c.pod {
            // Its creation may still be due: it must not come after.
            self.pods_due
                .retain(|(ns, claim, _)| !(*ns == c.ns && *claim == c.name));
            let pods: Api<Pod> = Api::namespaced(self.client.clone(), &c.ns);
            let gone = match tokio::time::timeout(
                CALL_TIMEOUT,
                pods.delete(pod, &DeleteParams::default().grace_period(0)),
            )
            .await
            {
                Ok(Ok(_)) => true,
                Ok(Err(e)) => is_status(&e, 404),
                Err(_) => false,
            };
            if !gone {
                self.out.retries += 1;
                self.retry.push_back(c);
                return;
            }
        }
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &c.ns);
        let deleted = match tokio::time::timeout(
            CALL_TIMEOUT,
            claims.delete(&c.name, &DeleteParams::default()),
        )
        .await
        {
            Ok(Ok(either)) => Some(either.left()),
            Ok(Err(e)) if is_status(&e, 404) => Some(None),
            _ => None,
        };
        let Some(object) = deleted else {
            self.out.retries += 1;
            self.retry.push_back(c);
            return;
        };
        let key = c.key();
        // A retried deletion may already have gone through: the first
        // answer that had the object says what it was.
        let known = self.out.deleted.get(&key).cloned().flatten();
        if known.is_none() {
            self.out.deletes += 1;
        }
        if let Some(pvc) = &object
            && known.is_none()
        {
            let bound = pvc
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.as_deref())
                .is_some_and(|v| !v.is_empty());
            if !bound {
                self.out.deleted_mid_flight += 1;
                if pvc.finalizers().iter().any(|f| f == FINALIZER) {
                    self.out.held_by_intent += 1;
                }
            }
        }
        let uid = object.and_then(|o| o.metadata.uid).or(known);
        self.out.deleted.insert(key, uid);
    }
}

// ---------------------------------------------------------------------------
// The chaos side: owns the cluster, kills and restarts.

/// A controller replica: its index in `env.berth.controllers`, identity
/// and metrics port.
#[derive(Clone)]
struct Replica {
    idx: usize,
    identity: String,
    metrics: u16,
}

#[derive(Debug, Default)]
struct Kills {
    leader: usize,
    agent: usize,
    apiserver: usize,
    etcd: usize,
    /// berth processes that exited by themselves and were restarted.
    exits: BTreeMap<String, usize>,
}

struct Chaotic {
    env: Cluster,
    replicas: Vec<Replica>,
    started: usize,
    kills: Kills,
    /// Per kill of an agent: its node, `berth_orphaned_volumes_deleted_total`
    /// read just before, and the orphan deletions its log had said just
    /// before and just after that read.
    orphan_reads: Vec<(String, u64, usize, usize)>,
}

fn metric(page: &str, name: &str) -> Option<u64> {
    page.lines()
        .find(|l| l.split(' ').next() == Some(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

impl Chaotic {
    fn start_replica(&mut self) -> Replica {
        self.started += 1;
        let identity = format!("controller-{}", self.started);
        let port = free_port();
        let mut flags = leader_election_flags(&identity);
        flags.push(format!("--metrics-address=127.0.0.1:{port}"));
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        self.env
            .berth
            .add_controller(&flags)
            .expect("start a controller");
        Replica {
            idx: self.env.berth.controllers.len() - 1,
            identity,
            metrics: port,
        }
    }

    /// What a kubelet does: restarts a berth process that exited.
    fn supervise(&mut self) {
        for slot in 0..self.replicas.len() {
            let idx = self.replicas[slot].idx;
            if !self.env.berth.controllers[idx].running() {
                *self.kills.exits.entry("controller".into()).or_default() += 1;
                self.replicas[slot] = self.start_replica();
            }
        }
        for a in &mut self.env.berth.agents {
            if !a.daemon.as_mut().is_some_and(|d| d.running()) {
                *self.kills.exits.entry("agent".into()).or_default() += 1;
                a.restart().expect("restart an agent");
            }
        }
    }

    /// Sleeps `d` while supervising.
    async fn idle(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.supervise();
            tokio::time::sleep(Duration::from_millis(200).min(until - Instant::now())).await;
        }
    }

    async fn lease_holder(&self) -> Option<String> {
        let leases: Api<Lease> = Api::namespaced(self.env.client.clone(), "berth-system");
        call(leases.get_opt(LEASE))
            .await
            .ok()??
            .spec?
            .holder_identity
    }

    async fn run(&mut self, e: &Event) {
        match e.kind {
            Chaos::Leader => {
                // The live replica the Lease names (a killed leader's
                // lease runs out first).
                let deadline = Instant::now() + Duration::from_secs(40);
                let slot = loop {
                    let holder = self.lease_holder().await;
                    if let Some(slot) = self
                        .replicas
                        .iter()
                        .position(|r| Some(&r.identity) == holder.as_ref())
                        && self.env.berth.controllers[self.replicas[slot].idx].running()
                    {
                        break slot;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "no live controller held the lease for 40 s (holder {holder:?})\n{}",
                        self.env.logs()
                    );
                    self.idle(Duration::from_millis(300)).await;
                };
                self.env.berth.controllers[self.replicas[slot].idx].kill();
                self.kills.leader += 1;
                tokio::time::sleep(e.down).await;
                self.replicas[slot] = self.start_replica();
            }
            Chaos::Agent => {
                let node = node_name(e.node);
                let agent = self.env.agent(&node);
                let port = agent.metrics_port;
                // The counter between two reads of the log: the sweep
                // counts a deletion and logs it in the same breath.
                let before = current_log(self.env.agent(&node))
                    .matches(SWEPT_LINE)
                    .count();
                let page = berth_tests::try_http_get(port, "/metrics").await;
                let after = current_log(self.env.agent(&node))
                    .matches(SWEPT_LINE)
                    .count();
                if let Some(n) = page
                    .ok()
                    .and_then(|p| metric(&p, "berth_orphaned_volumes_deleted_total"))
                {
                    self.orphan_reads.push((node.clone(), n, before, after));
                }
                self.env.agent(&node).kill();
                self.kills.agent += 1;
                tokio::time::sleep(e.down).await;
                self.env.agent(&node).restart().expect("restart the agent");
            }
            Chaos::ApiServer => {
                self.env
                    .cp
                    .restart_apiserver()
                    .await
                    .unwrap_or_else(|e| panic!("kube-apiserver after its kill: {e}"));
                self.kills.apiserver += 1;
            }
            Chaos::Etcd => {
                self.env
                    .cp
                    .restart_etcd()
                    .await
                    .unwrap_or_else(|e| panic!("etcd after its restart: {e}"));
                self.kills.etcd += 1;
            }
        }
    }
}

/// The log of the agent's current run.
fn current_log(a: &berth_tests::control_plane::Agent) -> String {
    a.daemon
        .as_ref()
        .map(|d| std::fs::read_to_string(&d.log).unwrap_or_default())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// The end state.

/// What is wrong with the cluster now; empty once it settled.
#[derive(Debug, Default)]
struct Findings {
    /// A volume without a PV, a Delete PV without its claim.
    leaks: Vec<String>,
    /// A claim with two PVs, a volume named twice or on two nodes.
    duplicates: Vec<String>,
    /// A PV whose volume is not on its node.
    lost: Vec<String>,
    /// Anything else not (yet) as it must end: unbound claims, objects
    /// being deleted, finalizers left, deleted claims still there.
    unsettled: Vec<String>,
    /// Figures of the settled state.
    live_claims: usize,
    pvs: usize,
    retained: usize,
    volumes: usize,
}

impl Findings {
    fn settled(&self) -> bool {
        self.leaks.is_empty()
            && self.duplicates.is_empty()
            && self.lost.is_empty()
            && self.unsettled.is_empty()
    }

    fn report(&self) -> String {
        let mut out = String::new();
        for (what, list) in [
            ("leaks", &self.leaks),
            ("duplicates", &self.duplicates),
            ("lost", &self.lost),
            ("unsettled", &self.unsettled),
        ] {
            if !list.is_empty() {
                out.push_str(&format!("{what} ({}):\n", list.len()));
                for l in list.iter().take(40) {
                    out.push_str(&format!("  {l}\n"));
                }
            }
        }
        out
    }
}

/// Volume ids in an agent's store, from ListVolumes on its socket.
async fn store_volumes(a: &berth_tests::control_plane::Agent) -> Result<Vec<String>, String> {
    use csi_proto::controller_client::ControllerClient;
    let channel = csi_proto::connect_unix(a.socket())
        .await
        .map_err(|e| e.to_string())?;
    let mut client = ControllerClient::new(channel);
    let mut ids = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_volumes(csi_proto::ListVolumesRequest {
                starting_token: token.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        ids.extend(
            page.entries
                .into_iter()
                .filter_map(|e| e.volume.map(|v| v.volume_id)),
        );
        if page.next_token.is_empty() {
            ids.sort();
            return Ok(ids);
        }
        token = page.next_token;
    }
}

async fn end_state(env: &Cluster, namespaces: &[String], w: &Workload) -> Findings {
    let mut f = Findings::default();
    let mut claims = Vec::new();
    for ns in namespaces {
        match call(env.claims(ns).list(&ListParams::default())).await {
            Ok(list) => claims.extend(list.items),
            Err(e) => f.unsettled.push(format!("listing claims in {ns}: {e}")),
        }
        match call(env.pods(ns).list(&ListParams::default())).await {
            Ok(list) => f.unsettled.extend(
                list.items
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_some())
                    .map(|p| format!("pod {ns}/{} is being deleted", p.name_any())),
            ),
            Err(e) => f.unsettled.push(format!("listing pods in {ns}: {e}")),
        }
    }
    let pvs: Vec<PersistentVolume> = env.berth_pvs().await;

    // Claims.
    let mut by_uid: HashMap<String, &PersistentVolumeClaim> = HashMap::new();
    for c in &claims {
        let key = format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any());
        let uid = c.metadata.uid.clone().unwrap_or_default();
        if w.deleted.contains_key(&key) {
            f.unsettled.push(format!(
                "claim {key} was deleted but is still there (finalizers {:?})",
                c.finalizers()
            ));
            continue;
        }
        if c.metadata.deletion_timestamp.is_some() {
            f.unsettled.push(format!(
                "claim {key} is being deleted: {:?}",
                c.finalizers()
            ));
            continue;
        }
        by_uid.insert(uid.clone(), c);
        let phase = c.status.as_ref().and_then(|s| s.phase.as_deref());
        let volume = c
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .unwrap_or_default();
        if phase != Some("Bound") || volume.is_empty() {
            f.unsettled
                .push(format!("claim {key} is {phase:?}, volume {volume:?}"));
            continue;
        }
        if volume != format!("pvc-{uid}") {
            f.unsettled
                .push(format!("claim {key} is bound to {volume}, not its own PV"));
        }
        if c.finalizers().iter().any(|x| x == FINALIZER) {
            f.unsettled
                .push(format!("bound claim {key} still carries {FINALIZER}"));
        }
        let mine: Vec<&PersistentVolume> = pvs
            .iter()
            .filter(|pv| {
                pv.spec
                    .as_ref()
                    .and_then(|s| s.claim_ref.as_ref())
                    .and_then(|r| r.uid.as_deref())
                    == Some(uid.as_str())
            })
            .collect();
        match mine.len() {
            1 if mine[0].name_any() == volume => {}
            1 => f.unsettled.push(format!(
                "claim {key}: its PV {} is not the one it is bound to ({volume})",
                mine[0].name_any()
            )),
            0 => f.unsettled.push(format!("claim {key}: no PV names it")),
            n => f.duplicates.push(format!(
                "claim {key} has {n} PVs: {:?}",
                mine.iter().map(|p| p.name_any()).collect::<Vec<_>>()
            )),
        }
    }
    f.live_claims = by_uid.len();

    // PVs.
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut named: HashMap<String, String> = HashMap::new();
    for pv in &pvs {
        let name = pv.name_any();
        if pv.metadata.deletion_timestamp.is_some() {
            f.unsettled
                .push(format!("PV {name} is being deleted: {:?}", pv.finalizers()));
        }
        let spec = pv.spec.as_ref();
        let policy = spec
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
            .unwrap_or("Delete");
        let claim_uid = spec
            .and_then(|s| s.claim_ref.as_ref())
            .and_then(|r| r.uid.clone())
            .unwrap_or_default();
        if !by_uid.contains_key(&claim_uid) {
            if policy == "Retain" {
                f.retained += 1;
            } else {
                f.leaks.push(format!(
                    "PV {name} ({policy}) outlives its claim {claim_uid}"
                ));
            }
        }
        let nodes = affinity_nodes(pv);
        let Some(handle) = volume_handle(pv) else {
            f.unsettled.push(format!("PV {name} has no CSI volume"));
            continue;
        };
        if nodes.len() != 1 {
            f.unsettled
                .push(format!("PV {name} names {} nodes: {nodes:?}", nodes.len()));
            continue;
        }
        if let Some(other) = named.insert(handle.clone(), name.clone()) {
            f.duplicates.push(format!(
                "volume {handle} is named by PVs {other} and {name}"
            ));
        }
        wanted.entry(nodes[0].clone()).or_default().insert(handle);
    }
    f.pvs = pvs.len();

    // Disks and stores.
    let mut seen: HashMap<String, String> = HashMap::new();
    for a in &env.berth.agents {
        let on_disk: BTreeSet<String> = a.volumes_on_disk().into_iter().collect();
        f.volumes += on_disk.len();
        match store_volumes(a).await {
            Ok(store) => {
                let store: BTreeSet<String> = store.into_iter().collect();
                if store != on_disk {
                    f.unsettled.push(format!(
                        "node {}: store and disk disagree: only in the store {:?}, only on disk {:?}",
                        a.node,
                        store.difference(&on_disk).collect::<Vec<_>>(),
                        on_disk.difference(&store).collect::<Vec<_>>()
                    ));
                }
            }
            Err(e) => f
                .unsettled
                .push(format!("node {}: ListVolumes: {e}", a.node)),
        }
        let want = wanted.get(&a.node).cloned().unwrap_or_default();
        for v in on_disk.difference(&want) {
            f.leaks.push(format!(
                "volume {v} on {} has no PV naming it there",
                a.node
            ));
        }
        for v in want.difference(&on_disk) {
            f.lost.push(format!(
                "volume {v} of a PV on {} is not on its disk",
                a.node
            ));
        }
        for v in &on_disk {
            if let Some(other) = seen.insert(v.clone(), a.node.clone()) {
                f.duplicates
                    .push(format!("volume {v} is on {other} and on {}", a.node));
            }
        }
    }
    for node in wanted.keys() {
        if !env.berth.agents.iter().any(|a| &a.node == node) {
            f.lost
                .push(format!("PVs name node {node}, which has no agent"));
        }
    }
    f
}

/// The claim uids of the orphan deletions logged in `log`.
fn swept_uids(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(SWEPT_LINE))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|t| t.strip_prefix("claim_uid="))
                .map(str::to_string)
        })
        .collect()
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_chaos_soak_leaks_nothing_and_doubles_nothing() {
    let p = profile();
    let seed = match std::env::var("BERTH_SOAK_SEED") {
        Ok(s) => s.trim().parse().expect("BERTH_SOAK_SEED is a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_nanos() as u64,
    };
    let replay = format!(
        "{}BERTH_SOAK_SEED={seed} cargo test --release -p {PACKAGE} --test e2e_chaos",
        if p.name == "long" {
            "BERTH_SOAK=long "
        } else {
            ""
        }
    );
    let _replay = Replay(replay.clone());
    println!(
        "chaos soak: profile {}, seed {seed} (replay: {replay})",
        p.name
    );
    let mut rng = Rng(seed);
    let plan = schedule(&p, &mut rng);
    let workload_rng = rng.fork();
    println!(
        "chaos schedule: {}",
        plan.iter()
            .map(|e| match e.kind {
                Chaos::Agent => format!("+{:.1}s agent {}", e.gap.as_secs_f32(), node_name(e.node)),
                k => format!("+{:.1}s {k:?}", e.gap.as_secs_f32()),
            })
            .collect::<Vec<_>>()
            .join(", ")
    );

    // The cluster.
    let started = Instant::now();
    let mut env = Cluster::start_node_local(&[]).await;
    let nodes: Vec<String> = (0..p.nodes).map(node_name).collect();
    for n in &nodes {
        env.add_node(NodeSpec::new(n, "16Gi"), &SWEEP).await;
    }
    let namespaces: Vec<String> = (0..p.namespaces).map(namespace_name).collect();
    for ns in &namespaces {
        env.namespace(ns).await;
    }
    env.class(IMMEDIATE, "Immediate", "Delete", json!({})).await;
    env.class(WFFC, "WaitForFirstConsumer", "Delete", json!({}))
        .await;
    env.class(RETAIN, "Immediate", "Retain", json!({})).await;
    for class in [IMMEDIATE, WFFC, RETAIN] {
        env.wait_capacities(class).await;
    }
    for ns in &namespaces {
        // Pods are admitted once their namespace's ServiceAccount exists.
        let sas: Api<ServiceAccount> = Api::namespaced(env.client.clone(), ns);
        env.wait(
            &format!("the default ServiceAccount of {ns}"),
            Duration::from_secs(60),
            || {
                let sas = sas.clone();
                async move { sas.get_opt("default").await.ok().flatten().map(|_| ()) }
            },
        )
        .await;
    }
    let mut chaos = Chaotic {
        env,
        replicas: Vec::new(),
        started: 0,
        kills: Kills::default(),
        orphan_reads: Vec::new(),
    };
    for _ in 0..2 {
        let r = chaos.start_replica();
        chaos.replicas.push(r);
    }
    println!("cluster up in {:.1}s", started.elapsed().as_secs_f32());

    // Load and chaos.
    let stop = Arc::new(AtomicBool::new(false));
    let load = Load {
        client: chaos.env.client.clone(),
        rng: workload_rng,
        p: profile(),
        seq: 0,
        live: Vec::new(),
        pods_due: VecDeque::new(),
        deletions_due: Vec::new(),
        retry: VecDeque::new(),
        out: Workload::default(),
    };
    let load_started = Instant::now();
    let workload = tokio::spawn(load.run(stop.clone()));
    for e in &plan {
        chaos.idle(e.gap).await;
        chaos.run(e).await;
    }
    chaos.idle(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let w = match workload.await {
        Ok(w) => w,
        Err(e) => panic!("the workload failed: {e}\n{}", chaos.env.logs()),
    };
    let load = load_started.elapsed();

    // Settle: converged, then still the same a while later.
    let settle_started = Instant::now();
    let deadline = settle_started + p.settle;
    let findings = loop {
        chaos.supervise();
        let f = end_state(&chaos.env, &namespaces, &w).await;
        if f.settled() {
            break f;
        }
        if Instant::now() > deadline {
            panic!(
                "not settled {:?} after the load stopped (seed {seed}):\n{}\n{}",
                p.settle,
                f.report(),
                chaos.env.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let settle = settle_started.elapsed();
    // Longer than a sweep's grace: nothing must move any more.
    chaos.idle(Duration::from_secs(5)).await;
    let again = end_state(&chaos.env, &namespaces, &w).await;
    assert!(
        again.settled() && (again.pvs, again.volumes) == (findings.pvs, findings.volumes),
        "the settled state changed (seed {seed}): {} PVs / {} volumes, then {} / {}:\n{}",
        findings.pvs,
        findings.volumes,
        again.pvs,
        again.volumes,
        again.report()
    );
    assert_eq!(
        findings.volumes, findings.pvs,
        "one volume per PV (seed {seed})"
    );

    // The orphan sweep's counter against the agents' own words.
    let deleted_uids: BTreeSet<String> = w.deleted.values().flatten().cloned().collect();
    let mut swept = 0;
    for a in &chaos.env.berth.agents {
        let all = a.all_logs();
        let uids = swept_uids(&all);
        for uid in &uids {
            assert!(
                deleted_uids.contains(uid),
                "{} swept the volume of claim uid {uid}, which the test never deleted (seed {seed})",
                a.node
            );
        }
        swept += uids.len();
        let page = berth_tests::http_get(a.metrics_port, "/metrics").await;
        let counted = metric(&page, "berth_orphaned_volumes_deleted_total");
        let logged = current_log(a).matches(SWEPT_LINE).count() as u64;
        assert_eq!(
            counted,
            Some(logged),
            "{}: berth_orphaned_volumes_deleted_total against the orphan deletions its current run logged (seed {seed})",
            a.node
        );
    }
    for (node, counted, before, after) in &chaos.orphan_reads {
        assert!(
            (*before..=*after).contains(&(*counted as usize)),
            "{node}: before a kill the counter said {counted}, its log {before}..{after} (seed {seed})"
        );
    }

    // One leader, the one the Lease names, says so (a leader that exited
    // with the last outage is replaced once its lease runs out).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let holder = chaos.lease_holder().await;
        let mut leaders = Vec::new();
        for r in &chaos.replicas {
            let page = berth_tests::try_http_get(r.metrics, "/metrics")
                .await
                .unwrap_or_default();
            if metric(&page, "berth_controller_leader") == Some(1) {
                leaders.push(r.identity.clone());
            }
        }
        if holder.is_some() && leaders.iter().map(Some).collect::<Vec<_>>() == [holder.as_ref()] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "exactly one live controller leads, the Lease's holder {holder:?}: {leaders:?} say they lead (seed {seed})"
        );
        chaos.idle(Duration::from_millis(500)).await;
    }

    let k = &chaos.kills;
    println!(
        "chaos soak summary: profile {} seed {seed}: {} operations ({} claims created, {} of them uncertain, {} pods, {} deletions, {} retried calls) in {:.0}s of load; kills: {} controller leader, {} node agent, {} kube-apiserver, {} etcd restarts; berth exits restarted: {:?}; claims deleted mid-flight: {} ({} held by the provisioning finalizer); orphans swept: {swept}; end: {} live claims, {} PVs ({} retained), {} volumes; leaks: {}, duplicates: {}, lost: {}; time to settle: {:.1}s; total {:.0}s",
        p.name,
        w.operations(),
        w.creates,
        w.uncertain_creates,
        w.pods,
        w.deletes,
        w.retries,
        load.as_secs_f32(),
        k.leader,
        k.agent,
        k.apiserver,
        k.etcd,
        k.exits,
        w.deleted_mid_flight,
        w.held_by_intent,
        findings.live_claims,
        findings.pvs,
        findings.retained,
        findings.volumes,
        findings.leaks.len(),
        findings.duplicates.len(),
        findings.lost.len(),
        settle.as_secs_f32(),
        started.elapsed().as_secs_f32(),
    );
    assert!(
        w.deleted_mid_flight > 0,
        "the workload deleted no claim mid-flight (seed {seed})"
    );
}
