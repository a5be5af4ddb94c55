//! A service's database holds the platform's migrations and its own in one
//! `__diesel_schema_migrations` table, keyed by version alone: a service
//! migration with a platform migration's version would be taken as run and
//! never run. The platform's versions end in `9xxxxx` (or, before that rule,
//! `000000`); no service may use one of them.

use std::{collections::HashSet, path::Path};

fn versions(dir: &Path) -> HashSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.split('_').next().map(str::to_owned)
        })
        .collect()
}

#[test]
fn no_service_migration_shares_a_version_with_a_platform_migration() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let platform = versions(&root.join("platform"));
    assert!(!platform.is_empty());
    for entry in std::fs::read_dir(&root).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "platform" || !entry.path().is_dir() {
            continue;
        }
        let shared: Vec<_> = versions(&entry.path())
            .intersection(&platform)
            .cloned()
            .collect();
        assert!(
            shared.is_empty(),
            "migrations/{name} reuses the platform's versions {shared:?}"
        );
    }
}
