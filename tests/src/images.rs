//! Container images for the real node, made from files already on this
//! machine (no registry, no Docker engine): a root file system in a
//! directory, packed as a docker-archive tarball (`layer.tar`, the config
//! named by its sha256, `manifest.json`) that `ctr images import` takes.
//!
//! - `registry.k8s.io/pause:3.10`, the sandbox image the kubelet asks for:
//!   Debian's static busybox and a `/pause` shell loop that sleeps until
//!   SIGTERM/SIGINT;
//! - `docker.io/library/busybox:1.36`, what deploy/kind/README.md's smoke
//!   test runs: the same busybox with an applet link per command;
//! - `docker.io/library/berth:dev`, deploy/'s image: `target/release/berth`
//!   plus the tools `berth csi` runs (mkfs.ext4, mkfs.xfs, blkid,
//!   resize2fs, e2fsck, xfs_growfs, cp) with the shared libraries they load.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const PAUSE: &str = "registry.k8s.io/pause:3.10";
pub const BUSYBOX: &str = "docker.io/library/busybox:1.36";
pub const BERTH: &str = "docker.io/library/berth:dev";

/// Debian's static busybox (package busybox-static).
const BUSYBOX_BIN: &str = "/bin/busybox";
/// The tools `berth csi` runs (provisioner/src/csi/format.rs, controller.rs).
const BERTH_TOOLS: &[&str] = &[
    "mkfs.ext4",
    "mkfs.xfs",
    "blkid",
    "resize2fs",
    "e2fsck",
    "dumpe2fs",
    "xfs_growfs",
    "cp",
];

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn io<T>(what: impl std::fmt::Display, r: std::io::Result<T>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

fn sha256(path: &Path) -> Result<String, String> {
    let out = run(Command::new("sha256sum").arg(path))?;
    out.split_whitespace()
        .next()
        .map(str::to_string)
        .ok_or_else(|| format!("sha256sum {}: no digest", path.display()))
}

/// A minimal Linux root: the directories the runtime mounts over, a root
/// user, a sticky /tmp.
fn skeleton(root: &Path) -> Result<(), String> {
    for d in [
        "bin",
        "etc",
        "proc",
        "sys",
        "dev",
        "tmp",
        "usr/local/bin",
        "var/run",
    ] {
        io(d, fs::create_dir_all(root.join(d)))?;
    }
    io(
        "chmod /tmp",
        fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)),
    )?;
    io(
        "passwd",
        fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n"),
    )?;
    io("group", fs::write(root.join("etc/group"), "root:x:0:\n"))?;
    Ok(())
}

/// busybox as `/bin/busybox` and a link per applet (sh, cat, dd, ...).
fn add_busybox(root: &Path) -> Result<(), String> {
    io("busybox", fs::copy(BUSYBOX_BIN, root.join("bin/busybox")))?;
    let list = run(Command::new(BUSYBOX_BIN).arg("--list"))?;
    for applet in list.lines().map(str::trim).filter(|a| !a.is_empty()) {
        let link = root.join("bin").join(applet);
        if !link.exists() {
            io(applet, std::os::unix::fs::symlink("busybox", &link))?;
        }
    }
    Ok(())
}

/// Copies `path` to the same place under `root`, keeping symlinks' targets.
fn copy_file(path: &Path, root: &Path) -> Result<(), String> {
    let real = io(path.display(), fs::canonicalize(path))?;
    for p in [path.to_path_buf(), real.clone()] {
        let dst = root.join(p.strip_prefix("/").unwrap_or(&p));
        if let Some(parent) = dst.parent() {
            io(parent.display(), fs::create_dir_all(parent))?;
        }
        if dst.exists() {
            continue;
        }
        if p != real {
            io(dst.display(), std::os::unix::fs::symlink(&real, &dst))?;
        } else {
            io(dst.display(), fs::copy(&real, &dst))?;
        }
    }
    Ok(())
}

/// Copies a binary and every shared library `ldd` says it loads.
fn copy_with_libraries(bin: &Path, root: &Path) -> Result<(), String> {
    copy_file(bin, root)?;
    copy_libraries(bin, root)
}

/// Copies every shared library `ldd` says `bin` loads.
fn copy_libraries(bin: &Path, root: &Path) -> Result<(), String> {
    let out = run(Command::new("ldd").arg(bin)).unwrap_or_default();
    for line in out.lines() {
        // "libx.so.1 => /lib/x86_64-linux-gnu/libx.so.1 (0x...)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x...)"
        let lib = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(lib) = lib.filter(|l| l.starts_with('/')) {
            copy_file(Path::new(lib), root)?;
        }
    }
    Ok(())
}

fn which(tool: &str) -> Result<PathBuf, String> {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = Path::new(dir).join(tool);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(format!(
        "{tool} not found (install e2fsprogs, xfsprogs, util-linux)"
    ))
}

/// Packs `root` as image `reference` into `out/<name>.tar`.
fn docker_archive(
    root: &Path,
    reference: &str,
    entrypoint: &[&str],
    cmd: &[&str],
    out: &Path,
) -> Result<PathBuf, String> {
    let work = root.with_extension("pack");
    let _ = fs::remove_dir_all(&work);
    io(work.display(), fs::create_dir_all(&work))?;
    let layer = work.join("layer.tar");
    run(Command::new("tar")
        .args(["--owner=0", "--group=0", "--numeric-owner", "-C"])
        .arg(root)
        .arg("-cf")
        .arg(&layer)
        .arg("."))?;
    let diff_id = sha256(&layer)?;
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Entrypoint": entrypoint,
            "Cmd": cmd,
        },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{diff_id}")] },
    });
    let config_path = work.join("config.json");
    io("config", fs::write(&config_path, config.to_string()))?;
    let config_name = format!("{}.json", sha256(&config_path)?);
    io("config", fs::rename(&config_path, work.join(&config_name)))?;
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": [reference],
        "Layers": ["layer.tar"],
    }]);
    io(
        "manifest",
        fs::write(work.join("manifest.json"), manifest.to_string()),
    )?;
    let name = reference
        .rsplit('/')
        .next()
        .unwrap_or(reference)
        .replace(':', "-");
    let tarball = out.join(format!("{name}.tar"));
    run(Command::new("tar")
        .arg("-C")
        .arg(&work)
        .arg("-cf")
        .arg(&tarball)
        .args(["manifest.json", &config_name, "layer.tar"]))?;
    let _ = fs::remove_dir_all(&work);
    Ok(tarball)
}

/// The three images, as tarballs under `out`, with their references.
pub fn build_all(out: &Path, berth_bin: &Path) -> Result<Vec<(&'static str, PathBuf)>, String> {
    io(out.display(), fs::create_dir_all(out))?;

    let pause = out.join("pause-root");
    skeleton(&pause)?;
    add_busybox(&pause)?;
    let script = pause.join("pause");
    io(
        "pause",
        fs::write(
            &script,
            "#!/bin/sh\n# The sandbox's process: sleep until told to stop.\ntrap 'exit 0' TERM INT\nwhile :; do sleep 3600 & wait $!; done\n",
        ),
    )?;
    io(
        "chmod pause",
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)),
    )?;

    let busybox = out.join("busybox-root");
    skeleton(&busybox)?;
    add_busybox(&busybox)?;

    let berth = out.join("berth-root");
    skeleton(&berth)?;
    add_busybox(&berth)?;
    let dst = berth.join("usr/local/bin/berth");
    io("berth", fs::copy(berth_bin, &dst))?;
    copy_libraries(berth_bin, &berth)?;
    for tool in BERTH_TOOLS {
        copy_with_libraries(&which(tool)?, &berth)?;
    }
    if Path::new("/etc/mke2fs.conf").is_file() {
        copy_file(Path::new("/etc/mke2fs.conf"), &berth)?;
    }

    Ok(vec![
        (PAUSE, docker_archive(&pause, PAUSE, &["/pause"], &[], out)?),
        (
            BUSYBOX,
            docker_archive(&busybox, BUSYBOX, &[], &["sh"], out)?,
        ),
        (
            BERTH,
            docker_archive(&berth, BERTH, &["/usr/local/bin/berth"], &[], out)?,
        ),
    ])
}
