//! A real kubelet node on this machine: containerd, runc and the CNI
//! plugins from Debian's packages, kubelet v1.36.3 from the pinned wrapper
//! module (tests/k8s), and a control plane that serves it
//! ([`Options::real_node`]). The facts behind every setting are in
//! `../shared/notes/real-node.md`: cgroup v1 (`failCgroupV1: false`), no
//! CAP_SYS_RESOURCE (`restrict_oom_score_adj`), a loopback-only kubelet
//! reached by host name, pod netns under containerd's state directory.
//!
//! The kubelet's root is `/var/lib/kubelet` (deploy/'s hostPaths name it),
//! and the API server listens on the `kubernetes` Service's IP (10.0.0.1,
//! put on the host's loopback) so that berth's pods reach it in-cluster
//! without kube-proxy. Everything else lives in the node's own directory.
//! What the kubelet and containerd write outside it (fixed paths, mounts,
//! loop devices, iptables chains, the bridge, the address) is undone by
//! [`RealNode::teardown`], which reports anything left. One real node per
//! machine at a time: the ports and paths are fixed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams};

use crate::control_plane::{
    ControlPlane, Daemon, KubeconfigUser, Options, REAL_NODE_API, REAL_NODE_NAME, binaries,
    kubeconfig_yaml,
};

pub const KUBELET_ROOT: &str = "/var/lib/kubelet";
/// deploy/node.yaml's hostPath for berth's state and data.
pub const BERTH_HOST_DIR: &str = "/var/lib/berth";
/// Written into every fixed directory this harness creates, so a later run
/// can tell a stale leftover of its own from someone else's directory.
const MARKER: &str = ".berth-real-node";
/// Paths outside the node directory that the kubelet, containerd or berth's
/// pods create.
const FIXED_PATHS: &[&str] = &[
    KUBELET_ROOT,
    BERTH_HOST_DIR,
    "/var/log/pods",
    "/var/log/containers",
    "/run/containerd",
    "/var/lib/cni",
];
const BRIDGE: &str = "berthbr0";
const POD_SUBNET: &str = "10.88.0.0/24";

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip addr add|del 10.0.0.1/32 dev lo`: the API server's address for pods.
fn api_address(op: &str) -> Result<String, String> {
    let cidr = format!("{}/32", REAL_NODE_API.0);
    run(Command::new("ip").args(["addr", op, &cidr, "dev", "lo"]))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Mount points at or under `prefix`, deepest first.
fn mounts_under(prefix: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(prefix))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

fn unmount_all(prefix: &Path) {
    // Several rounds: a lazily detached mount can reveal one beneath it.
    for _ in 0..5 {
        let mounts = mounts_under(prefix);
        if mounts.is_empty() {
            return;
        }
        for m in mounts {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Is a fixed path ours (made by this harness), someone else's, or absent?
fn owned(path: &Path) -> Option<bool> {
    path.exists().then(|| path.join(MARKER).exists())
}

fn which(tool: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(tool).is_file())
}

/// Fails with what is missing, by Debian package.
fn preflight() -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    if fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) != 0 {
        return Err("the real node needs root".into());
    }
    let need = [
        ("containerd", "containerd"),
        ("ctr", "containerd"),
        ("runc", "runc"),
        ("busybox", "busybox-static"),
        ("iptables", "iptables"),
        ("ip", "iproute2"),
        ("mkfs.xfs", "xfsprogs"),
        ("mkfs.ext4", "e2fsprogs"),
    ];
    let missing: Vec<String> = need
        .iter()
        .filter(|(tool, _)| !which(tool))
        .map(|(tool, pkg)| format!("{tool} ({pkg})"))
        .collect();
    if !Path::new("/usr/lib/cni/bridge").is_file() {
        return Err("/usr/lib/cni/bridge missing (containernetworking-plugins)".into());
    }
    if !missing.is_empty() {
        return Err(format!(
            "missing: {} (.ci/run installs them)",
            missing.join(", ")
        ));
    }
    if std::net::TcpListener::bind(("127.0.0.1", 10250)).is_err() {
        return Err("port 10250 is taken: another kubelet runs here".into());
    }
    Ok(())
}

pub struct RealNode {
    pub cp: ControlPlane,
    pub client: Client,
    /// The node's directory (containerd's root and state, CNI, the kubelet's
    /// configuration, images).
    pub dir: PathBuf,
    /// kubectl v1.36.3, for the steps users type.
    pub kubectl: PathBuf,
    containerd: Option<Daemon>,
    kubelet: Option<Daemon>,
    /// Fixed paths this run created (removed at teardown).
    created: Vec<PathBuf>,
    address_added: bool,
    torn_down: bool,
}

impl RealNode {
    /// Starts the control plane, containerd with berth's and the test's
    /// images imported, and a kubelet, and waits for the Node to be Ready.
    pub async fn start(berth_bin: &Path) -> Result<RealNode, String> {
        preflight()?;
        kill_shims(Path::new("/nonexistent"));
        // A stale node of an earlier crashed run is ours to clean; any
        // other directory at a fixed path is not.
        for p in FIXED_PATHS {
            let path = Path::new(p);
            if owned(path) == Some(true) {
                unmount_all(path);
                let _ = fs::remove_dir_all(path);
            }
        }
        for p in [KUBELET_ROOT, BERTH_HOST_DIR] {
            if owned(Path::new(p)) == Some(false) {
                return Err(format!("{p} exists and was not made by this harness"));
            }
        }
        let created: Vec<PathBuf> = FIXED_PATHS
            .iter()
            .map(PathBuf::from)
            .filter(|p| !p.exists())
            .collect();
        let _ = api_address("del");
        api_address("add")?;

        let cp = ControlPlane::start_with(Options {
            real_node: true,
            ..Options::default()
        })
        .await
        .map_err(|e| e.to_string())?;
        let client = cp.client().await.map_err(|e| e.to_string())?;
        let dir = cp.dir().join("node");
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let bin = binaries().map_err(|e| e.to_string())?;
        let mut node = RealNode {
            cp,
            client,
            kubectl: bin.join("kubectl"),
            dir: dir.clone(),
            containerd: None,
            kubelet: None,
            created,
            address_added: true,
            torn_down: false,
        };
        for p in [KUBELET_ROOT, BERTH_HOST_DIR] {
            fs::create_dir_all(p).map_err(|e| format!("{p}: {e}"))?;
            fs::write(Path::new(p).join(MARKER), "").map_err(|e| format!("{p}: {e}"))?;
        }

        node.start_containerd()?;
        let images = crate::images::build_all(&dir.join("images"), berth_bin)?;
        for (reference, tarball) in &images {
            node.import_image(reference, tarball)?;
        }
        node.start_kubelet(&bin.join("kubelet"))?;
        node.wait_ready().await?;
        Ok(node)
    }

    /// Imports a docker-archive tarball (tests/src/images.rs) into the
    /// kubelet's containerd namespace, so pods run it without a pull.
    pub fn import_image(&self, reference: &str, tarball: &Path) -> Result<(), String> {
        run(Command::new("ctr")
            .arg("-a")
            .arg(self.containerd_socket())
            .args(["-n", "k8s.io", "images", "import"])
            .arg(tarball))
        .map(|_| ())
        .map_err(|e| format!("importing {reference}: {e}"))
    }

    fn containerd_socket(&self) -> PathBuf {
        self.dir.join("containerd/containerd.sock")
    }

    /// The admin kubeconfig, for kubectl.
    pub fn kubeconfig(&self) -> &Path {
        &self.cp.kubeconfig
    }

    fn start_containerd(&mut self) -> Result<(), String> {
        let d = self.dir.display();
        let config = format!(
            r#"version = 2
root = "{d}/containerd/root"
state = "{d}/containerd/state"
[grpc]
  address = "{d}/containerd/containerd.sock"
[ttrpc]
  address = "{d}/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  enable_cdi = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{d}/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni/net.d"
"#,
            pause = crate::images::PAUSE,
        );
        write(&self.dir.join("containerd/config.toml"), &config)?;
        let cni = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "berth-test",
            "plugins": [
                {
                    "type": "bridge", "bridge": BRIDGE, "isGateway": true,
                    "ipMasq": false, "hairpinMode": true,
                    "ipam": {
                        "type": "host-local", "subnet": POD_SUBNET,
                        "routes": [{ "dst": "0.0.0.0/0" }],
                        "dataDir": format!("{d}/cni/ipam"),
                    },
                },
                { "type": "loopback" },
            ],
        });
        write(
            &self.dir.join("cni/net.d/10-berth.conflist"),
            &cni.to_string(),
        )?;
        let log = self.dir.join("containerd.log");
        let args = vec![
            "--config".to_string(),
            self.dir
                .join("containerd/config.toml")
                .display()
                .to_string(),
        ];
        self.containerd = Some(
            Daemon::start("containerd", Path::new("/usr/bin/containerd"), &args, log)
                .map_err(|e| format!("starting containerd: {e}"))?,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.containerd_socket().exists() {
            if Instant::now() > deadline {
                return Err(format!("containerd did not start:\n{}", self.logs()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    fn start_kubelet(&mut self, kubelet: &Path) -> Result<(), String> {
        let d = &self.dir;
        let ca = d.join("ca.crt");
        write(&ca, &self.cp.ca_pem)?;
        let server = format!("https://{}:{}", REAL_NODE_API.0, REAL_NODE_API.1);
        let kubeconfig = kubeconfig_yaml(
            &server,
            &self.cp.ca_pem,
            KubeconfigUser::Cert {
                cert_pem: &self.cp.node_cert,
                key_pem: &self.cp.node_key,
            },
        );
        write(&d.join("kubelet.kubeconfig"), &kubeconfig)?;
        let config = format!(
            r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://{sock}
address: 127.0.0.1
port: 10250
healthzBindAddress: 127.0.0.1
healthzPort: 10248
readOnlyPort: 0
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: false}}
  x509: {{clientCAFile: {ca}}}
authorization: {{mode: AlwaysAllow}}
failSwapOn: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {{memory.available: 100Mi, nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}}
podLogsDir: {logs}
volumePluginDir: {plugins}
"#,
            sock = self.containerd_socket().display(),
            ca = ca.display(),
            logs = d.join("pod-logs").display(),
            plugins = d.join("volume-plugins").display(),
        );
        write(&d.join("kubelet.yaml"), &config)?;
        let args = vec![
            format!("--config={}", d.join("kubelet.yaml").display()),
            format!("--kubeconfig={}", d.join("kubelet.kubeconfig").display()),
            format!("--root-dir={KUBELET_ROOT}"),
            format!("--cert-dir={}", d.join("kubelet-pki").display()),
            format!("--hostname-override={REAL_NODE_NAME}"),
            "--v=2".to_string(),
        ];
        self.kubelet = Some(
            Daemon::start("kubelet", kubelet, &args, d.join("kubelet.log"))
                .map_err(|e| format!("starting the kubelet: {e}"))?,
        );
        Ok(())
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(n)) = nodes.get_opt(REAL_NODE_NAME).await {
                let ready = n
                    .status
                    .and_then(|s| s.conditions)
                    .into_iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                if ready {
                    return Ok(());
                }
            }
            if let Some(k) = self.kubelet.as_mut()
                && !k.running()
            {
                return Err(format!("the kubelet exited:\n{}", self.logs()));
            }
            if Instant::now() > deadline {
                return Err(format!("node {REAL_NODE_NAME} not Ready:\n{}", self.logs()));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Runs kubectl with the admin kubeconfig; stdout, or the error.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        run(Command::new(&self.kubectl)
            .arg(format!("--kubeconfig={}", self.cp.kubeconfig.display()))
            .args(args))
    }

    /// Runs a shell script the way a user would in a terminal: kubectl on
    /// PATH (the built v1.36.3 one) and the admin kubeconfig, from the
    /// repository root. Returns its output; fails on the first failing line.
    pub fn shell(&self, script: &str) -> Result<String, String> {
        let bin = self.kubectl.parent().unwrap_or(Path::new("/"));
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", script])
            .current_dir(crate::repo_root())
            .env("PATH", path)
            .env("KUBECONFIG", &self.cp.kubeconfig)
            .output()
            .map_err(|e| format!("bash: {e}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!(
                "script failed ({}):\n{script}\n--- output ---\n{text}",
                out.status
            ))
        }
    }

    /// The last lines of the kubelet's, containerd's and the control plane's logs.
    pub fn logs(&self) -> String {
        let mut out: Vec<String> = [&self.containerd, &self.kubelet]
            .into_iter()
            .flatten()
            .map(|d| d.log_tail(40))
            .collect();
        out.push(self.cp.logs());
        out.join("\n")
    }

    /// Stops everything and undoes what was done outside the node's
    /// directory; returns what could not be undone (empty when clean).
    pub async fn teardown(&mut self) -> Vec<String> {
        if self.torn_down {
            return Vec::new();
        }
        self.torn_down = true;
        // Pods first, while berth's agent still unmounts their volumes.
        let namespaces: Vec<String> = Api::<Namespace>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .map(|l| {
                l.items
                    .into_iter()
                    .filter_map(|n| n.metadata.name)
                    .collect()
            })
            .unwrap_or_default();
        for wave in [false, true] {
            for ns in namespaces
                .iter()
                .filter(|n| (n.as_str() == "berth-system") == wave)
            {
                if wave {
                    // The agents and the controller go with their namespace.
                    let _ = Api::<Namespace>::all(self.client.clone())
                        .delete(ns, &DeleteParams::default())
                        .await;
                }
                let pods: Api<Pod> = Api::namespaced(self.client.clone(), ns);
                let _ = pods
                    .delete_collection(&DeleteParams::default(), &ListParams::default())
                    .await;
            }
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                let left = Api::<Pod>::all(self.client.clone())
                    .list(&ListParams::default())
                    .await
                    .map(|l| {
                        l.items
                            .iter()
                            .filter(|p| {
                                (p.metadata.namespace.as_deref() == Some("berth-system")) == wave
                            })
                            .count()
                    })
                    .unwrap_or(0);
                if left == 0 || Instant::now() > deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        self.stop_and_clean();
        self.leftovers()
    }

    /// Stops the kubelet, every container, containerd and the control
    /// plane, and undoes the node's changes outside its directory.
    fn stop_and_clean(&mut self) {
        if let Some(mut k) = self.kubelet.take() {
            k.stop();
        }
        // containerd 1.6's shims outlive it: stop every task while it runs.
        let sock = self.containerd_socket();
        let ctr = |args: &[&str]| {
            run(Command::new("ctr")
                .arg("-a")
                .arg(&sock)
                .args(["-n", "k8s.io"])
                .args(args))
        };
        if self.containerd.is_some() {
            if let Ok(tasks) = ctr(&["tasks", "ls", "-q"]) {
                for t in tasks.lines().filter(|l| !l.is_empty()) {
                    let _ = ctr(&["tasks", "kill", "-s", "SIGKILL", t]);
                }
                std::thread::sleep(Duration::from_millis(500));
                for t in tasks.lines().filter(|l| !l.is_empty()) {
                    let _ = ctr(&["tasks", "delete", "-f", t]);
                }
            }
            if let Ok(containers) = ctr(&["containers", "ls", "-q"]) {
                for c in containers.lines().filter(|l| !l.is_empty()) {
                    let _ = ctr(&["containers", "delete", c]);
                }
            }
        }
        if let Some(mut c) = self.containerd.take() {
            c.stop();
        }
        kill_shims(&sock);
        self.cp.stop();

        for p in [
            Path::new(KUBELET_ROOT),
            Path::new(BERTH_HOST_DIR),
            &self.dir,
            Path::new("/run/containerd"),
        ] {
            unmount_all(p);
        }
        for (dev, backing) in berth::csi::loopdev::attached() {
            if backing.starts_with(BERTH_HOST_DIR) {
                let _ = berth::csi::loopdev::detach(&dev);
            }
        }
        for p in &self.created {
            let _ = fs::remove_dir_all(p);
        }
        for tool in ["iptables", "ip6tables"] {
            for hook in ["INPUT", "OUTPUT"] {
                while run(Command::new(tool).args([
                    "-t",
                    "filter",
                    "-D",
                    hook,
                    "-j",
                    "KUBE-FIREWALL",
                ]))
                .is_ok()
                {}
            }
            for table in ["filter", "nat", "mangle"] {
                let rules = run(Command::new(tool).args(["-t", table, "-S"])).unwrap_or_default();
                for chain in rules
                    .lines()
                    .filter_map(|l| l.strip_prefix("-N "))
                    .filter(|c| c.starts_with("KUBE-"))
                {
                    let _ = run(Command::new(tool).args(["-t", table, "-F", chain]));
                    let _ = run(Command::new(tool).args(["-t", table, "-X", chain]));
                }
            }
        }
        let _ = run(Command::new("ip").args(["link", "del", BRIDGE]));
        if self.address_added {
            let _ = api_address("del");
        }
    }

    /// Anything of the node still on the machine.
    fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in [
            Path::new(KUBELET_ROOT),
            Path::new(BERTH_HOST_DIR),
            &self.dir,
        ] {
            for m in mounts_under(p) {
                out.push(format!("mount {}", m.display()));
            }
        }
        for (dev, backing) in berth::csi::loopdev::attached() {
            if backing.starts_with(BERTH_HOST_DIR) || backing.starts_with(&self.dir) {
                out.push(format!(
                    "loop device {} on {}",
                    dev.display(),
                    backing.display()
                ));
            }
        }
        for p in &self.created {
            if p.exists() {
                out.push(format!("directory {}", p.display()));
            }
        }
        for tool in ["iptables", "ip6tables"] {
            for table in ["filter", "nat", "mangle"] {
                let rules = run(Command::new(tool).args(["-t", table, "-S"])).unwrap_or_default();
                for l in rules.lines().filter(|l| l.contains("KUBE-")) {
                    out.push(format!("{tool} -t {table}: {l}"));
                }
            }
        }
        if Path::new("/sys/class/net").join(BRIDGE).exists() {
            out.push(format!("bridge {BRIDGE}"));
        }
        let addrs =
            run(Command::new("ip").args(["-o", "addr", "show", "dev", "lo"])).unwrap_or_default();
        if addrs.contains(&format!("{}/32", REAL_NODE_API.0)) {
            out.push(format!("address {} on lo", REAL_NODE_API.0));
        }
        // Processes the node started (shims, pods' processes) by their
        // command line naming the node's directory; zombies hold nothing.
        let me = self.dir.display().to_string();
        for (pid, cmd) in processes() {
            if cmd.contains(&me) {
                out.push(format!("process {pid}: {cmd}"));
            }
        }
        out
    }
}

impl Drop for RealNode {
    fn drop(&mut self) {
        if !self.torn_down {
            // A test that failed before its own teardown: everything but
            // the API calls.
            self.torn_down = true;
            self.stop_and_clean();
        }
    }
}

/// Live (not zombie) processes and their command lines.
fn processes() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(procs) = fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let pid = p.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let stat = fs::read_to_string(p.path().join("stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        if state == Some("Z") {
            continue;
        }
        let Ok(cmd) = fs::read(p.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd)
            .replace('\0', " ")
            .trim()
            .to_string();
        if !cmd.is_empty() {
            out.push((pid, cmd));
        }
    }
    out
}

/// Kills containerd shims of this harness whose containerd is gone
/// (`socket`, or any earlier run's that no longer exists).
fn kill_shims(socket: &Path) {
    for (pid, cmd) in processes() {
        if !cmd.contains("containerd-shim") {
            continue;
        }
        let Some(address) = cmd
            .split_whitespace()
            .skip_while(|w| *w != "-address")
            .nth(1)
        else {
            continue;
        };
        let ours = Path::new(address) == socket
            || (address.contains("/berth-cp.") && !Path::new(address).exists());
        if ours && let Ok(pid) = pid.parse::<i32>() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}
