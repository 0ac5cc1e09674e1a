//! Directory volumes' capacity is not enforced (the kernel here has no
//! quota support, and berth sets no project quotas), so the driver says
//! so and watches instead: `/readyz` gives the reason, the
//! `berth_csi_directory_capacity_enforced` gauge the mode, and within
//! `--usage-check-interval-secs` of a directory volume being written past
//! its capacity the usage watch logs a warning and counts it in
//! `berth_csi_volumes_over_capacity`, and NodeGetVolumeStats reports it
//! abnormal with the figures; a volume within its capacity is neither.
//! Runs the real `berth csi` as root.

use std::io::Write;
use std::time::{Duration, Instant};

use berth_tests::control_plane::free_port;
use berth_tests::csi_driver::{CsiDriver, Published, create_volume, unpublish};
use berth_tests::http_get;
use csi::node_client::NodeClient;
use csi_proto as csi;
use tonic::transport::Channel;

const MI: i64 = 1 << 20;
/// The interval the test runs the watch at.
const INTERVAL_SECS: u64 = 2;

fn write_mib(path: &std::path::Path, mib: usize) {
    let mut f = std::fs::File::create(path).expect("create");
    for _ in 0..mib {
        f.write_all(&vec![0x3cu8; 1 << 20]).expect("write");
    }
    f.sync_all().expect("sync");
}

async fn condition(node: &mut NodeClient<Channel>, p: &Published) -> csi::VolumeCondition {
    node.node_get_volume_stats(csi::NodeGetVolumeStatsRequest {
        volume_id: p.id.clone(),
        volume_path: p.target.display().to_string(),
        staging_target_path: p.staging.display().to_string(),
    })
    .await
    .unwrap_or_else(|s| panic!("NodeGetVolumeStats {}: {s:?}", p.id))
    .into_inner()
    .volume_condition
    .expect("a volume condition")
}

/// The value of the metric line starting with `series` (name and labels).
fn gauge(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_volume_over_its_capacity_is_reported_within_the_interval() {
    let port = free_port();
    let metrics = format!("--metrics-address=127.0.0.1:{port}");
    let interval = format!("--usage-check-interval-secs={INTERVAL_SECS}");
    let driver = CsiDriver::start(&[&metrics, &interval]);
    let (mut ctrl, mut node) = driver.clients().await;

    // The finding at start-up: not enforced, and why.
    let ready = http_get(port, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(
        ready.contains("[+]directory-capacity ok: not enforced: "),
        "{ready}"
    );
    let line = ready.lines().find(|l| l.contains("directory-capacity"));
    eprintln!("csi_usage_watch: /readyz {}", line.unwrap_or_default());
    assert!(
        driver
            .log()
            .contains("directory volume capacity not enforced: "),
        "{}",
        driver.log()
    );
    let page = http_get(port, "/metrics").await;
    assert_eq!(
        gauge(
            &page,
            "berth_csi_directory_capacity_enforced{mode=\"none\"}"
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        gauge(
            &page,
            "berth_csi_directory_capacity_enforced{mode=\"project_quota\"}"
        ),
        Some(0.0),
        "{page}"
    );

    let over = create_volume(&mut ctrl, "over", "", 16 * MI, None).await;
    let over = driver.publish(&mut node, &over.volume_id, "").await;
    let under = create_volume(&mut ctrl, "under", "", 16 * MI, None).await;
    let under = driver.publish(&mut node, &under.volume_id, "").await;
    write_mib(&under.target.join("data"), 8);
    write_mib(&over.target.join("data"), 20);
    let written = Instant::now();

    // The watch sleeps its interval after each pass; one more pass and
    // scheduling slack on a loaded machine bound the wait.
    let deadline = Duration::from_secs(2 * INTERVAL_SECS + 3);
    let series = format!(
        "berth_csi_volume_over_capacity_bytes{{volume_id=\"{}\",claim=\"\"}}",
        over.id
    );
    let page = loop {
        let page = http_get(port, "/metrics").await;
        if gauge(&page, "berth_csi_volumes_over_capacity") == Some(1.0) {
            break page;
        }
        assert!(
            written.elapsed() < deadline,
            "not reported within {deadline:?}:\n{page}\n{}",
            driver.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let took = written.elapsed();
    let beyond = gauge(&page, &series).unwrap_or_else(|| panic!("no {series} in\n{page}"));
    assert!(
        beyond >= (4 * MI) as f64 && beyond < (5 * MI) as f64,
        "20 MiB written into 16 MiB: {beyond} bytes beyond\n{page}"
    );
    assert!(
        !page.contains(&under.id),
        "the volume within its capacity is not listed:\n{page}"
    );
    assert!(
        gauge(&page, "berth_csi_usage_check_volumes") >= Some(2.0),
        "{page}"
    );
    let log = driver.log();
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains(&over.id)
            && l.contains("over its capacity")
            && l.contains("volume uses 20.")),
        "{log}"
    );
    assert!(
        !log.lines()
            .any(|l| l.contains(&under.id) && l.contains("over its capacity")),
        "{log}"
    );

    let c = condition(&mut node, &over).await;
    assert!(c.abnormal, "{c:?}");
    assert!(
        c.message.starts_with("volume uses 20.") && c.message.ends_with("of its 16.0 MiB capacity"),
        "{c:?}"
    );
    let c = condition(&mut node, &under).await;
    assert!(!c.abnormal, "{c:?}");
    eprintln!(
        "csi_usage_watch: overrun reported {took:?} after the write (interval {INTERVAL_SECS}s)"
    );

    // Back within its capacity: the next pass clears it.
    std::fs::remove_file(over.target.join("data")).expect("rm");
    let cleared = Instant::now();
    loop {
        let page = http_get(port, "/metrics").await;
        if gauge(&page, "berth_csi_volumes_over_capacity") == Some(0.0) {
            break;
        }
        assert!(cleared.elapsed() < deadline, "not cleared:\n{page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for p in [&over, &under] {
        unpublish(&mut node, p).await;
    }
}

/// Unmounts (lazily) when dropped, so a failing test leaves no mount.
struct Tmpfs(std::path::PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_up_probe_names_the_data_directorys_file_system() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("tmpfs");
    std::fs::create_dir(&mnt).expect("mkdir");
    nix::mount::mount(
        Some("tmpfs"),
        &mnt,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=64m"),
    )
    .expect("mount tmpfs");
    let _mounted = Tmpfs(mnt.clone());
    let port = free_port();
    let metrics = format!("--metrics-address=127.0.0.1:{port}");
    let data = format!("--data-dir={}", mnt.join("data").display());
    let driver = CsiDriver::start(&[&metrics, &data]);
    let ready = http_get(port, "/readyz").await;
    let want = format!(
        "[+]directory-capacity ok: not enforced: tmpfs at {} has no project quotas berth can use",
        mnt.display()
    );
    assert!(ready.contains(&want), "{ready}\n{}", driver.log());
}
