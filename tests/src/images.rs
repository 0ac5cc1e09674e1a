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
//!
//! [`build_e2e`] makes the images Kubernetes' storage e2e suites run
//! (tests/storage-e2e/), under the exact references of e2e.test v1.36.3's
//! `test/utils/image/manifest.go`, so nothing is pulled.

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

/// Writes an executable file.
fn write_executable(path: &Path, text: &str) -> Result<(), String> {
    io(path.display(), fs::write(path, text))?;
    io(
        path.display(),
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)),
    )
}

/// A busybox root whose `/pause` sleeps until SIGTERM/SIGINT: the sandbox
/// image, under whatever tag it is asked for.
fn pause_root(root: &Path) -> Result<(), String> {
    skeleton(root)?;
    add_busybox(root)?;
    write_executable(
        &root.join("pause"),
        "#!/bin/sh\n# The sandbox's process: sleep until told to stop.\ntrap 'exit 0' TERM INT\nwhile :; do sleep 3600 & wait $!; done\n",
    )
}

/// The three images, as tarballs under `out`, with their references.
pub fn build_all(out: &Path, berth_bin: &Path) -> Result<Vec<(&'static str, PathBuf)>, String> {
    io(out.display(), fs::create_dir_all(out))?;

    let pause = out.join("pause-root");
    pause_root(&pause)?;

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

/// e2e.test's busybox (`imageutils.BusyBox`), every suite's default image.
pub const E2E_BUSYBOX: &str = "registry.k8s.io/e2e-test-images/busybox:1.37.0-1";
/// e2e.test's agnhost (`imageutils.Agnhost`): host-exec pods, subPath's
/// containers.
pub const E2E_AGNHOST: &str = "registry.k8s.io/e2e-test-images/agnhost:2.63.0";
/// `imageutils.Nginx`: the volumes suite runs shell commands in it, never
/// nginx.
pub const E2E_NGINX: &str = "registry.k8s.io/e2e-test-images/nginx:1.15-4";
/// `imageutils.GlibcDnsTesting`: multiVolume runs GNU dd in it.
pub const E2E_GLIBC: &str = "registry.k8s.io/e2e-test-images/glibc-dns-testing:2.0.0";
/// `imageutils.Pause`, which some suites run as a plain container.
pub const E2E_PAUSE: &str = "registry.k8s.io/pause:3.10.2";

/// The host-exec pods of the storage suites run
/// `nsenter --mount=/rootfs/proc/1/ns/mnt -- sh -c …` to act on the host.
/// On these machines PID 1 (the VM's init agent) refuses even host root
/// (`cannot open /proc/1/ns/mnt: Permission denied`), so agnhost's nsenter
/// enters the kubelet's mount namespace instead: the same host namespace,
/// found through the host's /proc under the pod's `/rootfs` (the host's `/`).
const NSENTER_WRAPPER: &str = r#"#!/bin/sh
# Enter the host's mount namespace through the kubelet rather than PID 1
# (see tests/src/images.rs).
host=
for d in /rootfs/proc/[0-9]*; do
    if [ "$(cat "$d/comm" 2>/dev/null)" = kubelet ]; then
        host=${d##*/}
        break
    fi
done
n=$#
for a in "$@"; do
    case "$a" in
    --mount=/rootfs/proc/1/ns/mnt) [ -n "$host" ] && a="--mount=/rootfs/proc/$host/ns/mnt" ;;
    esac
    set -- "$@" "$a"
done
shift "$n"
exec /bin/busybox nsenter "$@"
"#;

/// A busybox root that keeps running: its default command sleeps until
/// SIGTERM/SIGINT.
fn idle_cmd() -> [&'static str; 3] {
    [
        "sh",
        "-c",
        "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done",
    ]
}

/// The images e2e.test's storage suites run, as tarballs under `out`, with
/// their references: made of Debian's static busybox, GNU dd and agnhost
/// built from `k8s.io/kubernetes/test/images/agnhost` at the suite's
/// version (`agnhost`, from tests/k8s/build.sh --e2e).
pub fn build_e2e(out: &Path, agnhost: &Path) -> Result<Vec<(&'static str, PathBuf)>, String> {
    io(out.display(), fs::create_dir_all(out))?;
    let mut images = Vec::new();

    let busybox = out.join("e2e-busybox-root");
    skeleton(&busybox)?;
    add_busybox(&busybox)?;
    images.push((
        E2E_BUSYBOX,
        docker_archive(&busybox, E2E_BUSYBOX, &[], &["sh"], out)?,
    ));

    let nginx = out.join("e2e-nginx-root");
    skeleton(&nginx)?;
    add_busybox(&nginx)?;
    images.push((
        E2E_NGINX,
        docker_archive(&nginx, E2E_NGINX, &[], &idle_cmd(), out)?,
    ));

    // GNU dd and a shell that runs it (dash) before busybox: multiVolume's
    // `dd … oflag=nocache` is not busybox's, and busybox's sh would run its
    // own dd applet whatever PATH says.
    let glibc = out.join("e2e-glibc-root");
    skeleton(&glibc)?;
    for (tool, link) in [("dd", "bin/dd"), ("dash", "bin/sh")] {
        let path = which(tool)?;
        copy_with_libraries(&path, &glibc)?;
        let link = glibc.join(link);
        if !link.exists() {
            io(link.display(), std::os::unix::fs::symlink(&path, &link))?;
        }
    }
    add_busybox(&glibc)?;
    images.push((
        E2E_GLIBC,
        docker_archive(&glibc, E2E_GLIBC, &[], &idle_cmd(), out)?,
    ));

    // As upstream's Dockerfile: /agnhost (and /agnhost-2), /uploads, a user
    // and a group defined in the image; `pause` by default.
    let ag = out.join("e2e-agnhost-root");
    skeleton(&ag)?;
    add_busybox(&ag)?;
    io("agnhost", fs::copy(agnhost, ag.join("agnhost")))?;
    io(
        "agnhost-2",
        std::os::unix::fs::symlink("agnhost", ag.join("agnhost-2")),
    )?;
    io("uploads", fs::create_dir_all(ag.join("uploads")))?;
    io(
        "passwd",
        fs::write(
            ag.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n",
        ),
    )?;
    io(
        "group",
        fs::write(
            ag.join("etc/group"),
            "root:x:0:\nuser-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n",
        ),
    )?;
    // In place of busybox's applet link, so every PATH finds it.
    io("nsenter", fs::remove_file(ag.join("bin/nsenter")))?;
    write_executable(&ag.join("bin/nsenter"), NSENTER_WRAPPER)?;
    images.push((
        E2E_AGNHOST,
        docker_archive(&ag, E2E_AGNHOST, &["/agnhost"], &["pause"], out)?,
    ));

    let pause = out.join("e2e-pause-root");
    pause_root(&pause)?;
    images.push((
        E2E_PAUSE,
        docker_archive(&pause, E2E_PAUSE, &["/pause"], &[], out)?,
    ));
    Ok(images)
}
