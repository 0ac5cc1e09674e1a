//! A real Kubernetes control plane on loopback for the end-to-end suites:
//! etcd, kube-apiserver, kube-controller-manager and kube-scheduler built by
//! `tests/k8s/build.sh` (at the versions in `tests/k8s/versions.env`), started
//! on free 127.0.0.1 ports with throwaway certificates made here with `rcgen`,
//! and torn down (killed and reaped) when the [`ControlPlane`] is dropped —
//! also when the test panics, and via `PR_SET_PDEATHSIG` when the test
//! process itself dies.
//!
//! There are no kubelets: [`ControlPlane::create_node`] writes Node objects
//! with a Ready condition, and the node-lifecycle controller is off so nothing
//! marks them NotReady or taints them. [`ControlPlane::register_csi_node`]
//! writes the CSINode a kubelet would after a CSI plugin registered.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    Event, Node, PersistentVolume, PersistentVolumeClaim, Pod, ServiceAccount,
};
use k8s_openapi::api::storage::v1::CSINode;
use kube::api::{Api, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;

/// How long the whole control plane may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug)]
pub enum ControlPlaneError {
    /// `tests/k8s/build.sh` failed or printed no directory.
    Build(String),
    Io(String, std::io::Error),
    Certs(rcgen::Error),
    /// A component exited or did not become ready; carries its log tail.
    NotReady(String),
    Kube(String),
}

impl fmt::Display for ControlPlaneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Build(m) => write!(f, "building the control plane: {m}"),
            Self::Io(what, e) => write!(f, "{what}: {e}"),
            Self::Certs(e) => write!(f, "generating certificates: {e}"),
            Self::NotReady(m) => write!(f, "control plane not ready: {m}"),
            Self::Kube(m) => write!(f, "kubernetes API: {m}"),
        }
    }
}

impl std::error::Error for ControlPlaneError {}

impl From<rcgen::Error> for ControlPlaneError {
    fn from(e: rcgen::Error) -> Self {
        Self::Certs(e)
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ControlPlaneError {
    let what = what.into();
    move |e| ControlPlaneError::Io(what, e)
}

/// Which controllers run; the defaults are the stock cluster.
#[derive(Debug, Clone)]
pub struct Options {
    /// Run kube-controller-manager's PV binder. Off for berth's `--bind` mode.
    pub stock_binder: bool,
    /// Run kube-scheduler (needed for WaitForFirstConsumer).
    pub scheduler: bool,
    /// Serve a real kubelet (tests/src/real_node.rs): the API server listens
    /// on [`REAL_NODE_API`] (the `kubernetes` Service's IP, which pods reach
    /// without kube-proxy once it is on the host's loopback), reaches the
    /// kubelet by host name with a client certificate, and admits node
    /// writes with NodeRestriction.
    pub real_node: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            stock_binder: true,
            scheduler: true,
            real_node: false,
        }
    }
}

/// Where the API server listens for a real node: the first address of
/// `--service-cluster-ip-range`, i.e. the `kubernetes` Service's ClusterIP,
/// so in-cluster clients (berth's pods) reach it as they would anywhere.
pub const REAL_NODE_API: (&str, u16) = ("10.0.0.1", 443);
/// The real node's name (the kubelet's `--hostname-override`).
pub const REAL_NODE_NAME: &str = "localhost";

struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
    /// What it was started with, to start it again the same way.
    bin: PathBuf,
    args: Vec<String>,
}

/// A running control plane. Dropping it stops every process it started.
pub struct ControlPlane {
    dir: TempDir,
    processes: Vec<Process>,
    /// `https://127.0.0.1:PORT`.
    pub server: String,
    /// Admin kubeconfig (client certificate in `system:masters`).
    pub kubeconfig: PathBuf,
    /// PEM of the cluster CA (serving and client certificates).
    pub ca_pem: String,
    /// The real node's kubelet credentials (`system:node:localhost`).
    pub node_cert: String,
    pub node_key: String,
}

/// Directory holding the binaries for the pinned versions, built on demand.
pub fn binaries() -> Result<PathBuf, ControlPlaneError> {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(dir) = built.as_ref() {
        return Ok(dir.clone());
    }
    let script = repo_root().join("tests/k8s/build.sh");
    // build.sh returns at once when the cached binaries exist, and holds a
    // file lock so test binaries running side by side build only once.
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .map_err(io(format!("running {}", script.display())))?;
    if !out.status.success() {
        return Err(ControlPlaneError::Build(format!(
            "{} exited with {}",
            script.display(),
            out.status
        )));
    }
    let dir = PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or("")
            .trim(),
    );
    if !dir.join("kube-apiserver").is_file() {
        return Err(ControlPlaneError::Build(format!(
            "no kube-apiserver in {dir:?}"
        )));
    }
    *built = Some(dir.clone());
    Ok(dir)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

struct Pki {
    ca_pem: String,
    serving_cert: String,
    serving_key: String,
    admin_cert: String,
    admin_key: String,
    sa_key: String,
    sa_pub: String,
    /// The real node's kubelet (`system:node:localhost` in `system:nodes`).
    node_cert: String,
    node_key: String,
}

/// A client certificate for `cn` in `org`, signed by `ca`.
fn client_cert(
    ca: &Issuer<'_, KeyPair>,
    cn: &str,
    org: &str,
) -> Result<(String, String), ControlPlaneError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .distinguished_name
        .push(DnType::OrganizationName, org);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let cert = params.signed_by(&key, ca)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn make_pki() -> Result<Pki, ControlPlaneError> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "berth-test-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let ca = Issuer::new(ca_params, ca_key);

    let serving_key = KeyPair::generate()?;
    let mut serving = CertificateParams::new(vec![
        "127.0.0.1".to_string(),
        "localhost".to_string(),
        "kubernetes".to_string(),
        "kubernetes.default.svc".to_string(),
        "10.0.0.1".to_string(),
    ])?;
    serving
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    serving.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let serving_cert = serving.signed_by(&serving_key, &ca)?;

    let (admin_cert, admin_key) = client_cert(&ca, "berth-test-admin", "system:masters")?;
    let (node_cert, node_key) = client_cert(
        &ca,
        &format!("system:node:{REAL_NODE_NAME}"),
        "system:nodes",
    )?;

    let sa = KeyPair::generate()?;
    Ok(Pki {
        ca_pem: ca_cert.pem(),
        serving_cert: serving_cert.pem(),
        serving_key: serving_key.serialize_pem(),
        admin_cert,
        admin_key,
        sa_key: sa.serialize_pem(),
        sa_pub: sa.public_key_pem(),
        node_cert,
        node_key,
    })
}

fn b64(data: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = data.as_bytes();
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A kubeconfig for `server` trusting `ca_pem`, authenticating either with a
/// client certificate or a bearer token.
pub fn kubeconfig_yaml(server: &str, ca_pem: &str, user: KubeconfigUser<'_>) -> String {
    let user = match user {
        KubeconfigUser::Cert { cert_pem, key_pem } => format!(
            "    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(cert_pem),
            b64(key_pem)
        ),
        KubeconfigUser::Token(token) => format!("    token: {token}\n"),
    };
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\ncurrent-context: test\nusers:\n- name: test\n  user:\n{user}",
        b64(ca_pem)
    )
}

pub enum KubeconfigUser<'a> {
    Cert { cert_pem: &'a str, key_pem: &'a str },
    Token(&'a str),
}

/// A kube client from a kubeconfig file.
pub async fn client_from(kubeconfig: &Path) -> Result<Client, ControlPlaneError> {
    let kc =
        Kubeconfig::read_from(kubeconfig).map_err(|e| ControlPlaneError::Kube(e.to_string()))?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| ControlPlaneError::Kube(e.to_string()))?;
    Client::try_from(config).map_err(|e| ControlPlaneError::Kube(e.to_string()))
}

impl ControlPlane {
    /// Starts a stock control plane (PV binder and scheduler on).
    pub async fn start() -> Result<ControlPlane, ControlPlaneError> {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Result<ControlPlane, ControlPlaneError> {
        let bin = binaries()?;
        let mut dir = tempfile::Builder::new()
            .prefix("berth-cp.")
            .tempdir()
            .map_err(io("creating the control plane's directory"))?;
        // BERTH_E2E_KEEP=1 keeps every log and data directory for a look
        // after the test (the path is printed).
        if std::env::var_os("BERTH_E2E_KEEP").is_some() {
            dir.disable_cleanup(true);
            eprintln!("control plane directory kept: {}", dir.path().display());
        }
        let d = dir.path().to_path_buf();
        let pki = make_pki()?;
        let write = |name: &str, data: &str| -> Result<String, ControlPlaneError> {
            let p = d.join(name);
            fs::write(&p, data).map_err(io(format!("writing {}", p.display())))?;
            Ok(p.display().to_string())
        };
        let ca = write("ca.crt", &pki.ca_pem)?;
        let tls_cert = write("apiserver.crt", &pki.serving_cert)?;
        let tls_key = write("apiserver.key", &pki.serving_key)?;
        let sa_key = write("sa.key", &pki.sa_key)?;
        let sa_pub = write("sa.pub", &pki.sa_pub)?;

        let etcd_client = free_port();
        let etcd_peer = free_port();
        let (api_host, api_port) = if options.real_node {
            (REAL_NODE_API.0, REAL_NODE_API.1)
        } else {
            ("127.0.0.1", free_port())
        };
        let server = format!("https://{api_host}:{api_port}");
        let kubeconfig = d.join("admin.kubeconfig");
        let admin = kubeconfig_yaml(
            &server,
            &pki.ca_pem,
            KubeconfigUser::Cert {
                cert_pem: &pki.admin_cert,
                key_pem: &pki.admin_key,
            },
        );
        let kc = write("admin.kubeconfig", &admin)?;

        let mut cp = ControlPlane {
            dir,
            processes: Vec::new(),
            server,
            kubeconfig,
            ca_pem: pki.ca_pem.clone(),
            node_cert: pki.node_cert.clone(),
            node_key: pki.node_key.clone(),
        };

        let etcd_url = format!("http://127.0.0.1:{etcd_client}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer}");
        cp.spawn(
            "etcd",
            &bin.join("etcd"),
            &[
                "--name=default".into(),
                format!("--data-dir={}", d.join("etcd").display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=default={peer_url}"),
                "--unsafe-no-fsync=true".into(),
                "--log-level=warn".into(),
            ],
        )?;
        let mut api_args = vec![
            format!("--etcd-servers={etcd_url}"),
            format!("--bind-address={api_host}"),
            format!("--advertise-address={api_host}"),
            format!("--secure-port={api_port}"),
            "--endpoint-reconciler-type=none".into(),
            format!("--cert-dir={}", d.join("certs").display()),
            format!("--tls-cert-file={tls_cert}"),
            format!("--tls-private-key-file={tls_key}"),
            format!("--client-ca-file={ca}"),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={sa_pub}"),
            format!("--service-account-signing-key-file={sa_key}"),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            "--authorization-mode=Node,RBAC".into(),
            "--allow-privileged=true".into(),
            "--v=1".into(),
        ];
        if options.real_node {
            // `kubectl exec/logs` reach the kubelet by its name (it serves
            // on loopback only), as the apiserver's own client.
            let (cert, key) = (&pki.admin_cert, &pki.admin_key);
            api_args.extend([
                format!(
                    "--kubelet-client-certificate={}",
                    write("kubelet-client.crt", cert)?
                ),
                format!("--kubelet-client-key={}", write("kubelet-client.key", key)?),
                "--kubelet-preferred-address-types=Hostname".into(),
                "--enable-admission-plugins=NodeRestriction".into(),
            ]);
        }
        cp.spawn("kube-apiserver", &bin.join("kube-apiserver"), &api_args)?;

        let client = client_from(&cp.kubeconfig).await?;
        cp.wait_ready(&client, "/readyz").await?;

        // Fake nodes have no kubelet to keep them Ready, so node-lifecycle
        // is off for them; a real kubelet's node needs it to lose the
        // not-ready taint it is born with.
        let mut controllers = if options.real_node {
            "*".to_string()
        } else {
            "*,-node-lifecycle-controller".to_string()
        };
        if !options.stock_binder {
            controllers.push_str(",-persistentvolume-binder-controller");
        }
        cp.spawn(
            "kube-controller-manager",
            &bin.join("kube-controller-manager"),
            &[
                format!("--kubeconfig={kc}"),
                "--leader-elect=false".into(),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={}", free_port()),
                format!("--controllers={controllers}"),
                format!("--service-account-private-key-file={sa_key}"),
                format!("--root-ca-file={ca}"),
                "--use-service-account-credentials=false".into(),
                "--v=1".into(),
            ],
        )?;
        if options.scheduler {
            cp.spawn(
                "kube-scheduler",
                &bin.join("kube-scheduler"),
                &[
                    format!("--kubeconfig={kc}"),
                    "--leader-elect=false".into(),
                    "--bind-address=127.0.0.1".into(),
                    format!("--secure-port={}", free_port()),
                    "--v=1".into(),
                ],
            )?;
        }
        // The controller manager is working once it made the default
        // namespace's ServiceAccount (pods cannot be created before that).
        cp.wait_for_default_service_account(&client).await?;
        Ok(cp)
    }

    fn spawn(
        &mut self,
        name: &'static str,
        bin: &Path,
        args: &[String],
    ) -> Result<(), ControlPlaneError> {
        let log = self.dir.path().join(format!("{name}.log"));
        let child = launch(bin, args, &log, false)?;
        self.processes.push(Process {
            name,
            child,
            log,
            bin: bin.to_path_buf(),
            args: args.to_vec(),
        });
        Ok(())
    }

    fn process(&mut self, name: &str) -> Result<&mut Process, ControlPlaneError> {
        self.processes
            .iter_mut()
            .find(|p| p.name == name)
            .ok_or_else(|| ControlPlaneError::NotReady(format!("no component named {name}")))
    }

    /// Stops the component `name` (SIGKILL when `crash`, else SIGTERM with
    /// a grace period), reaps it and starts it again with the same binary
    /// and arguments (so the same ports, certificates and data directory);
    /// its log goes on in the same file. Returns at once: wait for what
    /// depends on it, e.g. with [`ControlPlane::wait_api_ready`].
    pub fn restart_component(&mut self, name: &str, crash: bool) -> Result<(), ControlPlaneError> {
        let p = self.process(name)?;
        if crash {
            let _ = p.child.kill();
            let _ = p.child.wait();
        } else {
            stop_child(&mut p.child, Duration::from_secs(10));
        }
        p.child = launch(&p.bin, &p.args, &p.log, true)?;
        Ok(())
    }

    /// kill -9 of kube-apiserver, started again on the same port,
    /// certificates and flags; returns once `/readyz` is ok.
    pub async fn restart_apiserver(&mut self) -> Result<(), ControlPlaneError> {
        self.restart_component("kube-apiserver", true)?;
        self.wait_api_ready().await
    }

    /// etcd stopped (SIGTERM) and started again on the same data directory
    /// and ports; returns once the API server's `/readyz` is ok again.
    pub async fn restart_etcd(&mut self) -> Result<(), ControlPlaneError> {
        self.restart_component("etcd", false)?;
        self.wait_api_ready().await
    }

    /// Waits until the API server's `/readyz` is ok (its storage included),
    /// failing with the log tail of any component that exited meanwhile.
    pub async fn wait_api_ready(&mut self) -> Result<(), ControlPlaneError> {
        let client = client_from(&self.kubeconfig).await?;
        self.wait_ready(&client, "/readyz").await
    }

    /// Fails with the log tail of the first component that exited.
    fn check_alive(&mut self) -> Result<(), ControlPlaneError> {
        for p in &mut self.processes {
            if let Ok(Some(status)) = p.child.try_wait() {
                return Err(ControlPlaneError::NotReady(format!(
                    "{} exited ({status}):\n{}",
                    p.name,
                    log_tail(&p.log, 40)
                )));
            }
        }
        Ok(())
    }

    async fn wait_ready(&mut self, client: &Client, path: &str) -> Result<(), ControlPlaneError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.check_alive()?;
            let req = http::Request::get(path)
                .body(Vec::new())
                .expect("a valid request");
            match client.request_text(req).await {
                Ok(body) if body.trim() == "ok" => return Ok(()),
                _ if Instant::now() > deadline => {
                    return Err(ControlPlaneError::NotReady(format!(
                        "{path} not ok after {READY_TIMEOUT:?}:\n{}",
                        self.logs()
                    )));
                }
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    async fn wait_for_default_service_account(
        &mut self,
        client: &Client,
    ) -> Result<(), ControlPlaneError> {
        let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.check_alive()?;
            if let Ok(Some(_)) = sas.get_opt("default").await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(ControlPlaneError::NotReady(format!(
                    "no default ServiceAccount after {READY_TIMEOUT:?}:\n{}",
                    self.logs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// An admin client.
    pub async fn client(&self) -> Result<Client, ControlPlaneError> {
        client_from(&self.kubeconfig).await
    }

    /// A scratch directory that lives as long as the control plane.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Process ids of the components, to check that none survives.
    pub fn pids(&self) -> Vec<u32> {
        self.processes.iter().map(|p| p.child.id()).collect()
    }

    /// Process id of one component (`kube-controller-manager`, …).
    pub fn pid_of(&self, name: &str) -> Option<u32> {
        self.processes
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.child.id())
    }

    /// The last lines of every component's log, for failure messages.
    pub fn logs(&self) -> String {
        self.processes
            .iter()
            .map(|p| format!("--- {} ---\n{}", p.name, log_tail(&p.log, 20)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Writes a kubeconfig that authenticates with `token` and returns its path.
    pub fn token_kubeconfig(&self, name: &str, token: &str) -> Result<PathBuf, ControlPlaneError> {
        let p = self.dir.path().join(format!("{name}.kubeconfig"));
        let yaml = kubeconfig_yaml(&self.server, &self.ca_pem, KubeconfigUser::Token(token));
        fs::write(&p, yaml).map_err(io(format!("writing {}", p.display())))?;
        Ok(p)
    }

    /// Creates a Node that looks like a registered, Ready kubelet's, with room
    /// for pods. Nothing marks it NotReady later (node-lifecycle is off).
    pub async fn create_node(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Node, ControlPlaneError> {
        let client = self.client().await?;
        let nodes: Api<Node> = Api::all(client);
        let mut all_labels = labels.clone();
        all_labels.insert("kubernetes.io/hostname".into(), name.into());
        all_labels.insert("kubernetes.io/os".into(), "linux".into());
        all_labels.insert("kubernetes.io/arch".into(), "amd64".into());
        let node: Node = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": { "name": name, "labels": all_labels },
            "spec": {},
        }))
        .expect("a valid Node");
        nodes
            .create(&PostParams::default(), &node)
            .await
            .map_err(|e| ControlPlaneError::Kube(format!("creating node {name}: {e}")))?;
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let status = serde_json::json!({
            "status": {
                "capacity": { "cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi" },
                "allocatable": { "cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi" },
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": now, "lastTransitionTime": now,
                }],
                "addresses": [{ "type": "InternalIP", "address": "127.0.0.1" }, { "type": "Hostname", "address": name }],
                "nodeInfo": {
                    "architecture": "amd64", "bootID": "", "containerRuntimeVersion": "fake://0",
                    "kernelVersion": "", "kubeProxyVersion": "", "kubeletVersion": "v1.36.3",
                    "machineID": "", "operatingSystem": "linux", "osImage": "fake", "systemUUID": "",
                },
            }
        });
        nodes
            .patch_status(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&status),
            )
            .await
            .map_err(|e| ControlPlaneError::Kube(format!("setting node {name} Ready: {e}")))?;
        // The TaintNodesByCondition admission plugin gives every new Node the
        // node.kubernetes.io/not-ready:NoSchedule taint; the node-lifecycle
        // controller (off here) would lift it once the node is Ready.
        let untaint = serde_json::json!({ "spec": { "taints": null } });
        nodes
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&untaint),
            )
            .await
            .map_err(|e| ControlPlaneError::Kube(format!("untainting node {name}: {e}")))
    }

    /// Writes (or replaces) the CSINode a kubelet writes after `driver`'s node
    /// plugin registered: its node id, topology keys and volume limit.
    pub async fn register_csi_node(
        &self,
        node: &str,
        driver: &str,
        node_id: &str,
        topology_keys: &[&str],
        allocatable_count: Option<i32>,
    ) -> Result<CSINode, ControlPlaneError> {
        let client = self.client().await?;
        let owner = Api::<Node>::all(client.clone())
            .get(node)
            .await
            .map_err(|e| ControlPlaneError::Kube(format!("reading node {node}: {e}")))?;
        let uid = owner.metadata.uid.unwrap_or_default();
        let mut drv =
            serde_json::json!({ "name": driver, "nodeID": node_id, "topologyKeys": topology_keys });
        if let Some(count) = allocatable_count {
            drv["allocatable"] = serde_json::json!({ "count": count });
        }
        let csinode: CSINode = serde_json::from_value(serde_json::json!({
            "apiVersion": "storage.k8s.io/v1",
            "kind": "CSINode",
            "metadata": {
                "name": node,
                "ownerReferences": [{ "apiVersion": "v1", "kind": "Node", "name": node, "uid": uid }],
            },
            "spec": { "drivers": [drv] },
        }))
        .expect("a valid CSINode");
        let api: Api<CSINode> = Api::all(client);
        let pp = kube::api::PatchParams::apply("berth-test-kubelet").force();
        api.patch(node, &pp, &kube::api::Patch::Apply(&csinode))
            .await
            .map_err(|e| ControlPlaneError::Kube(format!("writing CSINode {node}: {e}")))
    }

    /// Stops every component (scheduler first, etcd last) and reaps it.
    pub fn stop(&mut self) {
        while let Some(mut p) = self.processes.pop() {
            stop_child(&mut p.child, Duration::from_secs(5));
        }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `bin args` with stdout and stderr to `log` (appended to when
/// `append`, else truncated), tied to the test process.
fn launch(
    bin: &Path,
    args: &[String],
    log: &Path,
    append: bool,
) -> Result<Child, ControlPlaneError> {
    let out = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(log)
        .map_err(io(format!("opening {}", log.display())))?;
    let err = out.try_clone().map_err(io("cloning a log handle"))?;
    let mut cmd = Command::new(bin);
    cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
    spawn_tied(&mut cmd).map_err(io(format!("starting {}", bin.display())))
}

/// Spawns `cmd` so that it is SIGKILLed if the spawning thread's process
/// dies: a crashed test run leaves no component behind.
pub fn spawn_tied(cmd: &mut Command) -> std::io::Result<Child> {
    // SAFETY: prctl is async-signal-safe; the closure allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
    cmd.spawn()
}

/// A helper process of a test (a CSI driver, a controller) whose output
/// goes to a log file; stopped and reaped on drop.
pub struct Daemon {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(name: &str, bin: &Path, args: &[String], log: PathBuf) -> std::io::Result<Daemon> {
        let out = fs::File::create(&log)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(bin);
        cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
        let child = spawn_tied(&mut cmd)?;
        Ok(Daemon {
            name: name.to_string(),
            child,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        format!("--- {} ---\n{}", self.name, log_tail(&self.log, lines))
    }

    /// SIGKILL, no grace: a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then SIGKILL after a grace period.
    pub fn stop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(10));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIGTERM, then SIGKILL after `grace`; always reaps.
pub fn stop_child(child: &mut Child, grace: Duration) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = signal::kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// True while a process with this id exists (zombies included).
pub fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub use crate::berth_bin;

/// berth's own processes on a [`ControlPlane`]: either the central shape
/// (`berth csi` for one node and `berth controller --csi-endpoint` sharing
/// its socket) or the node-local one (a `berth node` agent per node and
/// `berth controller` without a driver, as deploy/ runs them).
pub struct Berth {
    pub driver: Option<Daemon>,
    pub controllers: Vec<Daemon>,
    /// Node agents (node-local shape), one per node.
    pub agents: Vec<Agent>,
    /// What new agents authenticate with (default: the admin's).
    pub agent_kubeconfig: Option<PathBuf>,
    pub socket: PathBuf,
    pub node_id: String,
    dir: PathBuf,
    kubeconfig: PathBuf,
    driver_runs: usize,
}

/// One node's `berth node` agent, with its own data, state and socket
/// (as on a real node), and no kubelet registration (the harness writes
/// the CSINode a kubelet would).
pub struct Agent {
    pub node: String,
    pub dir: PathBuf,
    pub daemon: Option<Daemon>,
    pub metrics_port: u16,
    args: Vec<String>,
    runs: usize,
}

impl Agent {
    /// Starts `berth node` for `node` under `root/<node>`; `extra` flags
    /// are added (e.g. `--capacity=4Gi`).
    pub fn start(
        root: &Path,
        kubeconfig: &Path,
        node: &str,
        extra: &[&str],
    ) -> std::io::Result<Agent> {
        let dir = root.join(format!("agent-{node}"));
        fs::create_dir_all(&dir)?;
        let metrics_port = free_port();
        let mut args = vec![
            "node".to_string(),
            format!("--node-id={node}"),
            format!("--endpoint=unix://{}", dir.join("csi.sock").display()),
            format!("--state-dir={}", dir.join("state").display()),
            format!("--data-dir={}", dir.join("data").display()),
            format!("--kubeconfig={}", kubeconfig.display()),
            "--registration-path=".to_string(),
            format!("--metrics-address=127.0.0.1:{metrics_port}"),
            "--retry-interval-start-ms=200".to_string(),
            "--retry-interval-max-secs=5".to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut agent = Agent {
            node: node.to_string(),
            dir,
            daemon: None,
            metrics_port,
            args,
            runs: 0,
        };
        agent.restart()?;
        Ok(agent)
    }

    /// (Re)starts the agent on the same data, state and socket.
    pub fn restart(&mut self) -> std::io::Result<()> {
        if let Some(d) = self.daemon.as_mut() {
            d.stop();
        }
        self.runs += 1;
        let log = self.dir.join(format!("agent-{}.log", self.runs));
        let name = format!("berth-node-{}", self.node);
        self.daemon = Some(Daemon::start(&name, &berth_bin(), &self.args, log)?);
        Ok(())
    }

    /// kill -9: a crash of the agent.
    pub fn kill(&mut self) {
        if let Some(d) = self.daemon.as_mut() {
            d.kill();
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("csi.sock")
    }

    /// Ids of the volumes whose data is on this node's disk.
    pub fn volumes_on_disk(&self) -> Vec<String> {
        let mut ids: Vec<String> = fs::read_dir(self.dir.join("data/volumes"))
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .map(|n| n.strip_suffix(".img").map(str::to_string).unwrap_or(n))
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// Every log this agent wrote, oldest run first.
    pub fn all_logs(&self) -> String {
        (1..=self.runs)
            .map(|r| {
                fs::read_to_string(self.dir.join(format!("agent-{r}.log"))).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Berth {
    /// Starts the driver for `node_id` and one controller with `extra` flags.
    pub fn start(cp: &ControlPlane, node_id: &str, extra: &[&str]) -> std::io::Result<Berth> {
        let mut b = Self::driver_only(cp, node_id)?;
        b.add_controller(extra)?;
        Ok(b)
    }

    /// Starts the driver for `node_id` and no controller (add one with
    /// [`Berth::add_controller_with`], e.g. with a ServiceAccount's token).
    pub fn driver_only(cp: &ControlPlane, node_id: &str) -> std::io::Result<Berth> {
        let dir = cp.dir().join("berth");
        fs::create_dir_all(dir.join("state"))?;
        fs::create_dir_all(dir.join("data"))?;
        let mut b = Berth {
            driver: None,
            controllers: Vec::new(),
            agents: Vec::new(),
            agent_kubeconfig: None,
            socket: dir.join("csi.sock"),
            node_id: node_id.to_string(),
            dir,
            kubeconfig: cp.kubeconfig.clone(),
            driver_runs: 0,
        };
        b.restart_driver()?;
        Ok(b)
    }

    /// (Re)starts the CSI driver on the same socket and state.
    pub fn restart_driver(&mut self) -> std::io::Result<()> {
        if let Some(d) = self.driver.as_mut() {
            d.stop();
        }
        self.driver_runs += 1;
        let args = vec![
            format!("--endpoint=unix://{}", self.socket.display()),
            format!("--node-id={}", self.node_id),
            format!("--state-dir={}", self.dir.join("state").display()),
            format!("--data-dir={}", self.dir.join("data").display()),
        ];
        let log = self.dir.join(format!("csi-{}.log", self.driver_runs));
        let args = [vec!["csi".to_string()], args].concat();
        self.driver = Some(Daemon::start("berth-csi", &berth_bin(), &args, log)?);
        Ok(())
    }

    /// Starts another controller replica (e.g. after killing one, or a standby).
    pub fn add_controller(&mut self, extra: &[&str]) -> std::io::Result<&mut Daemon> {
        self.add_controller_with(&self.kubeconfig.clone(), extra)
    }

    /// A controller replica authenticating with another kubeconfig.
    pub fn add_controller_with(
        &mut self,
        kubeconfig: &Path,
        extra: &[&str],
    ) -> std::io::Result<&mut Daemon> {
        let n = self.controllers.len() + 1;
        let mut args = vec![
            "controller".to_string(),
            format!("--kubeconfig={}", kubeconfig.display()),
            "--retry-interval-start-ms=200".to_string(),
            "--retry-interval-max-secs=5".to_string(),
        ];
        // The central shape drives its one driver; node-local controllers
        // have none (the agents provision).
        if self.agents.is_empty() {
            args.push(format!("--csi-endpoint=unix://{}", self.socket.display()));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = self.dir.join(format!("controller-{n}.log"));
        let d = Daemon::start(&format!("berth-controller-{n}"), &berth_bin(), &args, log)?;
        self.controllers.push(d);
        Ok(self.controllers.last_mut().expect("just pushed"))
    }

    /// Logs of the driver, the agents and every controller, for failure messages.
    pub fn logs(&self) -> String {
        let mut out: Vec<String> = self.driver.iter().map(|d| d.log_tail(30)).collect();
        out.extend(
            self.agents
                .iter()
                .filter_map(|a| a.daemon.as_ref())
                .map(|d| d.log_tail(20)),
        );
        out.extend(self.controllers.iter().map(|c| c.log_tail(30)));
        out.join("\n")
    }
}

impl ControlPlane {
    /// Applies every document of a manifest file for real (server-side
    /// apply, field manager `berth-e2e`) and returns `Kind/name` of each.
    pub async fn apply_file(&self, path: &Path) -> Result<Vec<String>, ControlPlaneError> {
        use kube::api::{DynamicObject, Patch, PatchParams};
        use kube::core::GroupVersionKind;
        let kube_err =
            |what: String| move |e: kube::Error| ControlPlaneError::Kube(format!("{what}: {e}"));
        let client = self.client().await?;
        let text = fs::read_to_string(path).map_err(io(format!("reading {}", path.display())))?;
        let docs = berth::manifest::parse_str(&path.display().to_string(), &text)
            .map_err(|e| ControlPlaneError::Kube(e.to_string()))?;
        let mut applied = Vec::new();
        for doc in docs {
            let v = doc.value;
            let field = |f: &str| v[f].as_str().unwrap_or_default().to_string();
            let (api_version, kind) = (field("apiVersion"), field("kind"));
            let name = v["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
            let gvk = GroupVersionKind::gvk(group, version, &kind);
            let (ar, caps) = kube::discovery::pinned_kind(&client, &gvk)
                .await
                .map_err(kube_err(format!("discovering {api_version} {kind}")))?;
            let api: Api<DynamicObject> = match v["metadata"]["namespace"].as_str() {
                Some(ns) if caps.scope == kube::discovery::Scope::Namespaced => {
                    Api::namespaced_with(client.clone(), ns, &ar)
                }
                _ => Api::all_with(client.clone(), &ar),
            };
            api.patch(
                &name,
                &PatchParams::apply("berth-e2e").force(),
                &Patch::Apply(&v),
            )
            .await
            .map_err(kube_err(format!("applying {kind} {name}")))?;
            applied.push(format!("{kind}/{name}"));
        }
        Ok(applied)
    }

    /// A bound token of a ServiceAccount from the TokenRequest API, as the
    /// kubelet mounts into its pods.
    pub async fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<String, ControlPlaneError> {
        use k8s_openapi::api::authentication::v1::TokenRequest;
        let request: TokenRequest = serde_json::from_value(serde_json::json!({
            "spec": { "audiences": [], "expirationSeconds": 3600 }
        }))
        .expect("a valid TokenRequest");
        let sas: Api<ServiceAccount> = Api::namespaced(self.client().await?, namespace);
        let issued = sas
            .create_token_request(name, &PostParams::default(), &request)
            .await
            .map_err(|e| ControlPlaneError::Kube(format!("token for {namespace}/{name}: {e}")))?;
        issued
            .status
            .and_then(|s| s.token)
            .ok_or_else(|| ControlPlaneError::Kube(format!("no token for {namespace}/{name}")))
    }
}

/// The name berth's driver registers under, and its topology key.
pub const DRIVER: &str = "csi.berth.dev";
pub const TOPOLOGY_KEY: &str = "topology.csi.berth.dev/node";

/// What the e2e suites run against: a control plane with fake nodes, berth's
/// driver on the first node (controllers added by the test), the admin
/// client, and the helpers to create objects and poll for outcomes.
pub struct Cluster {
    pub berth: Berth,
    pub cp: ControlPlane,
    pub client: Client,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Controllers, agents and driver go before the API server they talk to.
        self.berth.controllers.clear();
        self.berth.agents.clear();
        self.berth.driver = None;
        self.cp.stop();
    }
}

/// A node of a node-local cluster: its name, what its agent may provision
/// (`--capacity`) and its CSINode volume limit.
#[derive(Debug, Clone, Copy)]
pub struct NodeSpec<'a> {
    pub name: &'a str,
    pub capacity: &'a str,
    pub volume_limit: Option<i32>,
}

impl<'a> NodeSpec<'a> {
    pub fn new(name: &'a str, capacity: &'a str) -> Self {
        NodeSpec {
            name,
            capacity,
            volume_limit: None,
        }
    }
}

impl Cluster {
    /// A stock control plane with Ready fake `nodes`, each labelled with
    /// its name under [`TOPOLOGY_KEY`]. `nodes[0]` has berth's driver (and
    /// its CSINode entry, no volume limit); the others have no berth at all.
    pub async fn start(nodes: &[&str]) -> Cluster {
        Self::start_with(Options::default(), nodes).await
    }

    /// [`Cluster::start`] with some of the stock controllers off.
    pub async fn start_with(options: Options, nodes: &[&str]) -> Cluster {
        let cp = ControlPlane::start_with(options)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let client = cp.client().await.expect("admin client");
        for node in nodes {
            let labels = BTreeMap::from([(TOPOLOGY_KEY.to_string(), node.to_string())]);
            cp.create_node(node, &labels).await.expect("node");
        }
        let first = nodes.first().expect("at least one node");
        cp.register_csi_node(first, DRIVER, first, &[TOPOLOGY_KEY], None)
            .await
            .expect("CSINode");
        let berth = Berth::driver_only(&cp, first).expect("start berth's driver");
        Cluster { berth, cp, client }
    }

    pub fn logs(&self) -> String {
        format!("{}\n{}", self.cp.logs(), self.berth.logs())
    }

    /// deploy/'s shape on fake nodes: deploy/'s namespace, RBAC and
    /// CSIDriver applied for real, and per node a Ready Node labelled with
    /// its name under [`TOPOLOGY_KEY`], the CSINode its kubelet would write,
    /// and a `berth node` agent with its own directories, authenticated as
    /// the `berth-node` ServiceAccount. Controllers added with
    /// [`Berth::add_controller`] run as `berth-controller`, without a
    /// driver socket. So every process has exactly deploy/'s rights.
    pub async fn start_node_local(nodes: &[NodeSpec<'_>]) -> Cluster {
        Self::start_node_local_with(Options::default(), nodes).await
    }

    /// [`Cluster::start_node_local`] with some of the stock controllers off.
    pub async fn start_node_local_with(options: Options, nodes: &[NodeSpec<'_>]) -> Cluster {
        let cp = ControlPlane::start_with(options)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let client = cp.client().await.expect("admin client");
        let dir = cp.dir().join("berth");
        fs::create_dir_all(&dir).expect("berth dir");
        let mut env = Cluster {
            berth: Berth {
                driver: None,
                controllers: Vec::new(),
                agents: Vec::new(),
                agent_kubeconfig: None,
                socket: dir.join("unused.sock"),
                node_id: String::new(),
                dir,
                kubeconfig: cp.kubeconfig.clone(),
                driver_runs: 0,
            },
            cp,
            client,
        };
        let deploy = crate::repo_root().join("deploy");
        for file in ["namespace.yaml", "rbac.yaml", "csidriver.yaml"] {
            env.cp
                .apply_file(&deploy.join(file))
                .await
                .unwrap_or_else(|e| panic!("deploy/{file}: {e}"));
        }
        env.berth.kubeconfig = env.service_account("berth-controller").await;
        env.berth.agent_kubeconfig = Some(env.service_account("berth-node").await);
        for spec in nodes {
            env.add_node(*spec, &[]).await;
        }
        env
    }

    /// A kubeconfig with a token of a `berth-system` ServiceAccount.
    pub async fn service_account(&self, name: &str) -> PathBuf {
        let token = self
            .cp
            .service_account_token("berth-system", name)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        self.cp.token_kubeconfig(name, &token).expect("kubeconfig")
    }

    /// Adds a Ready node with its CSINode and starts its agent (`extra`
    /// flags added to `berth node`).
    pub async fn add_node(&mut self, spec: NodeSpec<'_>, extra: &[&str]) -> &mut Agent {
        let labels = BTreeMap::from([(TOPOLOGY_KEY.to_string(), spec.name.to_string())]);
        self.cp.create_node(spec.name, &labels).await.expect("node");
        self.cp
            .register_csi_node(
                spec.name,
                DRIVER,
                spec.name,
                &[TOPOLOGY_KEY],
                spec.volume_limit,
            )
            .await
            .expect("CSINode");
        let capacity = format!("--capacity={}", spec.capacity);
        let mut flags = vec![capacity.as_str()];
        flags.extend_from_slice(extra);
        let kubeconfig = self
            .berth
            .agent_kubeconfig
            .clone()
            .unwrap_or_else(|| self.cp.kubeconfig.clone());
        let agent =
            Agent::start(&self.berth.dir, &kubeconfig, spec.name, &flags).expect("start the agent");
        self.berth.agents.push(agent);
        self.berth.agents.last_mut().expect("just pushed")
    }

    /// Waits until every agent has published its CSIStorageCapacity for
    /// `class` (placement and the scheduler go only where one says there
    /// is room).
    pub async fn wait_capacities(&self, class: &str) {
        use k8s_openapi::api::storage::v1::CSIStorageCapacity;
        let api: Api<CSIStorageCapacity> = Api::namespaced(self.client.clone(), "berth-system");
        let want = self.berth.agents.len();
        self.wait(
            &format!("{want} capacity objects for {class}"),
            Duration::from_secs(60),
            || {
                let api = api.clone();
                async move {
                    let n = api
                        .list(&ListParams::default())
                        .await
                        .ok()?
                        .items
                        .iter()
                        .filter(|c| c.storage_class_name == class)
                        .count();
                    (n == want).then_some(())
                }
            },
        )
        .await
    }

    /// The agent of `node`.
    pub fn agent(&mut self, node: &str) -> &mut Agent {
        self.berth
            .agents
            .iter_mut()
            .find(|a| a.node == node)
            .unwrap_or_else(|| panic!("no agent for {node}"))
    }

    /// Applies `deploy/<file>` for each of `files` for real and returns a
    /// kubeconfig holding a token of the `berth-controller` ServiceAccount
    /// they create: a controller started with it has exactly that RBAC.
    pub async fn service_account_kubeconfig(&self, files: &[&str]) -> PathBuf {
        let deploy = crate::repo_root().join("deploy");
        for file in files {
            self.cp
                .apply_file(&deploy.join(file))
                .await
                .unwrap_or_else(|e| panic!("deploy/{file}: {e}"));
        }
        self.service_account("berth-controller").await
    }

    pub async fn namespace(&self, name: &str) {
        use k8s_openapi::api::core::v1::Namespace;
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({ "metadata": { "name": name } })).unwrap();
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace");
    }

    /// A StorageClass of berth's; `extra` is merged into it (e.g.
    /// `allowedTopologies`).
    pub async fn class_with(
        &self,
        name: &str,
        mode: &str,
        reclaim: &str,
        extra: serde_json::Value,
    ) {
        use k8s_openapi::api::storage::v1::StorageClass;
        let mut v = serde_json::json!({
            "metadata": { "name": name },
            "provisioner": DRIVER,
            "volumeBindingMode": mode,
            "reclaimPolicy": reclaim,
        });
        if let (Some(base), serde_json::Value::Object(more)) = (v.as_object_mut(), extra) {
            base.extend(more);
        }
        let sc: StorageClass = serde_json::from_value(v).unwrap();
        Api::<StorageClass>::all(self.client.clone())
            .create(&PostParams::default(), &sc)
            .await
            .expect("storage class");
    }

    pub async fn class(&self, name: &str, mode: &str, reclaim: &str, params: serde_json::Value) {
        self.class_with(
            name,
            mode,
            reclaim,
            serde_json::json!({ "parameters": params }),
        )
        .await
    }

    /// A 64Mi ReadWriteOnce claim; `annotations` as given.
    pub async fn claim_with(
        &self,
        ns: &str,
        name: &str,
        class: &str,
        annotations: serde_json::Value,
    ) -> PersistentVolumeClaim {
        self.claims(ns)
            .create(
                &PostParams::default(),
                &Self::claim_object(name, class, annotations),
            )
            .await
            .expect("claim")
    }

    /// The claim [`Cluster::claim_with`] creates, to create elsewhere.
    pub fn claim_object(
        name: &str,
        class: &str,
        annotations: serde_json::Value,
    ) -> PersistentVolumeClaim {
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": name, "annotations": annotations },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": class,
                "resources": { "requests": { "storage": "64Mi" } },
            }
        }))
        .unwrap()
    }

    pub async fn claim(&self, ns: &str, name: &str, class: &str) -> PersistentVolumeClaim {
        self.claim_with(ns, name, class, serde_json::json!({}))
            .await
    }

    pub fn claims(&self, ns: &str) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.client.clone(), ns)
    }

    pub fn pvs(&self) -> Api<PersistentVolume> {
        Api::all(self.client.clone())
    }

    pub fn pods(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// A pod mounting `claim`; `spec` is merged into its spec (e.g. a
    /// `nodeSelector`). Retried until the namespace's ServiceAccount, which
    /// admission requires, exists.
    pub async fn pod(&self, ns: &str, name: &str, claim: &str, spec: serde_json::Value) {
        let pod = Self::pod_object(name, claim, spec);
        let pods = self.pods(ns);
        self.wait(
            &format!("pod {ns}/{name} admitted"),
            Duration::from_secs(30),
            || {
                let (pods, pod) = (pods.clone(), pod.clone());
                async move {
                    pods.create(&PostParams::default(), &pod)
                        .await
                        .ok()
                        .map(|_| ())
                }
            },
        )
        .await
    }

    /// The pod [`Cluster::pod`] creates, to create elsewhere: no
    /// `nodeName`, so kube-scheduler places it.
    pub fn pod_object(name: &str, claim: &str, spec: serde_json::Value) -> Pod {
        let mut s = serde_json::json!({
            "containers": [{ "name": "app", "image": "registry.invalid/app:1" }],
            "volumes": [{ "name": "data", "persistentVolumeClaim": { "claimName": claim } }],
        });
        if let (Some(base), serde_json::Value::Object(more)) = (s.as_object_mut(), spec) {
            base.extend(more);
        }
        serde_json::from_value(serde_json::json!({
            "metadata": { "name": name },
            "spec": s,
        }))
        .unwrap()
    }

    /// Polls `check` until it yields a value; panics with every log after `timeout`.
    pub async fn wait<T, F, Fut>(&self, what: &str, timeout: Duration, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits for the claim to be Bound and returns its PV's name.
    pub async fn wait_bound(&self, ns: &str, name: &str) -> String {
        let claims = self.claims(ns);
        self.wait(
            &format!("{ns}/{name} Bound"),
            Duration::from_secs(120),
            || {
                let claims = claims.clone();
                async move {
                    let c = claims.get(name).await.ok()?;
                    let phase = c.status.as_ref()?.phase.clone()?;
                    (phase == "Bound").then(|| c.spec?.volume_name).flatten()
                }
            },
        )
        .await
    }

    /// Waits until the PV is gone.
    pub async fn wait_pv_gone(&self, name: &str) {
        let pvs = self.pvs();
        self.wait(&format!("PV {name} gone"), Duration::from_secs(60), || {
            let pvs = pvs.clone();
            async move { matches!(pvs.get_opt(name).await, Ok(None)).then_some(()) }
        })
        .await
    }

    pub async fn events_for(&self, ns: &str, object: &str) -> Vec<Event> {
        let lp = ListParams::default().fields(&format!("involvedObject.name={object}"));
        Api::<Event>::namespaced(self.client.clone(), ns)
            .list(&lp)
            .await
            .expect("events")
            .items
    }

    /// PVs whose claimRef names `ns/name`.
    pub async fn pvs_for(&self, ns: &str, name: &str) -> Vec<PersistentVolume> {
        self.berth_pvs()
            .await
            .into_iter()
            .filter(|pv| {
                pv.spec
                    .as_ref()
                    .and_then(|s| s.claim_ref.as_ref())
                    .is_some_and(|r| {
                        r.namespace.as_deref() == Some(ns) && r.name.as_deref() == Some(name)
                    })
            })
            .collect()
    }

    /// Every PV berth provisioned.
    pub async fn berth_pvs(&self) -> Vec<PersistentVolume> {
        self.pvs()
            .list(&ListParams::default())
            .await
            .expect("pvs")
            .items
            .into_iter()
            .filter(|pv| {
                pv.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("pv.kubernetes.io/provisioned-by"))
                    .is_some_and(|p| p == DRIVER)
            })
            .collect()
    }
}

/// The nodes a PV's required node affinity names under [`TOPOLOGY_KEY`].
pub fn affinity_nodes(pv: &PersistentVolume) -> Vec<String> {
    pv.spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
        .map(|sel| {
            sel.node_selector_terms
                .iter()
                .flat_map(|t| t.match_expressions.iter().flatten())
                .filter(|e| e.key == TOPOLOGY_KEY && e.operator == "In")
                .flat_map(|e| e.values.iter().flatten().cloned())
                .collect()
        })
        .unwrap_or_default()
}

/// The one node a berth PV's affinity names, and its volume handle;
/// panics unless exactly one node is named.
pub fn placement(pv: &PersistentVolume) -> (String, String) {
    let nodes = affinity_nodes(pv);
    assert_eq!(nodes.len(), 1, "one node per volume: {nodes:?}");
    (nodes[0].clone(), volume_handle(pv).unwrap_or_default())
}

/// The CSI volume handle of a PV.
pub fn volume_handle(pv: &PersistentVolume) -> Option<String> {
    pv.spec
        .as_ref()
        .and_then(|s| s.csi.as_ref())
        .map(|c| c.volume_handle.clone())
}

/// `berth controller` flags for a replica `identity` electing a leader on
/// deploy/'s Lease with a short (4 s) lease, so a dead leader is replaced
/// within seconds.
pub fn leader_election_flags(identity: &str) -> Vec<String> {
    vec![
        "--leader-elect".to_string(),
        "--leader-election-namespace=berth-system".to_string(),
        "--leader-election-lease-duration=4".to_string(),
        format!("--identity={identity}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::b64;

    #[test]
    fn base64_pads_like_the_standard_alphabet() {
        assert_eq!(b64(""), "");
        assert_eq!(b64("f"), "Zg==");
        assert_eq!(b64("fo"), "Zm8=");
        assert_eq!(b64("foo"), "Zm9v");
        assert_eq!(b64("foobar"), "Zm9vYmFy");
    }
}
