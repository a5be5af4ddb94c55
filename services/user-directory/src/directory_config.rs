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

/// The environment role of users when the file names none.
pub const BUILT_IN_ENVIRONMENT_ROLE: &str = "member";

#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// Organization roles (a membership's role).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Environment roles (a user's role across the environment, whatever
    /// the organization); absent: `["member"]`.
    #[serde(default)]
    pub environment_roles: Vec<String>,
    /// What new users get when none is asked for; absent: `member` if
    /// listed, else the first of `environment_roles`.
    #[serde(default)]
    pub default_environment_role: Option<String>,
    #[serde(default)]
    pub organizations: Vec<OrganizationEntry>,
}

impl DirectoryConfig {
    /// Parses and checks a file: the default environment role must be one
    /// of the environment roles (an old file without either keeps working).
    pub fn parse(text: &str, json: bool) -> anyhow::Result<Self> {
        let mut c: Self = if json {
            serde_json::from_str(text)?
        } else {
            toml::from_str(text)?
        };
        if c.environment_roles.is_empty() {
            c.environment_roles = vec![BUILT_IN_ENVIRONMENT_ROLE.to_owned()];
        }
        if let Some(r) = c
            .environment_roles
            .iter()
            .find(|r| r.trim().is_empty() || r.trim() != r.as_str())
        {
            anyhow::bail!("environment_roles: {r:?} is not a role name");
        }
        let default = match c.default_environment_role.take() {
            Some(d) => c.environment_role(&d).map(str::to_owned).ok_or_else(|| {
                anyhow::anyhow!(
                    "default_environment_role {d:?} is not one of environment_roles {:?}",
                    c.environment_roles
                )
            })?,
            None => c
                .environment_role(BUILT_IN_ENVIRONMENT_ROLE)
                .unwrap_or(&c.environment_roles[0])
                .to_owned(),
        };
        c.default_environment_role = Some(default);
        Ok(c)
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }

    /// The organization role as written in the file, regardless of case.
    pub fn role(&self, role: &str) -> Option<&str> {
        let role = role.trim();
        self.roles
            .iter()
            .find(|r| r.eq_ignore_ascii_case(role))
            .map(String::as_str)
    }

    /// The environment role as written in the file, regardless of case.
    pub fn environment_role(&self, role: &str) -> Option<&str> {
        let role = role.trim();
        self.environment_roles
            .iter()
            .find(|r| r.eq_ignore_ascii_case(role))
            .map(String::as_str)
    }

    /// New users' environment role (checked to be listed by `parse`).
    pub fn default_environment_role(&self) -> &str {
        self.default_environment_role
            .as_deref()
            .unwrap_or(BUILT_IN_ENVIRONMENT_ROLE)
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
    fn environment_roles_default_sanely_and_are_checked() {
        // An old file: one built-in environment role, the default.
        let c = DirectoryConfig::parse("roles = [\"member\"]\n", false).unwrap();
        assert_eq!(c.environment_roles, ["member"]);
        assert_eq!(c.default_environment_role(), "member");
        let c = DirectoryConfig::parse(
            "roles = [\"member\"]\nenvironment_roles = [\"Staff\", \"guest\"]\n",
            false,
        )
        .unwrap();
        assert_eq!(c.default_environment_role(), "Staff");
        assert_eq!(c.environment_role("STAFF"), Some("Staff"));
        assert_eq!(c.environment_role("member"), None);
        let c = DirectoryConfig::parse(
            "environment_roles = [\"staff\", \"guest\"]\ndefault_environment_role = \"GUEST\"\n",
            false,
        )
        .unwrap();
        assert_eq!(c.default_environment_role(), "guest");
        let bad = DirectoryConfig::parse(
            "environment_roles = [\"staff\"]\ndefault_environment_role = \"owner\"\n",
            false,
        );
        assert!(bad.unwrap_err().to_string().contains("owner"));
        assert!(DirectoryConfig::parse("default_environment_role = \"owner\"\n", false).is_err());
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
