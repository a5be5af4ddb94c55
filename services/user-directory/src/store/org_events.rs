//! What WorkOS says of the organizations named in the directory's file
//! (by their `workos_id`): `organization.created|updated|deleted`, applied
//! as user events are (stored first, each applied once, newest wins by the
//! organization's `updated_at`).
//!
//! The provider's view (its name, its domains, whether it still exists) is
//! kept by the WorkOS id in `provider_organizations`, beside the local
//! organization, never over it: the local name is the operators' handle
//! (it links the organization to its entry in the file, follows the
//! directory's alphabet and is unique regardless of case), where a WorkOS
//! name is free text that no rule keeps unique. A deletion at WorkOS is
//! final and marks the organization; its members stay until their own
//! events (or its admin's `DELETE /org/delete`) remove them, and it takes
//! no new members. Each applied change of an organization the directory
//! has is published on `directory.organization.v1` (an update, the view
//! under `provider`).

use chrono::{DateTime, Utc};
use diesel::{pg::PgConnection, prelude::*};
use platform::events::{enqueue, topics, Envelope, Op};
use serde_json::{json, Value};

use super::{lower, schema::organizations, source, Applied, Organization, OrganizationView};
use crate::directory_config::DirectoryConfig;

diesel::table! {
    provider_organizations (workos_id) {
        workos_id -> Text,
        name -> Text,
        domains -> Jsonb,
        provider_updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
    }
}

/// An organization as WorkOS last described it.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable)]
#[diesel(table_name = provider_organizations)]
pub struct ProviderOrganization {
    pub workos_id: String,
    pub name: String,
    /// Domain names, as a JSON array of text.
    pub domains: Value,
    /// The organization's `updated_at` at WorkOS, of the newest event applied.
    pub provider_updated_at: DateTime<Utc>,
    /// When the deletion at WorkOS was applied here.
    pub deleted_at: Option<DateTime<Utc>>,
}

impl ProviderOrganization {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// What `GET /org/get` and the organization's events show under
    /// `provider`.
    pub fn view(&self) -> Value {
        json!({
            "workos_id": self.workos_id,
            "name": self.name,
            "domains": self.domains,
            "status": if self.is_deleted() { "deleted" } else { "active" },
            "updated_at": self.provider_updated_at,
            "deleted_at": self.deleted_at,
        })
    }
}

/// The organization as the API and its events show it, with the provider's
/// view under `provider` when one is recorded.
pub fn organization_view(org: &Organization, provider: Option<&ProviderOrganization>) -> Value {
    let mut v = serde_json::to_value(OrganizationView::from(org)).unwrap_or(Value::Null);
    if let (Some(p), Some(o)) = (provider, v.as_object_mut()) {
        o.insert("provider".into(), p.view());
    }
    v
}

pub fn provider_organization(
    conn: &mut PgConnection,
    workos_id: &str,
) -> QueryResult<Option<ProviderOrganization>> {
    provider_organizations::table
        .find(workos_id)
        .select(ProviderOrganization::as_select())
        .first(conn)
        .optional()
}

/// True when WorkOS deleted this organization (as far as its events told).
pub fn deleted_at_provider(conn: &mut PgConnection, workos_id: &str) -> QueryResult<bool> {
    Ok(provider_organization(conn, workos_id)?.is_some_and(|p| p.is_deleted()))
}

/// The domain names of a WorkOS organization: `domains` is a list of
/// `organization_domain` objects (`{"object", "id", "domain", "state",
/// ...}`); plain strings are taken too. Lower case, sorted, once each.
pub fn domains_of(data: &Value) -> Value {
    let mut names: Vec<String> = data
        .get("domains")
        .and_then(Value::as_array)
        .map(|ds| {
            ds.iter()
                .filter_map(|d| {
                    d.get("domain")
                        .and_then(Value::as_str)
                        .or_else(|| d.as_str())
                })
                .map(|d| d.trim().to_lowercase())
                .filter(|d| !d.is_empty())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.dedup();
    json!(names)
}

/// Applies one organization event (in the caller's transaction). `at` is
/// the organization's `updated_at` at WorkOS (the event's `created_at`
/// without it).
pub fn apply_organization_event(
    conn: &mut PgConnection,
    config: &DirectoryConfig,
    data: &Value,
    at: DateTime<Utc>,
    deleted: bool,
) -> QueryResult<Applied> {
    let workos_id = data.get("id").and_then(Value::as_str).unwrap_or_default();
    if workos_id.is_empty() {
        return Ok(Applied::Done("ignored: no organization id"));
    }
    let Some(entry) = config.by_workos_id(workos_id) else {
        return Ok(Applied::Done(
            "ignored: organization not in the directory config",
        ));
    };
    let name = data
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim();
    let domains = domains_of(data);
    let now = Utc::now();
    // The first event about this organization inserts its row; any other
    // finds it, under a row lock (two appliers of two events serialise).
    let inserted = diesel::insert_into(provider_organizations::table)
        .values((
            provider_organizations::workos_id.eq(workos_id),
            provider_organizations::name.eq(name),
            provider_organizations::domains.eq(&domains),
            provider_organizations::provider_updated_at.eq(at),
            provider_organizations::deleted_at.eq(deleted.then_some(now)),
        ))
        .on_conflict_do_nothing()
        .execute(conn)?
        == 1;
    let (before, after) = if inserted {
        let after = provider_organization(conn, workos_id)?.ok_or(diesel::NotFound)?;
        (None, after)
    } else {
        let before: ProviderOrganization = provider_organizations::table
            .find(workos_id)
            .for_update()
            .select(ProviderOrganization::as_select())
            .first(conn)?;
        if before.is_deleted() {
            return Ok(Applied::Done(
                "ignored: the organization is deleted at the provider",
            ));
        }
        let newer = at > before.provider_updated_at;
        if !newer && !deleted {
            return Ok(Applied::Done(
                "ignored: older than what the directory holds",
            ));
        }
        // A deletion is final whatever its timestamp (its payload is the
        // organization as it last was, whose updated_at may equal that of
        // the last update); it changes the name and domains only if newer.
        let after: ProviderOrganization =
            diesel::update(provider_organizations::table.find(workos_id))
                .set((
                    provider_organizations::name.eq(if newer && !name.is_empty() {
                        name
                    } else {
                        before.name.as_str()
                    }),
                    provider_organizations::domains.eq(if newer {
                        &domains
                    } else {
                        &before.domains
                    }),
                    provider_organizations::provider_updated_at
                        .eq(at.max(before.provider_updated_at)),
                    provider_organizations::deleted_at.eq(deleted.then_some(now)),
                    provider_organizations::updated_at.eq(now),
                ))
                .returning(ProviderOrganization::as_returning())
                .get_result(conn)?;
        if after == before {
            return Ok(Applied::Done("unchanged"));
        }
        (Some(before), after)
    };
    let outcome = if deleted {
        "organization marked deleted at the provider"
    } else {
        "organization updated from the provider"
    };
    // The local organization, if it was created here: a new version, and
    // its event.
    let Some(org) = organizations::table
        .filter(lower(organizations::name).eq(entry.name.to_lowercase()))
        .filter(organizations::status.eq("active"))
        .for_update()
        .select(Organization::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(Applied::Done(if deleted {
            "recorded: deleted at the provider (not created in the directory)"
        } else {
            "recorded: the organization is not created in the directory yet"
        }));
    };
    let next: Organization = diesel::update(organizations::table.find(org.id))
        .set((
            organizations::version.eq(org.version + 1),
            organizations::updated_at.eq(now),
        ))
        .returning(Organization::as_returning())
        .get_result(conn)?;
    let envelope = Envelope::new(
        Op::Update,
        "organization",
        next.id.to_string(),
        next.version,
        source("organizations"),
        Some(organization_view(&org, before.as_ref())),
        Some(organization_view(&next, Some(&after))),
    );
    enqueue(conn, topics::ORGANIZATION, &envelope)?;
    Ok(Applied::Done(outcome))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_read_from_workos_domain_objects() {
        let data = json!({"domains": [
            {"object": "organization_domain", "id": "org_domain_2", "domain": "Foo-Corp.com", "state": "verified"},
            {"object": "organization_domain", "id": "org_domain_1", "domain": "bar.example", "state": "pending"},
            "foo-corp.com",
            {"object": "organization_domain", "id": "org_domain_3"}
        ]});
        assert_eq!(domains_of(&data), json!(["bar.example", "foo-corp.com"]));
        assert_eq!(domains_of(&json!({})), json!([]));
    }
}
