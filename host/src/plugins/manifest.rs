//! Plugin manifests (`plugin.toml`): what a plugin is, which WIT contract it
//! targets, and the limits it runs under.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PluginKind {
    RuntimeAdapter,
    Driver,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub kind: PluginKind,
    /// The WIT package it was built against, e.g. `bay:plugin@0.1.0`.
    pub wit: String,
    /// The component file, relative to the manifest.
    pub component: PathBuf,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub runtime: Option<RuntimeSection>,
    #[serde(default)]
    pub driver: Option<DriverSection>,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub outbound: OutboundSection,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSection {
    /// The profile `runtime_type` served.
    #[serde(rename = "type")]
    pub runtime_type: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriverSection {
    /// The name `driver.plugin.name` selects it by.
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    pub memory_mb: Option<u64>,
    pub guest_time_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundSection {
    /// Extra origins (`http://host:port`) the plugin may reach besides the
    /// runtime endpoint of the call.
    #[serde(default)]
    pub allow: Vec<String>,
}

/// A parsed `bay:plugin@MAJOR.MINOR.PATCH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WitVersion {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl std::fmt::Display for WitVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bay:plugin@{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl WitVersion {
    pub fn parse(s: &str) -> anyhow::Result<WitVersion> {
        let Some(v) = s.strip_prefix("bay:plugin@") else {
            bail!("`wit = {s:?}`: expected `bay:plugin@<version>`");
        };
        let parts: Vec<&str> = v.split('.').collect();
        let [major, minor, patch] = parts.as_slice() else {
            bail!("`wit = {s:?}`: the version must be MAJOR.MINOR.PATCH");
        };
        let num = |x: &str| x.parse::<u64>().with_context(|| format!("`wit = {s:?}`: bad version number {x:?}"));
        Ok(WitVersion { major: num(major)?, minor: num(minor)?, patch: num(patch)? })
    }

    /// Semver compatibility with a version the host implements: same major,
    /// and for 0.x the same minor; the plugin may not need a newer minor.
    pub fn compatible_with(&self, host: WitVersion) -> bool {
        if self.major != host.major {
            return false;
        }
        if self.major == 0 { self.minor == host.minor } else { self.minor <= host.minor }
    }
}

impl Manifest {
    pub fn load(dir: &Path) -> anyhow::Result<Manifest> {
        let path = dir.join("plugin.toml");
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Manifest::parse(&text).with_context(|| format!("invalid {}", path.display()))
    }

    /// Parses and validates a manifest's text.
    pub fn parse(text: &str) -> anyhow::Result<Manifest> {
        let m: Manifest = toml::from_str(text)?;
        m.validate()?;
        Ok(m)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            bail!("name {:?} must be non-empty [A-Za-z0-9_-]", self.name);
        }
        WitVersion::parse(&self.wit)?;
        if self.kind == PluginKind::RuntimeAdapter && self.runtime.is_none() {
            bail!("a runtime-adapter needs a [runtime] section with `type`");
        }
        if self.kind == PluginKind::Driver && self.driver.is_none() {
            bail!("a driver needs a [driver] section with `name`");
        }
        for origin in &self.outbound.allow {
            let url = url::Url::parse(origin).with_context(|| format!("outbound.allow: {origin:?} is not a URL"))?;
            if super::outbound::origin(&url) != *origin {
                bail!("outbound.allow: {origin:?} must be an origin like http://host:port");
            }
        }
        Ok(())
    }

    pub fn wit_version(&self) -> WitVersion {
        WitVersion::parse(&self.wit).expect("validated")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_runtime_adapter_manifest() {
        let m: Manifest = toml::from_str(
            r#"
name = "ship-adapter"
version = "0.1.0"
kind = "runtime-adapter"
wit = "bay:plugin@0.1.0"
component = "ship_adapter.wasm"
[runtime]
type = "ship"
[limits]
memory_mb = 32
"#,
        )
        .unwrap();
        m.validate().unwrap();
        assert_eq!(m.runtime.unwrap().runtime_type, "ship");
        assert_eq!(m.limits.memory_mb, Some(32));
    }

    #[test]
    fn rejects_unknown_keys_and_bad_versions() {
        let bad =
            toml::from_str::<Manifest>("name='a'\nversion='1'\nkind='runtime-adapter'\nwit='bay:plugin@0.1.0'\ncomponent='a.wasm'\ncolour='red'\n");
        assert!(bad.is_err());
        assert!(WitVersion::parse("bay:plugin@0.1").is_err());
        assert!(WitVersion::parse("other:plugin@0.1.0").is_err());
    }

    #[test]
    fn semver_compatibility() {
        let host = WitVersion::parse("bay:plugin@0.1.0").unwrap();
        assert!(WitVersion::parse("bay:plugin@0.1.3").unwrap().compatible_with(host));
        assert!(!WitVersion::parse("bay:plugin@0.2.0").unwrap().compatible_with(host));
        assert!(!WitVersion::parse("bay:plugin@1.1.0").unwrap().compatible_with(WitVersion::parse("bay:plugin@1.0.0").unwrap()));
        assert!(WitVersion::parse("bay:plugin@1.0.0").unwrap().compatible_with(WitVersion::parse("bay:plugin@1.2.0").unwrap()));
    }
}
