//! - sqlx::migrate! embeds host/migrations at compile time: rebuild when it changes.
//! - The first-party runtime adapters are embedded into the binary
//!   (`src/plugins/builtin.rs`) from the staged plugins directory.

use std::path::{Path, PathBuf};

/// The plugins built into `bay`.
const BUILTIN: &[&str] = &["ship-adapter", "gull-adapter"];

fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-env-changed=BAY_BUILTIN_PLUGINS_DIR");
    let dir = std::env::var_os("BAY_BUILTIN_PLUGINS_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let target =
            std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
        target.join("plugins")
    });
    let mut entries = Vec::new();
    for name in BUILTIN {
        let manifest = dir.join(name).join("plugin.toml");
        println!("cargo:rerun-if-changed={}", manifest.display());
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            println!(
                "cargo:warning=built-in plugin {name} not found in {} (run ./dev plugins first): this bay has no built-in {name}",
                dir.display()
            );
            continue;
        };
        let component = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("component").map(|r| r.trim_start_matches([' ', '=']).trim().trim_matches('"').to_owned()))
            .expect("component = in plugin.toml");
        let wasm = dir.join(name).join(&component);
        println!("cargo:rerun-if-changed={}", wasm.display());
        if !wasm.is_file() {
            println!("cargo:warning=built-in plugin {name}: {} is missing", wasm.display());
            continue;
        }
        entries.push(format!(
            "    Builtin {{ name: {name:?}, manifest: include_str!({:?}), wasm: include_bytes!({:?}) }},\n",
            manifest.canonicalize().unwrap(),
            wasm.canonicalize().unwrap()
        ));
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("builtin_plugins.rs");
    let code = format!("/// The embedded plugins.\npub(crate) static PLUGINS: &[Builtin] = &[\n{}];\n", entries.concat());
    std::fs::write(out, code).unwrap();
}
