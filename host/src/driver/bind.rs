//! Cargo bind mounts: Shipyard Neo's other cargo storage, a directory per
//! cargo under one host directory instead of an engine volume.
//!
//! A [`BindCargos`] wraps the configured driver and takes over its volume
//! calls; sessions pass through. Two views of the same directory matter:
//! `root` is where Bay itself sees it (`cargo.root_path`, where it creates
//! and removes cargo directories) and `host_root` where the engine sees it
//! (`cargo.host_root_path`, the bind mount's source) — they differ when Bay
//! runs in a container with the host directory mounted at `root`. A cargo's
//! `driver_ref` is its engine-side path; `crates/driver-kit/src/docker_api/body.rs`
//! mounts an absolute `driver_ref` as a bind mount.
//!
//! Directories carry no labels, so each cargo's labels are kept beside it in
//! `<root>/.bay-volumes/<name>.json` (mode 0700, outside every cargo): the
//! reconcile pass finds half-created cargos by them as it does volumes.
//! Cargos created as engine volumes before the switch keep working: a
//! `driver_ref` that is not an absolute path goes to the wrapped driver.

use std::{
    io::ErrorKind,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Arc,
};

use async_trait::async_trait;

use super::{ContainerInfo, Driver, DriverError, ExitStream, Labels, LaunchedContainer, Named, SessionInfo, SessionSpec};

/// Where the labels of the cargo directories are kept, under the root.
const META_DIR: &str = ".bay-volumes";

pub(crate) struct BindCargos {
    inner: Arc<dyn Driver>,
    root: PathBuf,
    host_root: PathBuf,
    /// Given to each new cargo directory (`cargo.bind_owner`), so a runtime
    /// running as that user can write its workspace.
    owner: Option<(u32, u32)>,
}

impl BindCargos {
    pub(crate) fn new(inner: Arc<dyn Driver>, root: PathBuf, host_root: PathBuf, owner: Option<(u32, u32)>) -> std::io::Result<Self> {
        std::fs::create_dir_all(&root)?;
        let meta = root.join(META_DIR);
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&meta)?;
        std::fs::set_permissions(&meta, std::fs::Permissions::from_mode(0o700))?;
        Ok(BindCargos { inner, root, host_root, owner })
    }

    /// Bay's path of the cargo directory `driver_ref` names; `None` for a
    /// path outside the host root or not a cargo's name.
    fn local(&self, driver_ref: &str) -> Option<PathBuf> {
        let rest = Path::new(driver_ref).strip_prefix(&self.host_root).ok()?;
        let name = rest.to_str()?;
        valid_name(name).then(|| self.root.join(name))
    }

    fn meta(&self, name: &str) -> PathBuf {
        self.root.join(META_DIR).join(format!("{name}.json"))
    }
}

/// A cargo directory's name: one path component Bay itself made
/// (`bay-cargo-<id>`), never `..` or a nested path.
fn valid_name(name: &str) -> bool {
    name.starts_with("bay-cargo-") && name.len() <= 200 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> DriverError {
    DriverError::Engine(format!("{what} {}: {e}", path.display()))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, DriverError> + Send + 'static) -> Result<T, DriverError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| DriverError::Engine(format!("cargo directory task: {e}")))?
}

#[async_trait]
impl Driver for BindCargos {
    async fn launch_session(&self, spec: &SessionSpec) -> Result<Vec<LaunchedContainer>, DriverError> {
        self.inner.launch_session(spec).await
    }
    async fn destroy_session(&self, session_id: &str) -> Result<(), DriverError> {
        self.inner.destroy_session(session_id).await
    }
    async fn session_status(&self, session_id: &str) -> Result<Vec<ContainerInfo>, DriverError> {
        self.inner.session_status(session_id).await
    }
    async fn list_sessions(&self, labels: &Labels) -> Result<Vec<SessionInfo>, DriverError> {
        self.inner.list_sessions(labels).await
    }
    async fn session_logs(&self, session_id: &str, lines: u32) -> Result<String, DriverError> {
        self.inner.session_logs(session_id, lines).await
    }
    async fn pause_session(&self, session_id: &str) -> Result<(), DriverError> {
        self.inner.pause_session(session_id).await
    }
    async fn resume_session(&self, session_id: &str) -> Result<(), DriverError> {
        self.inner.resume_session(session_id).await
    }
    fn container_exits(&self, labels: &Labels) -> Option<ExitStream> {
        self.inner.container_exits(labels)
    }

    /// Creates `<root>/<name>` (adopting one that exists), owned by
    /// `cargo.bind_owner`, and records its labels.
    async fn create_volume(&self, name: &str, labels: &Labels) -> Result<String, DriverError> {
        if !valid_name(name) {
            return Err(DriverError::Engine(format!("not a cargo directory name: {name:?}")));
        }
        let dir = self.root.join(name);
        let meta = self.meta(name);
        let owner = self.owner;
        let labels_json = serde_json::to_vec(labels).map_err(|e| DriverError::Engine(e.to_string()))?;
        blocking(move || {
            // Labels first: a crash between the two leaves a record the
            // reconcile pass can act on, never an unlabelled directory.
            std::fs::write(&meta, labels_json).map_err(|e| io_err("writing", &meta, e))?;
            match std::fs::DirBuilder::new().mode(0o755).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("creating", &dir, e)),
            }
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(|e| io_err("giving ownership of", &dir, e))?;
            }
            Ok(())
        })
        .await?;
        Ok(self.host_root.join(name).to_string_lossy().into_owned())
    }

    async fn delete_volume(&self, driver_ref: &str) -> Result<(), DriverError> {
        if !driver_ref.starts_with('/') {
            return self.inner.delete_volume(driver_ref).await;
        }
        let dir = self.local(driver_ref).ok_or_else(|| DriverError::Engine(format!("{driver_ref} is not a cargo directory of this Bay")))?;
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let meta = self.meta(&name);
        blocking(move || {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("removing", &dir, e)),
            }
            match std::fs::remove_file(&meta) {
                Err(e) if e.kind() != ErrorKind::NotFound => Err(io_err("removing", &meta, e)),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn volume_exists(&self, driver_ref: &str) -> Result<bool, DriverError> {
        if !driver_ref.starts_with('/') {
            return self.inner.volume_exists(driver_ref).await;
        }
        Ok(self.local(driver_ref).is_some_and(|d| d.is_dir()))
    }

    /// The engine's volumes (from before bind mode) and the cargo
    /// directories, each named by its `driver_ref`.
    async fn list_volumes(&self, labels: &Labels) -> Result<Vec<Named>, DriverError> {
        let mut found = self.inner.list_volumes(labels).await?;
        let meta_dir = self.root.join(META_DIR);
        let host_root = self.host_root.clone();
        let wanted = labels.clone();
        let dirs = blocking(move || {
            let mut out = Vec::new();
            let entries = match std::fs::read_dir(&meta_dir) {
                Ok(e) => e,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(io_err("listing", &meta_dir, e)),
            };
            for entry in entries.flatten() {
                let file = entry.file_name().to_string_lossy().into_owned();
                let Some(name) = file.strip_suffix(".json").filter(|n| valid_name(n)) else {
                    continue;
                };
                let Ok(have) = std::fs::read(entry.path()).map_err(drop).and_then(|b| serde_json::from_slice::<Labels>(&b).map_err(drop)) else {
                    continue;
                };
                if wanted.iter().all(|(k, v)| have.get(k) == Some(v)) {
                    out.push(Named { name: host_root.join(name).to_string_lossy().into_owned(), labels: have });
                }
            }
            Ok(out)
        })
        .await?;
        found.extend(dirs);
        Ok(found)
    }
}

/// The engine-side root of the cargo directories as Shipyard Neo finds it
/// when `cargo.host_root_path` is unset: the source of the mount at
/// `root_path` in `/proc/self/mountinfo` (Bay in a container with a host
/// directory mounted there). Its "root" field is the path within the
/// source file system, which is the host path when that is the host's root
/// file system (as for a Compose bind mount).
pub(crate) fn detect_host_root(mountinfo: &str, root_path: &Path) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let mut fields = line.split(' ');
        let root = fields.nth(3)?;
        let mount_point = fields.next()?;
        (Path::new(&unescape(mount_point)) == root_path).then(|| PathBuf::from(unescape(root)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::memory::MemoryDriver;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_host_root_is_read_from_mountinfo() {
        let info = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                    311 290 8:1 /home/me/bay\\040cargos /var/lib/bay/cargos rw,relatime - ext4 /dev/sda1 rw\n";
        assert_eq!(detect_host_root(info, Path::new("/var/lib/bay/cargos")), Some(PathBuf::from("/home/me/bay cargos")));
        assert_eq!(detect_host_root(info, Path::new("/var/lib/other")), None);
    }

    #[tokio::test]
    async fn cargo_directories_are_created_listed_and_removed_under_the_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("bay");
        let bind = BindCargos::new(Arc::new(MemoryDriver::default()), root.clone(), PathBuf::from("/srv/cargos"), None).unwrap();
        let l = labels(&[("bay.instance_id", "i1"), ("bay.cargo_id", "ws-1")]);
        let r = bind.create_volume("bay-cargo-ws-1", &l).await.unwrap();
        assert_eq!(r, "/srv/cargos/bay-cargo-ws-1");
        assert!(root.join("bay-cargo-ws-1").is_dir());
        assert!(bind.volume_exists(&r).await.unwrap());
        // Adopting an existing directory is not an error.
        assert_eq!(bind.create_volume("bay-cargo-ws-1", &l).await.unwrap(), r);
        let listed = bind.list_volumes(&labels(&[("bay.instance_id", "i1")])).await.unwrap();
        assert_eq!(listed, vec![Named { name: r.clone(), labels: l.clone() }]);
        assert!(bind.list_volumes(&labels(&[("bay.instance_id", "i2")])).await.unwrap().is_empty());
        std::fs::write(root.join("bay-cargo-ws-1/f"), "x").unwrap();
        bind.delete_volume(&r).await.unwrap();
        assert!(!root.join("bay-cargo-ws-1").exists());
        assert!(bind.list_volumes(&Labels::new()).await.unwrap().is_empty());
        // Gone already: not an error.
        bind.delete_volume(&r).await.unwrap();
    }

    #[tokio::test]
    async fn nothing_outside_the_root_is_created_or_removed() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("bay");
        let bind = BindCargos::new(Arc::new(MemoryDriver::default()), root.clone(), root.clone(), None).unwrap();
        for name in ["../bay-cargo-x", "bay-cargo-a/b", "other", "bay-cargo-..", ""] {
            assert!(bind.create_volume(name, &Labels::new()).await.is_err(), "{name}");
        }
        let victim = d.path().join("keep");
        std::fs::create_dir(&victim).unwrap();
        for r in [victim.to_str().unwrap().to_owned(), format!("{}/bay-cargo-x/../../keep", root.display()), "/etc".into()] {
            assert!(bind.delete_volume(&r).await.is_err(), "{r}");
        }
        assert!(victim.is_dir());
        // A name that is not a path goes to the wrapped driver's volumes.
        let named = bind.inner.create_volume("bay-cargo-v", &Labels::new()).await.unwrap();
        assert!(bind.volume_exists(&named).await.unwrap());
        bind.delete_volume(&named).await.unwrap();
        assert!(!bind.volume_exists(&named).await.unwrap());
    }
}
