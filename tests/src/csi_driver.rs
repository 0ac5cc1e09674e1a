//! A `berth csi` process of its own for a test: state, data and socket in a
//! temporary directory, stderr kept for failure messages, and everything it
//! mounted or attached there undone when the test ends, passed or not.
//! Needs root (the node service mounts and attaches loop devices).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use csi_proto as csi;
use csi_proto::controller_client::ControllerClient;
use csi_proto::node_client::NodeClient;
use tonic::transport::Channel;

use crate::berth_bin;

/// How long a fresh driver may take to start listening (it opens its
/// store and reconciles the data directory first).
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running driver; dropping it kills the process and cleans up.
pub struct CsiDriver {
    child: Child,
    dir: tempfile::TempDir,
    sock: PathBuf,
    extra: Vec<String>,
}

impl CsiDriver {
    /// Starts `berth csi --node-id=n1 --capacity=10Gi` serving every
    /// service, with its scratch directory as the kubelet's directory;
    /// `extra` flags come last, so they override those (the CLI takes the
    /// last value of a flag given twice).
    pub fn start(extra: &[&str]) -> CsiDriver {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("csi.sock");
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let child = Self::spawn(dir.path(), &sock, &extra);
        let mut driver = CsiDriver {
            child,
            dir,
            sock,
            extra,
        };
        driver.wait_listening();
        driver
    }

    /// `kill -9`s the driver and starts it again on the same state, data and
    /// kubelet directories, as a crashed node plugin's restart does; returns
    /// once the new process listens (it has reconciled by then).
    pub fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(self.dir.path(), &self.sock, &self.extra);
        self.wait_listening();
    }

    fn spawn(dir: &Path, sock: &Path, extra: &[String]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("driver.log"))
            .expect("driver log");
        Command::new(berth_bin())
            .arg("csi")
            .arg(format!("--endpoint=unix://{}", sock.display()))
            .args(["--node-id=n1", "--capacity=10Gi"])
            .arg(format!("--state-dir={}", dir.join("state").display()))
            .arg(format!("--data-dir={}", dir.join("data").display()))
            .arg(format!("--kubelet-dir={}", dir.display()))
            .args(extra)
            .env("BERTH_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning berth csi")
    }

    /// The socket is renamed into place only once it listens, but a
    /// connect proves it.
    fn wait_listening(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        while std::os::unix::net::UnixStream::connect(&self.sock).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("berth csi exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "berth csi is not listening on {} after {START_TIMEOUT:?}:\n{}",
                self.sock.display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The driver's unix socket, for `csi_proto::connect_unix`.
    pub fn sock(&self) -> &Path {
        &self.sock
    }

    /// A scratch directory that lives as long as the driver, and its
    /// `--kubelet-dir` (staging and target paths go here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the driver logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("driver.log")).unwrap_or_default()
    }
}

impl Drop for CsiDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A test that failed midway leaves its stages and publishes behind;
        // removing the directory through them would reach into mounted file
        // systems, and attached loop devices would outlive the test.
        let Ok(root) = std::fs::canonicalize(self.dir.path()) else {
            return;
        };
        if let Ok(mounts) = berth::csi::mount::mount_points() {
            for m in mounts.iter().rev().filter(|m| m.starts_with(&root)) {
                let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        for (dev, backing) in berth::csi::loopdev::attached() {
            if backing.starts_with(&root) {
                let _ = berth::csi::loopdev::detach(&dev);
            }
        }
    }
}

/// A single-node-writer capability: a file system (`Some("")` is a
/// directory volume, `Some("ext4")` an image) or raw block (`None`).
pub fn capability(fs: Option<&str>) -> csi::VolumeCapability {
    use csi::volume_capability::*;
    csi::VolumeCapability {
        access_type: Some(match fs {
            Some(fs) => AccessType::Mount(MountVolume {
                fs_type: fs.into(),
                ..Default::default()
            }),
            None => AccessType::Block(BlockVolume {}),
        }),
        access_mode: Some(AccessMode {
            mode: access_mode::Mode::SingleNodeWriter as i32,
        }),
    }
}

/// A volume staged and published under its driver's scratch directory.
pub struct Published {
    pub id: String,
    pub staging: PathBuf,
    pub target: PathBuf,
}

impl CsiDriver {
    /// Controller and Node clients over the driver's socket.
    pub async fn clients(&self) -> (ControllerClient<Channel>, NodeClient<Channel>) {
        let channel = csi_proto::connect_unix(self.sock().to_path_buf())
            .await
            .expect("connect to the driver's socket");
        (
            ControllerClient::new(channel.clone()),
            NodeClient::new(channel),
        )
    }

    /// NodeStage and NodePublish of volume `id` with a mount capability of
    /// `fs` (`""`: a directory volume).
    pub async fn publish(&self, node: &mut NodeClient<Channel>, id: &str, fs: &str) -> Published {
        let p = Published {
            id: id.to_string(),
            staging: self.dir().join(format!("stage-{id}")),
            target: self.dir().join(format!("target-{id}")),
        };
        node.node_stage_volume(csi::NodeStageVolumeRequest {
            volume_id: p.id.clone(),
            staging_target_path: p.staging.display().to_string(),
            volume_capability: Some(capability(Some(fs))),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("NodeStage {id}: {s:?}\n{}", self.log()));
        node.node_publish_volume(csi::NodePublishVolumeRequest {
            volume_id: p.id.clone(),
            staging_target_path: p.staging.display().to_string(),
            target_path: p.target.display().to_string(),
            volume_capability: Some(capability(Some(fs))),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("NodePublish {id}: {s:?}\n{}", self.log()));
        p
    }
}

/// NodeUnpublish and NodeUnstage of a published volume.
pub async fn unpublish(node: &mut NodeClient<Channel>, p: &Published) {
    node.node_unpublish_volume(csi::NodeUnpublishVolumeRequest {
        volume_id: p.id.clone(),
        target_path: p.target.display().to_string(),
    })
    .await
    .unwrap_or_else(|s| panic!("NodeUnpublish {}: {s:?}", p.id));
    node.node_unstage_volume(csi::NodeUnstageVolumeRequest {
        volume_id: p.id.clone(),
        staging_target_path: p.staging.display().to_string(),
    })
    .await
    .unwrap_or_else(|s| panic!("NodeUnstage {}: {s:?}", p.id));
}

/// CreateVolume of `bytes` with a mount capability of `fs` (`""`: a
/// directory volume), from `source` when given.
pub async fn create_volume(
    ctrl: &mut ControllerClient<Channel>,
    name: &str,
    fs: &str,
    bytes: i64,
    source: Option<csi::volume_content_source::Type>,
) -> csi::Volume {
    ctrl.create_volume(csi::CreateVolumeRequest {
        name: name.into(),
        capacity_range: Some(csi::CapacityRange {
            required_bytes: bytes,
            limit_bytes: 0,
        }),
        volume_capabilities: vec![capability(Some(fs))],
        volume_content_source: source.map(|t| csi::VolumeContentSource { r#type: Some(t) }),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|s| panic!("CreateVolume {name}: {s:?}"))
    .into_inner()
    .volume
    .expect("volume")
}
