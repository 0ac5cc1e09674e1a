//! berth's logs as an operator reads them (`kubectl logs`, a log
//! collector): the real `berth csi` binary answering a real RPC, with its
//! stderr captured to a file and read once the process has exited.
//!
//! The rules: a service logs at `info` when neither `BERTH_LOG` nor
//! `RUST_LOG` is set, one line per RPC naming the RPC and its duration;
//! `RUST_LOG` sets the level, and `BERTH_LOG` wins over it; `--log-format
//! json` (a global flag: before or after the subcommand) makes every line
//! one JSON object; text logs carry no colour codes when stderr is not a
//! terminal; the one-shot commands (`berth dry-run`) default to `warn`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::{berth_bin, repo_root};
use csi_proto::GetPluginInfoRequest;
use csi_proto::identity_client::IdentityClient;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

/// How long any one step (start, connect, RPC, shutdown) may take.
const STEP: Duration = Duration::from_secs(10);

/// A `berth csi` process; killed if a test fails before it is stopped.
struct Driver {
    child: Child,
    sock: PathBuf,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts `berth [before…] csi … [after…]` with `BERTH_LOG` and
    /// `RUST_LOG` removed, then `env` set, and waits for its socket.
    fn start(before: &[&str], after: &[&str], env: &[(&str, &str)]) -> Driver {
        let dir = tempfile::tempdir().expect("temp dir");
        let sock = dir.path().join("csi.sock");
        let stderr = dir.path().join("stderr.log");
        let file = std::fs::File::create(&stderr).expect("create the stderr file");
        let mut cmd = Command::new(berth_bin());
        cmd.args(before)
            .arg("csi")
            .arg(format!("--endpoint=unix://{}", sock.display()))
            .args(["--node-id=n1", "--capacity=1Gi"])
            .arg(format!(
                "--state-dir={}",
                dir.path().join("state").display()
            ))
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .args(after)
            .env_remove("BERTH_LOG")
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        let child = cmd.spawn().expect("spawn berth csi");
        let mut driver = Driver {
            child,
            sock,
            stderr,
            _dir: dir,
        };
        let deadline = Instant::now() + STEP;
        while !driver.sock.exists() {
            if let Ok(Some(status)) = driver.child.try_wait() {
                panic!("berth csi exited with {status}:\n{}", driver.log());
            }
            assert!(
                Instant::now() < deadline,
                "no socket after {STEP:?}:\n{}",
                driver.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        driver
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// One GetPluginInfo call; the driver logs it before it answers.
    async fn get_plugin_info(&self) {
        let call = async {
            let channel = loop {
                match csi_proto::connect_unix(self.sock.clone()).await {
                    Ok(c) => break c,
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            };
            IdentityClient::new(channel)
                .get_plugin_info(GetPluginInfoRequest {})
                .await
        };
        let info = tokio::time::timeout(STEP, call)
            .await
            .unwrap_or_else(|_| panic!("GetPluginInfo took over {STEP:?}:\n{}", self.log()))
            .unwrap_or_else(|s| panic!("GetPluginInfo failed: {s:?}\n{}", self.log()));
        assert_eq!(info.into_inner().name, "csi.berth.dev");
    }

    /// Stops the driver as the kubelet would (SIGTERM; SIGKILL after
    /// [`STEP`]) and returns everything it wrote to stderr.
    fn stop(mut self) -> String {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("a pid fits i32"));
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + STEP;
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.log()
    }
}

/// Runs `berth [before…] csi … [after…]` with `env`, makes one
/// GetPluginInfo call and returns the driver's stderr.
async fn csi_log(before: &[&str], after: &[&str], env: &[(&str, &str)]) -> String {
    let driver = Driver::start(before, after, env);
    driver.get_plugin_info().await;
    driver.stop()
}

/// The level of a line of the text format (`<time>  INFO <target>: …`).
fn level(line: &str) -> Option<&str> {
    line.split_whitespace()
        .nth(1)
        .filter(|l| ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(l))
}

/// The value of `duration_ms=` on a text line, if it has one.
fn duration_ms(line: &str) -> Option<f64> {
    let rest = line.split_once("duration_ms=")?.1;
    rest.split_whitespace().next()?.parse().ok()
}

/// The text line logging the GetPluginInfo call, if there is one.
fn rpc_line(log: &str) -> Option<&str> {
    log.lines()
        .find(|l| l.contains("GetPluginInfo") && duration_ms(l).is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_logs_each_rpc_at_info_by_default() {
    let log = csi_log(&[], &[], &[]).await;
    assert!(
        log.lines().any(|l| level(l) == Some("INFO")),
        "info lines with neither BERTH_LOG nor RUST_LOG:\n{log}"
    );
    let line = rpc_line(&log)
        .unwrap_or_else(|| panic!("a line naming GetPluginInfo with its duration:\n{log}"));
    assert_eq!(level(line), Some("INFO"), "{line}");
    assert!(
        duration_ms(line).is_some_and(|ms| ms >= 0.0),
        "a duration in milliseconds: {line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_log_sets_the_level() {
    let log = csi_log(&[], &[], &[("RUST_LOG", "warn")]).await;
    assert!(
        !log.lines()
            .any(|l| matches!(level(l), Some("INFO" | "DEBUG" | "TRACE"))),
        "RUST_LOG=warn leaves no info lines:\n{log}"
    );
    assert!(rpc_line(&log).is_none(), "no RPC line at warn:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_log_wins_over_rust_log() {
    let env = [("BERTH_LOG", "info"), ("RUST_LOG", "warn")];
    let log = csi_log(&[], &[], &env).await;
    let line =
        rpc_line(&log).unwrap_or_else(|| panic!("BERTH_LOG=info wins over RUST_LOG=warn:\n{log}"));
    assert_eq!(level(line), Some("INFO"), "{line}");
}

/// Does this JSON line belong to the `rpc` call (a field of its span, of
/// one of its spans, or of the event itself)?
fn names_rpc(v: &Value, rpc: &str) -> bool {
    v["span"]["rpc"] == rpc
        || v["fields"]["rpc"] == rpc
        || v["spans"]
            .as_array()
            .is_some_and(|spans| spans.iter().any(|s| s["rpc"] == rpc))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_makes_every_line_one_object() {
    // A global flag: the same before the subcommand as after it.
    for (before, after) in [
        (&["--log-format", "json"][..], &[][..]),
        (&[][..], &["--log-format=json"][..]),
    ] {
        let log = csi_log(before, after, &[]).await;
        let lines: Vec<Value> = log
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| {
                    panic!("{before:?} csi {after:?}: not one JSON object ({e}): {l}\n{log}")
                })
            })
            .collect();
        assert!(!lines.is_empty(), "{before:?} csi {after:?}: no log at all");
        for v in &lines {
            assert!(
                v["level"].is_string() && v["fields"].is_object(),
                "every line has a level and fields: {v}"
            );
        }
        let rpc = lines
            .iter()
            .find(|v| names_rpc(v, "GetPluginInfo"))
            .unwrap_or_else(|| panic!("{before:?} csi {after:?}: no GetPluginInfo line:\n{log}"));
        assert_eq!(rpc["level"], "INFO", "{rpc}");
        assert!(
            rpc["fields"]["duration_ms"]
                .as_f64()
                .is_some_and(|ms| ms >= 0.0),
            "a numeric duration: {rpc}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_off_a_terminal_have_no_colour_codes() {
    // stderr is a file here, as it is under `kubectl logs`.
    let log = csi_log(&[], &[], &[]).await;
    assert!(rpc_line(&log).is_some(), "something was logged:\n{log}");
    assert!(
        !log.contains('\u{1b}'),
        "no ANSI escape off a terminal:\n{log:?}"
    );
}

#[test]
fn one_shot_commands_log_only_warnings_by_default() {
    let out = Command::new(berth_bin())
        .args(["dry-run", "-f", "examples/demo/"])
        .current_dir(repo_root())
        .env_remove("BERTH_LOG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("run berth dry-run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "berth dry-run -f examples/demo/ ({}):\n{stderr}",
        out.status
    );
    assert!(
        !stderr
            .lines()
            .any(|l| matches!(level(l), Some("INFO" | "DEBUG" | "TRACE"))),
        "no info noise on a one-shot command's stderr:\n{stderr}"
    );
}
