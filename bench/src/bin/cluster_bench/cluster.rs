//! One measured run's world: a fresh control plane with one fake node, the
//! berth CSI driver on a socket, the objects a comparison creates, the
//! processes under test (berth controller, csi-provisioner, a binder-only
//! kube-controller-manager) and the watch that sees claims become Bound.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::time::{Duration, Instant};

use berth_tests::berth_bin;
use berth_tests::control_plane::{self, ControlPlane, ControlPlaneError, Daemon, Options};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::watch;

use crate::requests::Counts;

pub const DRIVER: &str = "csi.berth.dev";
pub const NODE: &str = "bench-node";
pub const NAMESPACE: &str = "bench";
const TOPOLOGY_KEY: &str = "topology.csi.berth.dev/node";

/// How long a process under test gets to connect before work is created.
/// The same for every side; the timed part starts after it.
const SETTLE: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    ControlPlane(#[from] ControlPlaneError),
    #[error("starting {what}: {source}")]
    Start {
        what: String,
        source: std::io::Error,
    },
    #[error("{what} exited before the run finished:\n{log}")]
    Exited { what: String, log: String },
    #[error("{what}: timed out after {after:?} with {done} of {want} done\n{logs}")]
    Timeout {
        what: String,
        after: Duration,
        done: usize,
        want: usize,
        logs: String,
    },
    #[error("kubernetes API, {what}: {source}")]
    Kube { what: String, source: kube::Error },
    /// A side cannot run at all: a peer failed to build, a flag is missing.
    #[error("{0}")]
    Unavailable(String),
}

fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Kube { what, source }
}

/// A fresh control plane for one run, and the processes started on it.
/// Dropping it stops the processes before the API server they talk to.
pub struct Cluster {
    pub client: Client,
    daemons: Vec<Daemon>,
    cp: ControlPlane,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.daemons.clear();
        self.cp.stop();
    }
}

impl Cluster {
    /// A control plane without kube-scheduler (every class here binds
    /// Immediately), one Ready node with the driver registered on it, and
    /// the `bench` namespace.
    pub async fn start(stock_binder: bool) -> Result<Cluster, BenchError> {
        let cp = ControlPlane::start_with(Options {
            stock_binder,
            scheduler: false,
            ..Options::default()
        })
        .await?;
        let client = cp.client().await?;
        let labels = BTreeMap::from([(TOPOLOGY_KEY.to_string(), NODE.to_string())]);
        cp.create_node(NODE, &labels).await?;
        cp.register_csi_node(NODE, DRIVER, NODE, &[TOPOLOGY_KEY], None)
            .await?;
        let cluster = Cluster {
            client,
            daemons: Vec::new(),
            cp,
        };
        let ns: Namespace = object(json!({ "metadata": { "name": NAMESPACE } }));
        Api::<Namespace>::all(cluster.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .map_err(kube_err("creating the bench namespace"))?;
        Ok(cluster)
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.cp.kubeconfig
    }

    fn dir(&self) -> &Path {
        self.cp.dir()
    }

    /// A driver's directory `name` (state and data made) and the driver
    /// flags both `berth csi` and `berth node` take: its socket, the bench
    /// node, state, data and capacity.
    fn driver_dir(&self, name: &str) -> Result<(PathBuf, Vec<String>), BenchError> {
        let dir = self.dir().join(name);
        let socket = dir.join("csi.sock");
        for sub in ["state", "data"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|source| BenchError::Start {
                what: format!("creating {}", dir.join(sub).display()),
                source,
            })?;
        }
        let args = vec![
            format!("--endpoint=unix://{}", socket.display()),
            format!("--node-id={NODE}"),
            format!("--state-dir={}", dir.join("state").display()),
            format!("--data-dir={}", dir.join("data").display()),
            // Claims ask for 1Mi each; room for any --size.
            "--capacity=100Ti".to_string(),
        ];
        Ok((socket, args))
    }

    /// `berth csi` serving every CSI service on `csi.sock`; returns the
    /// socket and the process's handle once the socket exists.
    pub async fn start_driver(&mut self) -> Result<(PathBuf, usize), BenchError> {
        let (socket, mut args) = self.driver_dir("driver")?;
        args.insert(0, "csi".to_string());
        let idx = self.spawn("berth csi", &berth_bin(), &args)?;
        self.wait_socket(idx, &socket).await?;
        Ok((socket, idx))
    }

    /// `berth node` for the bench node, as deploy/node.yaml runs it
    /// (its own CSI socket, state and data; capacity published in the bench
    /// namespace), with `extra` flags; returns once its socket exists.
    pub async fn start_agent(&mut self, extra: &[String]) -> Result<usize, BenchError> {
        let (socket, mut args) = self.driver_dir("agent")?;
        args.insert(0, "node".to_string());
        args.extend([
            format!("--kubeconfig={}", self.kubeconfig().display()),
            format!("--namespace={NAMESPACE}"),
            // No kubelet here: the CSINode is the harness's (Cluster::start).
            "--registration-path=".to_string(),
        ]);
        args.extend(extra.iter().cloned());
        let idx = self.spawn("berth node", &berth_bin(), &args)?;
        self.wait_socket(idx, &socket).await?;
        Ok(idx)
    }

    async fn wait_socket(&mut self, idx: usize, socket: &Path) -> Result<(), BenchError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            self.check(idx)?;
            if Instant::now() > deadline {
                return Err(BenchError::Exited {
                    what: format!("{} (no socket after 30s)", self.daemons[idx].name),
                    log: self.daemons[idx].log_tail(30),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// The API server's request counters now (`/metrics`).
    pub async fn request_counts(&self) -> Result<Counts, BenchError> {
        let req = http::Request::get("/metrics")
            .body(Vec::new())
            .map_err(|e| BenchError::Unavailable(format!("building GET /metrics: {e}")))?;
        let page = self
            .client
            .request_text(req)
            .await
            .map_err(kube_err("reading the API server's /metrics"))?;
        Ok(Counts::parse(&page))
    }

    /// Starts a process under test, lets it settle for [`SETTLE`] and checks
    /// it still runs. Returns its handle for [`Cluster::peak_rss_mib`].
    pub async fn start_side(
        &mut self,
        name: &str,
        bin: &Path,
        args: &[String],
    ) -> Result<usize, BenchError> {
        let idx = self.spawn(name, bin, args)?;
        tokio::time::sleep(SETTLE).await;
        self.check(idx)?;
        Ok(idx)
    }

    /// Starts a process without waiting (the binders are timed from spawn).
    pub fn spawn(&mut self, name: &str, bin: &Path, args: &[String]) -> Result<usize, BenchError> {
        let log = self
            .dir()
            .join(format!("{}.log", name.replace([' ', '/'], "-")));
        let d = Daemon::start(name, bin, args, log).map_err(|source| BenchError::Start {
            what: format!("{name} ({})", bin.display()),
            source,
        })?;
        self.daemons.push(d);
        Ok(self.daemons.len() - 1)
    }

    /// Fails with its log when the process `idx` has exited.
    pub fn check(&mut self, idx: usize) -> Result<(), BenchError> {
        let d = &mut self.daemons[idx];
        if d.running() {
            Ok(())
        } else {
            Err(BenchError::Exited {
                what: d.name.clone(),
                log: d.log_tail(40),
            })
        }
    }

    /// Peak resident set of process `idx` so far (`VmHWM`), in MiB.
    pub fn peak_rss_mib(&self, idx: usize) -> Option<f64> {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.daemons[idx].pid())).ok()?;
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb / 1024.0)
    }

    /// Component and process log tails, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = vec![self.cp.logs()];
        out.extend(self.daemons.iter().map(|d| d.log_tail(20)));
        out.join("\n")
    }

    /// A kube-controller-manager running nothing but the PV binder, against
    /// this control plane (started with `stock_binder: false`), with its
    /// stock flags plus `extra`.
    pub fn start_stock_binder(&mut self, extra: &[String]) -> Result<usize, BenchError> {
        let bin = control_plane::binaries()?.join("kube-controller-manager");
        let mut args = vec![
            format!("--kubeconfig={}", self.kubeconfig().display()),
            "--leader-elect=false".into(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", control_plane::free_port()),
            "--controllers=persistentvolume-binder-controller".into(),
            "--use-service-account-credentials=false".into(),
            "--v=1".into(),
        ];
        args.extend(extra.iter().cloned());
        self.spawn("kube-controller-manager (PV binder only)", &bin, &args)
    }

    /// Waits until a PV binder works: a claim of a class whose provisioner
    /// nobody runs gets the binder's storage-provisioner annotation. The
    /// claim lives in `default`, out of the bench namespace's count.
    pub async fn wait_binder_ready(&mut self, idx: usize) -> Result<(), BenchError> {
        const PROBE: &str = "probe.bench.berth.dev";
        self.create_class(PROBE, PROBE).await?;
        let mut probe = claim(0, PROBE, "1Mi");
        probe.metadata.name = Some("binder-probe".into());
        probe.metadata.namespace = Some("default".into());
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), "default");
        api.create(&PostParams::default(), &probe)
            .await
            .map_err(kube_err("creating the binder probe claim"))?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let c = api
                .get("binder-probe")
                .await
                .map_err(kube_err("reading the binder probe claim"))?;
            let annotated = c
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key("volume.kubernetes.io/storage-provisioner"));
            if annotated {
                return Ok(());
            }
            self.check(idx)?;
            if Instant::now() > deadline {
                return Err(BenchError::Timeout {
                    what: "waiting for the PV binder to annotate a probe claim".into(),
                    after: Duration::from_secs(120),
                    done: 0,
                    want: 1,
                    logs: self.logs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn create_class(&self, name: &str, provisioner: &str) -> Result<(), BenchError> {
        let sc: StorageClass = object(json!({
            "metadata": { "name": name },
            "provisioner": provisioner,
            "volumeBindingMode": "Immediate",
            "reclaimPolicy": "Delete",
        }));
        Api::<StorageClass>::all(self.client.clone())
            .create(&PostParams::default(), &sc)
            .await
            .map_err(kube_err(format!("creating StorageClass {name}")))?;
        Ok(())
    }

    /// Creates `count` objects made by `make(i)`, `concurrency` requests at a time.
    pub async fn create_all<K>(
        &self,
        api: &Api<K>,
        count: usize,
        concurrency: usize,
        make: impl Fn(usize) -> K,
    ) -> Result<(), BenchError>
    where
        K: Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
    {
        let pp = PostParams::default();
        futures::stream::iter((0..count).map(|i| Ok::<_, BenchError>(make(i))))
            .try_for_each_concurrent(concurrency.max(1), |obj| {
                let (api, pp) = (api.clone(), &pp);
                async move {
                    api.create(pp, &obj).await.map_err(kube_err(format!(
                        "creating {}",
                        obj.meta().name.as_deref().unwrap_or("?")
                    )))?;
                    Ok(())
                }
            })
            .await
    }

    pub fn claims(&self) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.client.clone(), NAMESPACE)
    }
}

/// A typed object from JSON written in this file (a bug here is ours).
pub fn object<K: DeserializeOwned>(v: serde_json::Value) -> K {
    serde_json::from_value(v).expect("a valid object")
}

/// A claim of `size` in `class`, named after `i`.
pub fn claim(i: usize, class: &str, size: &str) -> PersistentVolumeClaim {
    object(json!({
        "metadata": { "name": format!("claim-{i:05}"), "namespace": NAMESPACE },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": class,
            "resources": { "requests": { "storage": size } },
        }
    }))
}

#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    synced: bool,
    bound: usize,
    /// When the watch first saw a claim Bound.
    first_bound: Option<Instant>,
}

/// Counts the Bound claims in the bench namespace from a watch, so waiting
/// for "all Bound" costs the API server one watch rather than repeated lists.
pub struct BoundWatch {
    rx: watch::Receiver<Progress>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for BoundWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl BoundWatch {
    /// Starts the watch and returns once its initial list is in.
    pub async fn start(cluster: &Cluster) -> Result<BoundWatch, BenchError> {
        let api = cluster.claims();
        let (tx, mut rx) = watch::channel(Progress::default());
        let task = tokio::spawn(async move {
            let mut bound: HashSet<String> = HashSet::new();
            let mut synced = false;
            let mut first_bound = None;
            let mut events =
                pin!(watcher::watcher(api, watcher::Config::default()).default_backoff());
            while let Some(ev) = events.next().await {
                match ev {
                    Ok(Event::Init) => bound.clear(),
                    Ok(Event::InitDone) => synced = true,
                    Ok(Event::Apply(c) | Event::InitApply(c)) => {
                        let name = c.metadata.name.clone().unwrap_or_default();
                        let is_bound = c.status.and_then(|s| s.phase).as_deref() == Some("Bound");
                        if is_bound {
                            bound.insert(name);
                        } else {
                            bound.remove(&name);
                        }
                    }
                    Ok(Event::Delete(c)) => {
                        bound.remove(&c.metadata.name.unwrap_or_default());
                    }
                    // The backoff re-lists; nothing is lost but time.
                    Err(_) => {}
                }
                if first_bound.is_none() && !bound.is_empty() {
                    first_bound = Some(Instant::now());
                }
                tx.send_replace(Progress {
                    synced,
                    bound: bound.len(),
                    first_bound,
                });
            }
        });
        tokio::time::timeout(Duration::from_secs(60), rx.wait_for(|p| p.synced))
            .await
            .map_err(|_| BenchError::Unavailable("the claim watch did not sync in 60s".into()))?
            .map_err(|_| BenchError::Unavailable("the claim watch ended".into()))?;
        Ok(BoundWatch { rx, task })
    }

    /// When the first claim was seen Bound, if one was.
    pub fn first_bound(&self) -> Option<Instant> {
        self.rx.borrow().first_bound
    }

    /// Waits until `want` claims are Bound; checks every second that the
    /// processes `alive` still run, and gives up after `timeout`.
    pub async fn wait_all(
        &mut self,
        cluster: &mut Cluster,
        alive: &[usize],
        want: usize,
        timeout: Duration,
    ) -> Result<(), BenchError> {
        let start = Instant::now();
        loop {
            let done = tokio::time::timeout(
                Duration::from_secs(1),
                self.rx.wait_for(|p| p.bound >= want),
            )
            .await
            .is_ok_and(|r| r.is_ok());
            if done {
                return Ok(());
            }
            for &idx in alive {
                cluster.check(idx)?;
            }
            if start.elapsed() > timeout {
                return Err(BenchError::Timeout {
                    what: "waiting for every claim to be Bound".into(),
                    after: timeout,
                    done: self.rx.borrow().bound,
                    want,
                    logs: cluster.logs(),
                });
            }
        }
    }
}

/// Builds the external-provisioner (`bench/peers/build.sh provisioner`, a
/// no-op when its binary is current) and returns `csi-provisioner`; fails
/// loudly when the build does.
pub fn csi_provisioner_bin() -> Result<PathBuf, BenchError> {
    let bench = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = bench.join("peers/build.sh");
    let status = std::process::Command::new("bash")
        .arg(&script)
        .arg("provisioner")
        .status()
        .map_err(|source| BenchError::Start {
            what: script.display().to_string(),
            source,
        })?;
    if !status.success() {
        return Err(BenchError::Unavailable(format!(
            "{} provisioner exited with {status}",
            script.display()
        )));
    }
    let bin = bench.join("../.cache/bench/bin/csi-provisioner");
    if !bin.is_file() {
        return Err(BenchError::Unavailable(format!(
            "{} provisioner succeeded but left no {}",
            script.display(),
            bin.display()
        )));
    }
    Ok(bin)
}

/// The external-provisioner version pinned in bench/peers/provisioner/go.mod.
pub fn csi_provisioner_version() -> String {
    include_str!("../../../peers/provisioner/go.mod")
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("github.com/kubernetes-csi/external-provisioner/v6 ")
        })
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("?")
        .to_string()
}

/// The long flags `berth controller --help` lists, to see which of the
/// tuning and `--bind` flags this build has.
pub fn berth_controller_flags() -> Result<Vec<String>, BenchError> {
    let out = std::process::Command::new(berth_bin())
        .args(["controller", "--help"])
        .output()
        .map_err(|source| BenchError::Start {
            what: "berth controller --help".into(),
            source,
        })?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(|w| w.trim_end_matches([',', '=']).to_string())
        .collect())
}
