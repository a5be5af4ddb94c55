//! The roles and organizations users may be given, from a file (TOML or
//! JSON) that operators edit: it is reread when its modification time
//! changes, without a restart or a rebuild (as the User Directory design
//! intended; see docs/architecture.md).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::SystemTime,
};

use anyhow::Context;
use serde::Deserialize;

/// What ships with the service when no file is found.
pub const DEFAULT_TOML: &str = include_str!("../directory.toml");

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OrganizationEntry {
    pub name: String,
    /// The WorkOS organization (`org_...`) memberships are made in.
    #[serde(default)]
    pub workos_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub organizations: Vec<OrganizationEntry>,
}

impl DirectoryConfig {
    pub fn parse(text: &str, json: bool) -> anyhow::Result<Self> {
        let c: Self = if json {
            serde_json::from_str(text)?
        } else {
            toml::from_str(text)?
        };
        Ok(c)
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }

    pub fn organization(&self, name: &str) -> Option<&OrganizationEntry> {
        self.organizations
            .iter()
            .find(|o| o.name.eq_ignore_ascii_case(name))
    }

    pub fn by_workos_id(&self, id: &str) -> Option<&OrganizationEntry> {
        self.organizations
            .iter()
            .find(|o| o.workos_id.as_deref() == Some(id))
    }
}

struct Loaded {
    modified: Option<SystemTime>,
    config: Arc<DirectoryConfig>,
}

/// The file and its last good contents.
pub struct ConfigFile {
    path: PathBuf,
    loaded: RwLock<Loaded>,
}

fn read(path: &Path) -> anyhow::Result<(Option<SystemTime>, DirectoryConfig)> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let json = path.extension().is_some_and(|e| e == "json");
    let config = DirectoryConfig::parse(&text, json)
        .with_context(|| format!("parsing {}", path.display()))?;
    Ok((modified, config))
}

impl ConfigFile {
    /// Loads `path`; a missing file falls back to the built-in default, a
    /// file that does not parse stops start-up.
    pub fn load(path: PathBuf) -> anyhow::Result<Self> {
        let (modified, config) = if path.exists() {
            read(&path)?
        } else {
            tracing::warn!(path = %path.display(), "directory config not found; using the built-in default");
            (None, DirectoryConfig::parse(DEFAULT_TOML, false)?)
        };
        Ok(Self {
            path,
            loaded: RwLock::new(Loaded {
                modified,
                config: Arc::new(config),
            }),
        })
    }

    /// The current configuration, reread if the file changed. A broken
    /// edit keeps the last good one (and says so in the log).
    pub fn current(&self) -> Arc<DirectoryConfig> {
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        {
            let l = self.loaded.read().unwrap_or_else(|p| p.into_inner());
            if modified.is_none() || l.modified == modified {
                return l.config.clone();
            }
        }
        let mut l = self.loaded.write().unwrap_or_else(|p| p.into_inner());
        if l.modified != modified {
            match read(&self.path) {
                Ok((m, c)) => {
                    tracing::info!(path = %self.path.display(), roles = c.roles.len(), organizations = c.organizations.len(), "directory config reloaded");
                    l.modified = m;
                    l.config = Arc::new(c);
                }
                Err(e) => {
                    tracing::error!(path = %self.path.display(), error = format!("{e:#}"), "directory config is invalid; keeping the previous one");
                    l.modified = modified;
                }
            }
        }
        l.config.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_file_names_acme_and_three_roles() {
        let c = DirectoryConfig::parse(DEFAULT_TOML, false).unwrap();
        assert!(c.organization("ACME").is_some());
        for r in ["admin", "member", "viewer"] {
            assert!(c.has_role(r));
        }
    }

    #[test]
    fn json_works_too() {
        let c = DirectoryConfig::parse(
            r#"{"roles":["member"],"organizations":[{"name":"x","workos_id":"org_1"}]}"#,
            true,
        )
        .unwrap();
        assert_eq!(c.by_workos_id("org_1").unwrap().name, "x");
    }

    #[test]
    fn a_changed_file_is_reread() {
        let dir = std::env::temp_dir().join(format!("dircfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("d.toml");
        std::fs::write(&p, "roles = [\"a\"]\n").unwrap();
        let f = ConfigFile::load(p.clone()).unwrap();
        assert!(f.current().has_role("a"));
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&p, "roles = [\"b\"]\n").unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
        let file = std::fs::File::options().write(true).open(&p).unwrap();
        file.set_modified(later).unwrap();
        assert!(f.current().has_role("b"));
        std::fs::write(&p, "roles = [").unwrap();
        file.set_modified(later + std::time::Duration::from_secs(2))
            .unwrap();
        assert!(
            f.current().has_role("b"),
            "a broken edit keeps the last good file"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
