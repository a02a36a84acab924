//! Compiled components cached on disk, so a restart does not recompile.
//!
//! Compiling a component with Cranelift costs tens of milliseconds (seconds
//! in a debug build); loading a precompiled `.cwasm` is an mmap. Entries are
//! keyed by the component's SHA-256 and the engine's compatibility hash, so a
//! different wasmtime version or engine configuration never loads a stale
//! artifact (deserialising is `unsafe` exactly because of that).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Compiled,
}

pub fn engine_key(engine: &Engine) -> String {
    let mut h = DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Compiles the component `bytes` (named `stem` in the cache), or loads it
/// from the cache when this engine compiled the same bytes before.
pub fn load(engine: &Engine, stem: &str, bytes: &[u8], cache_dir: &Path) -> anyhow::Result<(Component, CacheOutcome)> {
    let digest = hex::encode(&Sha256::digest(bytes)[..12]);
    let cached = cache_dir.join(format!("{stem}-{digest}-{}.cwasm", engine_key(engine)));
    if cached.is_file() {
        // SAFETY: the file name carries the engine's compatibility hash and the
        // digest of the source component; only this host writes the directory.
        match unsafe { Component::deserialize_file(engine, &cached) } {
            Ok(c) => return Ok((c, CacheOutcome::Hit)),
            Err(e) => {
                tracing::warn!(file = %cached.display(), error = %e, "discarding unreadable cached component")
            }
        }
    }
    let component = Component::new(engine, bytes)
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .with_context(|| format!("{stem} is not a valid WebAssembly component"))?;
    if let Err(e) = store(&component, &cached) {
        tracing::warn!(dir = %cache_dir.display(), error = %e, "cannot write the component cache");
    }
    Ok((component, CacheOutcome::Compiled))
}

fn store(component: &Component, path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let bytes = component.serialize().map_err(|e| anyhow::anyhow!("{e}"))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
