//! The dashboard's tables in its service's database (the migration
//! `dashboard_sessions` of each service that has a dashboard): sign-ins
//! under way and sessions. Only SHA-256 digests of the random values the
//! browser holds are stored, so a copy of the table opens no session.

use chrono::{DateTime, Utc};
use diesel::{prelude::*, PgConnection};

diesel::table! {
    /// A sign-in begun and not yet back: its `state` (digest) and PKCE
    /// verifier. Taken (deleted) by the callback, used at most once.
    dashboard_logins (state_hash) {
        state_hash -> Text,
        verifier -> Text,
        expires_at -> Timestamptz,
    }
}

diesel::table! {
    /// A signed-in browser: its cookie's digest and the safekeeper's tokens.
    dashboard_sessions (id_hash) {
        id_hash -> Text,
        subject -> Text,
        name -> Text,
        access_token -> Text,
        refresh_token -> Nullable<Text>,
        expires_at -> Timestamptz,
        created_at -> Timestamptz,
    }
}

/// A stored session.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = dashboard_sessions)]
pub struct SessionRow {
    pub id_hash: String,
    pub subject: String,
    pub name: String,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// Stores a sign-in under way, dropping those that expired.
pub fn insert_login(
    c: &mut PgConnection,
    state_hash: &str,
    verifier: &str,
    expires_at: DateTime<Utc>,
) -> QueryResult<()> {
    use dashboard_logins::dsl as l;
    diesel::delete(l::dashboard_logins.filter(l::expires_at.lt(Utc::now()))).execute(c)?;
    diesel::insert_into(l::dashboard_logins)
        .values((
            l::state_hash.eq(state_hash),
            l::verifier.eq(verifier),
            l::expires_at.eq(expires_at),
        ))
        .execute(c)?;
    Ok(())
}

/// Takes the sign-in of `state_hash`: its verifier if it had not expired.
pub fn take_login(c: &mut PgConnection, state_hash: &str) -> QueryResult<Option<String>> {
    use dashboard_logins::dsl as l;
    let taken: Option<(String, DateTime<Utc>)> =
        diesel::delete(l::dashboard_logins.filter(l::state_hash.eq(state_hash)))
            .returning((l::verifier, l::expires_at))
            .get_result(c)
            .optional()?;
    Ok(taken.filter(|(_, exp)| *exp > Utc::now()).map(|(v, _)| v))
}

/// Stores a new session, dropping those that expired.
pub fn insert_session(c: &mut PgConnection, row: &SessionRow) -> QueryResult<()> {
    use dashboard_sessions::dsl as s;
    diesel::delete(s::dashboard_sessions.filter(s::expires_at.lt(Utc::now()))).execute(c)?;
    diesel::insert_into(s::dashboard_sessions)
        .values(row)
        .execute(c)?;
    Ok(())
}

/// The live session of `id_hash`.
pub fn session(c: &mut PgConnection, id_hash: &str) -> QueryResult<Option<SessionRow>> {
    use dashboard_sessions::dsl as s;
    s::dashboard_sessions
        .filter(s::id_hash.eq(id_hash))
        .filter(s::expires_at.gt(Utc::now()))
        .select(SessionRow::as_select())
        .first(c)
        .optional()
}

/// Replaces a session's tokens after a refresh.
pub fn update_tokens(
    c: &mut PgConnection,
    id_hash: &str,
    access_token: &str,
    refresh_token: Option<&str>,
) -> QueryResult<()> {
    use dashboard_sessions::dsl as s;
    diesel::update(s::dashboard_sessions.filter(s::id_hash.eq(id_hash)))
        .set((
            s::access_token.eq(access_token),
            s::refresh_token.eq(refresh_token),
        ))
        .execute(c)?;
    Ok(())
}

/// Deletes a session and answers what it held.
pub fn delete_session(c: &mut PgConnection, id_hash: &str) -> QueryResult<Option<SessionRow>> {
    use dashboard_sessions::dsl as s;
    diesel::delete(s::dashboard_sessions.filter(s::id_hash.eq(id_hash)))
        .returning(SessionRow::as_returning())
        .get_result(c)
        .optional()
}
