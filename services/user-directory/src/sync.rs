//! Keeping the directory in step with the identity provider.
//!
//! WorkOS: webhooks are verified (HMAC-SHA256 over `"<t>.<raw body>"`),
//! stored once by event id and acknowledged at once; the Events API fills
//! any gap. An applier then applies each stored event once, and only what
//! is newer than what the directory holds (`updated_at`): WorkOS neither
//! orders nor deduplicates deliveries. Deleted users and memberships stay
//! as tombstones so that a late, older event cannot bring them back.
//!
//! Organizations named in the directory's file follow
//! `organization.created|updated|deleted` the same way (see
//! `store::org_events`).
//!
//! Authenticator: `iam.user.v1` events, applied by version, to members
//! and to the standing (activity, session epoch) of organization admins.
//!
//! This module decides what applies; the writes are the store's
//! (`store::user_events`).

use chrono::{DateTime, Utc};
use contracts::{
    envelope::{Change, PayloadError},
    topics::user::Account,
    Envelope, Op,
};
use diesel::{pg::PgConnection, Connection, QueryResult};
use ring::hmac;
use serde_json::Value;
use uuid::Uuid;

use crate::{
    directory_config::DirectoryConfig,
    store::{
        self,
        user_events::{self, Profile, ProviderMembership},
    },
};

/// Why a webhook is refused (answered 401, nothing stored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the WorkOS-Signature header is missing")]
    Missing,
    #[error("the WorkOS-Signature header is malformed")]
    Malformed,
    #[error("the signature's timestamp is too old")]
    Stale,
    #[error("the signature's timestamp is in the future")]
    Future,
    #[error("the signature does not match")]
    Mismatch,
}

/// Verifies `WorkOS-Signature: t=<unix ms>, v1=<hex>` over the raw body,
/// as received (never re-serialised), in constant time.
pub fn verify_signature(
    header: Option<&str>,
    body: &[u8],
    secret: &[u8],
    now_ms: i64,
    tolerance_ms: i64,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp: Option<&str> = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match k.trim() {
            "t" => timestamp = Some(v.trim()),
            "v1" => signatures.push(v.trim()),
            _ => {}
        }
    }
    let t_text = timestamp.ok_or(SignatureError::Malformed)?;
    let t: i64 = t_text.parse().map_err(|_| SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now_ms - t > tolerance_ms {
        return Err(SignatureError::Stale);
    }
    if t - now_ms > tolerance_ms {
        return Err(SignatureError::Future);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut message = Vec::with_capacity(t_text.len() + 1 + body.len());
    message.extend_from_slice(t_text.as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    for sig in signatures {
        if let Ok(bytes) = hex::decode(sig) {
            // ring compares in constant time.
            if hmac::verify(&key, &message, &bytes).is_ok() {
                return Ok(());
            }
        }
    }
    Err(SignatureError::Mismatch)
}

pub use crate::store::Applied;

fn timestamp(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

fn text<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

/// `email` with the names a WorkOS user event gives.
fn profile<'a>(data: &'a Value, email: &'a str) -> Profile<'a> {
    Profile {
        email,
        first_name: text(data, "first_name"),
        last_name: text(data, "last_name"),
    }
}

/// Applies one WorkOS event in one transaction.
pub fn apply_event(
    conn: &mut PgConnection,
    config: &DirectoryConfig,
    event: &str,
    payload: &Value,
) -> QueryResult<Applied> {
    let data = payload.get("data").cloned().unwrap_or(Value::Null);
    let at = timestamp(&data["updated_at"])
        .or_else(|| timestamp(&payload["created_at"]))
        .unwrap_or_else(Utc::now);
    conn.transaction(|conn| match event {
        "user.created" | "user.updated" => apply_user(conn, &data, at, false),
        "user.deleted" => apply_user(conn, &data, at, true),
        "organization_membership.created" | "organization_membership.updated" => {
            apply_membership(conn, config, &data, at, false)
        }
        "organization_membership.deleted" => apply_membership(conn, config, &data, at, true),
        "organization.created" | "organization.updated" => {
            store::org_events::apply_organization_event(conn, config, &data, at, false)
        }
        "organization.deleted" => {
            store::org_events::apply_organization_event(conn, config, &data, at, true)
        }
        _ => Ok(Applied::Done("ignored: not an event the directory follows")),
    })
}

fn email_free_for(conn: &mut PgConnection, email: &str, user: Option<Uuid>) -> QueryResult<bool> {
    Ok(match store::user_by_email(conn, email)? {
        None => true,
        Some(u) => Some(u.id) == user,
    })
}

fn apply_user(
    conn: &mut PgConnection,
    data: &Value,
    at: DateTime<Utc>,
    deleted: bool,
) -> QueryResult<Applied> {
    let reference = text(data, "id");
    if reference.is_empty() {
        return Ok(Applied::Done("ignored: no user id"));
    }
    let email = text(data, "email");
    match user_events::user_for_update(conn, reference)? {
        Some(u) if u.deleted_at.is_some() => Ok(Applied::Done("ignored: the user is deleted")),
        Some(u) if u.provider_updated_at.is_some_and(|seen| seen >= at) => Ok(Applied::Done(
            "ignored: older than what the directory holds",
        )),
        Some(u) if deleted => {
            user_events::delete_user_from_provider(conn, &u, at)?;
            Ok(Applied::Done("user deleted"))
        }
        Some(u) => {
            let email = if !email.is_empty() && email_free_for(conn, email, Some(u.id))? {
                email.to_owned()
            } else {
                u.email.clone()
            };
            let profile = Profile {
                email: &email,
                first_name: data["first_name"].as_str().unwrap_or(&u.first_name),
                last_name: data["last_name"].as_str().unwrap_or(&u.last_name),
            };
            user_events::update_user_from_provider(conn, &u, &profile, at)?;
            Ok(Applied::Done("user updated"))
        }
        None if deleted => {
            // A tombstone: the creation may still arrive, late.
            user_events::insert_user_tombstone(conn, reference, &profile(data, email), at)?;
            Ok(Applied::Done("tombstone for a user never seen"))
        }
        None => {
            if store::creation_open_for(conn, reference)? {
                return Ok(Applied::Later("the directory is creating this user"));
            }
            if email.is_empty() || !email_free_for(conn, email, None)? {
                return Ok(Applied::Done("ignored: the email belongs to another user"));
            }
            user_events::insert_user_from_provider(conn, reference, &profile(data, email), at)?;
            Ok(Applied::Done("user created from the provider"))
        }
    }
}

fn apply_membership(
    conn: &mut PgConnection,
    config: &DirectoryConfig,
    data: &Value,
    at: DateTime<Utc>,
    deleted: bool,
) -> QueryResult<Applied> {
    let reference = text(data, "id");
    if reference.is_empty() {
        return Ok(Applied::Done("ignored: no membership id"));
    }
    let role = data
        .pointer("/role/slug")
        .and_then(Value::as_str)
        .or_else(|| data.get("role_slug").and_then(Value::as_str))
        .unwrap_or_default()
        .to_owned();
    let status = match text(data, "status") {
        "inactive" => "inactive",
        "pending" => "pending",
        _ => "active",
    };
    let Some(user) = store::user_by_reference(conn, text(data, "user_id"))? else {
        return Ok(Applied::Later("the membership's user is not known yet"));
    };
    let Some(entry) = config.by_workos_id(text(data, "organization_id")) else {
        return Ok(Applied::Done(
            "ignored: organization not in the directory config",
        ));
    };
    let Some(org) = store::organization_by_name(conn, &entry.name)? else {
        return Ok(Applied::Done(
            "ignored: organization not created in the directory",
        ));
    };
    // WorkOS deleted the organization: it takes no members (their deletions apply).
    if !deleted && store::org_events::deleted_at_provider(conn, text(data, "organization_id"))? {
        return Ok(Applied::Done(
            "ignored: the organization is deleted at the provider",
        ));
    }
    let existing = user_events::membership_for_update(conn, reference, user.id, org.id)?;
    match existing {
        Some(m) if m.status == "deleted" && m.reference_id.as_deref() == Some(reference) => {
            Ok(Applied::Done("ignored: the membership is deleted"))
        }
        Some(m)
            if m.reference_id.as_deref() == Some(reference)
                && m.provider_updated_at.is_some_and(|seen| seen >= at) =>
        {
            Ok(Applied::Done(
                "ignored: older than what the directory holds",
            ))
        }
        Some(m) => {
            let next_status = if deleted { "deleted" } else { status };
            let next_role = if role.is_empty() {
                m.role.clone()
            } else {
                role
            };
            let next = ProviderMembership {
                reference,
                role: &next_role,
                status: next_status,
                at,
            };
            // With its event: a deletion if `deleted`, else an update.
            user_events::update_membership_from_provider(conn, &m, &next, &user, &org.name)?;
            Ok(Applied::Done(if deleted {
                "membership deleted"
            } else {
                "membership updated"
            }))
        }
        None => {
            let new = ProviderMembership {
                reference,
                role: if role.is_empty() { "member" } else { &role },
                status: if deleted { "deleted" } else { status },
                at,
            };
            // A deleted one is a tombstone, without an event.
            user_events::insert_membership_from_provider(conn, &user, org.id, &org.name, &new)?;
            Ok(Applied::Done(if deleted {
                "tombstone for a membership never seen"
            } else {
                "membership created from the provider"
            }))
        }
    }
}

/// Applies an `iam.user.v1` event to the account it names, if the
/// directory has it: a member's email, names and activity follow the
/// authenticator; an organization admin's activity and session epoch
/// (`session_epoch`, 0 in events from before it existed) are what their
/// organization tokens are checked against. Versions at or below the one
/// applied change nothing.
pub fn apply_iam_user(conn: &mut PgConnection, e: &Envelope) -> anyhow::Result<()> {
    let Change { state, deleted } = match e.state::<Account>() {
        Ok(c) => c,
        Err(PayloadError::NoState) => return Ok(()),
        Err(err) => {
            // Retrying cannot fix it, and it must not block the partition.
            tracing::error!(event_id = %e.event_id, key = %e.key, error = %platform::problem::chain(&err), "skipping a user event that is not an account");
            return Ok(());
        }
    };
    let reference = state.id.to_string();
    let active = state.active_after(deleted || e.op == Op::Delete);
    conn.transaction(|conn| -> anyhow::Result<()> {
        store::apply_admin_account(conn, &reference, e.version, state.session_epoch, active)?;
        let Some(u) = user_events::user_for_update(conn, &reference)? else {
            return Ok(()); // not one of the directory's members
        };
        if u.deleted_at.is_some() || u.provider_version.is_some_and(|v| v >= e.version) {
            return Ok(());
        }
        let email = if !state.email.is_empty() && email_free_for(conn, &state.email, Some(u.id))? {
            state.email.clone()
        } else {
            u.email.clone()
        };
        // Names an older event lacks (empty) stay as they are.
        let profile = Profile {
            email: &email,
            first_name: if state.firstname.is_empty() {
                &u.first_name
            } else {
                &state.firstname
            },
            last_name: if state.lastname.is_empty() {
                &u.last_name
            } else {
                &state.lastname
            },
        };
        user_events::update_user_from_account(conn, &u, &profile, active, e.version)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"event_01","event":"user.created","data":{}}"#;
    const T: i64 = 1_700_000_000_000;
    /// HMAC-SHA256("whsec_test_secret", "1700000000000." + BODY), computed
    /// independently (Python's hmac).
    const GOLDEN: &str = "da1c7cc6d9e3c2b3ff11dd514781fc88103e0550850ca66cc64f805faf52e243";

    fn check(
        header: Option<&str>,
        body: &[u8],
        secret: &[u8],
        now: i64,
    ) -> Result<(), SignatureError> {
        verify_signature(header, body, secret, now, 180_000)
    }

    #[test]
    fn the_golden_signature_verifies() {
        let h = format!("t={T}, v1={GOLDEN}");
        assert_eq!(check(Some(&h), BODY, SECRET, T + 1000), Ok(()));
        // No space after the comma, and an unknown scheme beside it.
        let h = format!("t={T},v0=abc,v1={GOLDEN}");
        assert_eq!(check(Some(&h), BODY, SECRET, T), Ok(()));
    }

    #[test]
    fn a_tampered_body_fails() {
        let h = format!("t={T}, v1={GOLDEN}");
        let tampered = br#"{"id":"event_01","event":"user.deleted","data":{}}"#;
        assert_eq!(
            check(Some(&h), tampered, SECRET, T),
            Err(SignatureError::Mismatch)
        );
        // Even whitespace counts: the raw bytes are signed.
        let spaced = br#"{"id": "event_01","event":"user.created","data":{}}"#;
        assert_eq!(
            check(Some(&h), spaced, SECRET, T),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_wrong_secret_fails() {
        let h = format!("t={T}, v1={GOLDEN}");
        assert_eq!(
            check(Some(&h), BODY, b"whsec_other", T),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn stale_and_future_timestamps_fail() {
        let h = format!("t={T}, v1={GOLDEN}");
        assert_eq!(
            check(Some(&h), BODY, SECRET, T + 180_001),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            check(Some(&h), BODY, SECRET, T - 180_001),
            Err(SignatureError::Future)
        );
        assert_eq!(check(Some(&h), BODY, SECRET, T + 180_000), Ok(()));
    }

    #[test]
    fn a_missing_or_malformed_header_fails() {
        assert_eq!(check(None, BODY, SECRET, T), Err(SignatureError::Missing));
        for bad in [
            "",
            "garbage",
            &format!("v1={GOLDEN}"),
            &format!("t=soon, v1={GOLDEN}"),
            &format!("t={T}"),
        ] {
            assert_eq!(
                check(Some(bad), BODY, SECRET, T),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        let h = format!("t={T}, v1=not-hex");
        assert_eq!(
            check(Some(&h), BODY, SECRET, T),
            Err(SignatureError::Mismatch)
        );
    }
}
