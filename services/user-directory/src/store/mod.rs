//! The directory in PostgreSQL. Synchronous diesel functions, called
//! through `platform::db::with_conn`. Every change of an organization or a
//! membership writes its event to the outbox in the same transaction.
//!
//! Tenancy is by row: every tenant row carries its organization's id, and
//! every query a tenant can reach filters on the id taken from the
//! caller's token, never on a name from the request.
//!
//! One file per aggregate: [`schema`] the core tables; `organizations`
//! organizations, their tenant data and the bootstrap token's uses;
//! `members` users and memberships as the API reads them, and the
//! membership events; [`user_events`] the writes the provider's user and
//! membership events make; `saga` the creation saga's rows; [`changes`]
//! the changes of a member; `provider_tasks` the removals queued for the
//! provider; `provider_events` the stored provider events and cursors;
//! [`org_events`] WorkOS's organizations; `imports` import jobs;
//! [`admin_refresh`] admins' refresh tokens; `retention` what is pruned.
//! Callers use the re-exports below.

use diesel::sql_types::Text;
use platform::events::Source;

pub mod admin_refresh;
pub mod changes;
mod imports;
mod members;
pub mod org_events;
mod organizations;
mod provider_events;
mod provider_tasks;
mod retention;
mod saga;
pub mod schema;
pub mod user_events;

pub use imports::{create_job, job, job_progress, running_jobs, ImportJob, Progress};
pub use members::{
    member, members, publish_membership, user_by_email, user_by_reference, Member, Membership,
    User, UserFilter, UserView, USER_EMAIL_UNIQUE,
};
pub use organizations::{
    activate_organization, apply_admin_account, delete_organization, drop_reservation,
    organization, organization_and_member, organization_by_admin_email, organization_by_name,
    put_tenant_data, reservations_older_than, reserve_organization, spend_bootstrap_token,
    tenant_data_of, unspend_bootstrap_token, update_organization, Organization, OrganizationView,
    ORG_ADMIN_EMAIL_UNIQUE, ORG_NAME_UNIQUE,
};
pub use provider_events::{
    cursor, due_events, event_applied, event_deferred, set_cursor, store_event, Applied,
    StoredEvent,
};
pub use provider_tasks::{
    cancel_removals, due_tasks, pending_task_count, queue_removal, task_done, task_failed,
    ProviderTask,
};
pub use retention::retention_steps;
pub use saga::{
    advance_creation, begin_creations, compensate_creation, complete_creations, creation_open_for,
    fail_creation, open_creations_older_than, was_compensated, Begin, CompletedUser, Completion,
    Creation, CreationRequest, Written, CREATION_IN_FLIGHT, OPEN_STATES,
};

diesel::define_sql_function!(fn lower(x: Text) -> Text);

fn source(table: &str) -> Source {
    Source {
        service: "user-directory".into(),
        table: table.into(),
    }
}
