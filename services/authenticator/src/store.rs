//! Accounts in PostgreSQL. Synchronous diesel functions, called through
//! `platform::db::with_conn`. Every change bumps the account's version and
//! writes its `iam.user.v1` event to the outbox in the same transaction;
//! a new account also asks the notifier to tell the superusers
//! (`notification.v1`).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use diesel::{pg::PgConnection, prelude::*};
use platform::events::{enqueue, enqueue_many, topics, Envelope, Op, Source};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

diesel::table! {
    accounts (id) {
        id -> Uuid,
        username -> Text,
        email -> Text,
        password_hash -> Nullable<Text>,
        firstname -> Text,
        lastname -> Text,
        phone -> Text,
        is_active -> Bool,
        is_superuser -> Bool,
        version -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        password_changed_at -> Nullable<Timestamptz>,
        session_epoch -> Int8,
        ended_sessions -> Jsonb,
    }
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = accounts)]
pub struct Account {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub password_hash: Option<String>,
    pub firstname: String,
    pub lastname: String,
    pub phone: String,
    pub is_active: bool,
    pub is_superuser: bool,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub password_changed_at: Option<DateTime<Utc>>,
    /// Session tokens whose `sep` is below this have ended.
    pub session_epoch: i64,
    /// Tokens ended one by one (logouts of one device), until they expire.
    pub ended_sessions: serde_json::Value,
}

/// A session token ended by a logout of one device, kept until it expires.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EndedSession {
    pub jti: String,
    /// When the token expires (unix seconds): then the entry can go.
    pub exp: i64,
}

/// At most this many single-device logouts are kept per account; one more
/// ends every session instead (the epoch moves), which is never less safe.
pub const MAX_ENDED_SESSIONS: usize = 32;

impl Account {
    /// The single-device logouts whose tokens have not expired yet.
    pub fn ended_sessions(&self) -> Vec<EndedSession> {
        let now = Utc::now().timestamp();
        serde_json::from_value::<Vec<EndedSession>>(self.ended_sessions.clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.exp > now)
            .collect()
    }

    /// The `jti`s of [`Account::ended_sessions`].
    pub fn ended_session_ids(&self) -> Vec<String> {
        self.ended_sessions().into_iter().map(|e| e.jti).collect()
    }
}

/// What the API and the events (`iam.user.v1`) show of an account: never
/// the hash. The event's payload is the contract its consumers read.
pub type AccountView = contracts::topics::user::Account;

impl From<&Account> for AccountView {
    fn from(a: &Account) -> Self {
        Self {
            id: a.id,
            username: a.username.clone(),
            email: a.email.clone(),
            firstname: a.firstname.clone(),
            lastname: a.lastname.clone(),
            phone: a.phone.clone(),
            is_active: a.is_active,
            is_superuser: a.is_superuser,
            has_password: a.password_hash.is_some(),
            version: a.version,
            created_at: Some(a.created_at),
            updated_at: Some(a.updated_at),
            password_changed_at: a.password_changed_at,
            session_epoch: a.session_epoch,
            ended_sessions: a.ended_session_ids(),
        }
    }
}

pub const USERNAME_UNIQUE: &str = "accounts_username_key";
pub const EMAIL_UNIQUE: &str = "accounts_email_key";

fn envelope(op: Op, before: Option<&Account>, after: &Account) -> Envelope {
    let view = |a: &Account| serde_json::to_value(AccountView::from(a)).ok();
    Envelope::new(
        op,
        "user",
        after.id.to_string(),
        after.version,
        Source {
            service: "authenticator".into(),
            table: "accounts".into(),
        },
        before.and_then(view),
        view(after),
    )
}

fn publish(
    conn: &mut PgConnection,
    op: Op,
    before: Option<&Account>,
    after: &Account,
) -> QueryResult<()> {
    enqueue(conn, topics::USER, &envelope(op, before, after))
}

pub struct NewAccount {
    pub username: String,
    pub email: String,
    pub password_hash: Option<String>,
    pub firstname: String,
    pub lastname: String,
    pub phone: String,
    pub is_superuser: bool,
}

/// The unique field a new account collided with (an existing account's,
/// or an earlier one's of the same batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    Username,
    Email,
}

/// Stores new accounts and their `iam.user.v1` events in one transaction
/// (one statement each): one answer per account, in order, as if they had
/// been inserted one after the other. An account whose username or email
/// (regardless of case) is taken, by an account stored before or by an
/// earlier one of `new`, is not stored; the username is named when both
/// are taken. The superusers are told of the new accounts, at most
/// `notices_per_hour` times an hour ([`notify_superusers_of`]).
pub fn insert_many(
    conn: &mut PgConnection,
    new: &[NewAccount],
    notices_per_hour: u32,
) -> QueryResult<Vec<Result<Account, Taken>>> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    conn.transaction(|conn| {
        let now = Utc::now();
        let rows: Vec<_> = new
            .iter()
            .map(|n| {
                (
                    accounts::id.eq(Uuid::now_v7()),
                    accounts::username.eq(&n.username),
                    accounts::email.eq(&n.email),
                    accounts::password_hash.eq(&n.password_hash),
                    accounts::firstname.eq(&n.firstname),
                    accounts::lastname.eq(&n.lastname),
                    accounts::phone.eq(&n.phone),
                    accounts::is_superuser.eq(n.is_superuser),
                    accounts::created_at.eq(now),
                    accounts::updated_at.eq(now),
                    accounts::password_changed_at.eq(n.password_hash.as_ref().map(|_| now)),
                )
            })
            .collect();
        // Rows are inserted in order; one that collides with a stored
        // account or an earlier row is skipped (a concurrent insert of the
        // same name is waited for, then collides).
        let inserted: Vec<Account> = diesel::insert_into(accounts::table)
            .values(&rows)
            .on_conflict_do_nothing()
            .returning(Account::as_returning())
            .get_results(conn)?;
        let ours: HashSet<Uuid> = inserted.iter().map(|a| a.id).collect();
        let mut stored: HashMap<(String, String), Account> = inserted
            .into_iter()
            .map(|a| ((a.username.clone(), a.email.clone()), a))
            .collect();
        let found: Vec<Option<Account>> = new
            .iter()
            .map(|n| stored.remove(&(n.username.clone(), n.email.clone())))
            .collect();
        // A skipped row collided on its username if an account stored
        // before, or an earlier row, has it; otherwise on the email (the
        // only other unique key but the id).
        let skipped: Vec<&str> = new
            .iter()
            .zip(&found)
            .filter(|(_, a)| a.is_none())
            .map(|(n, _)| n.username.as_str())
            .collect();
        let stored_before: HashSet<String> = if skipped.is_empty() {
            HashSet::new()
        } else {
            accounts::table
                .filter(accounts::username.eq_any(&skipped))
                .select((accounts::id, accounts::username))
                .load::<(Uuid, String)>(conn)?
                .into_iter()
                .filter(|(id, _)| !ours.contains(id))
                .map(|(_, name)| name)
                .collect()
        };
        let mut earlier: HashSet<&str> = HashSet::new();
        let answers: Vec<Result<Account, Taken>> = new
            .iter()
            .zip(found)
            .map(|(n, a)| match a {
                Some(a) => {
                    earlier.insert(n.username.as_str());
                    Ok(a)
                }
                None if stored_before.contains(&n.username)
                    || earlier.contains(n.username.as_str()) =>
                {
                    Err(Taken::Username)
                }
                None => Err(Taken::Email),
            })
            .collect();
        let events: Vec<Envelope> = answers
            .iter()
            .flatten()
            .map(|a| envelope(Op::Create, None, a))
            .collect();
        enqueue_many(conn, topics::USER, &events)?;
        let created: Vec<&Account> = answers.iter().flatten().collect();
        notify_superusers_of(conn, &created, notices_per_hour)?;
        Ok(answers)
    })
}

/// Asks the notifier (`notification.v1`) to tell the active superusers of
/// the accounts in `created`, in the transaction that stores them: one
/// notification, addressed to every active superuser but those just
/// created, none when there is no one to tell. An account created alone (a
/// registration) gets a notification of its own; a batch (an import of up
/// to 500) gets one that lists them, not one mail per account. At most
/// `per_hour` notices are asked for in a clock hour; the next one says
/// that notices pause until the hour ends, and the rest of the hour sends
/// none (the accounts are created all the same).
fn notify_superusers_of(
    conn: &mut PgConnection,
    created: &[&Account],
    per_hour: u32,
) -> QueryResult<()> {
    if created.is_empty() || per_hour == 0 {
        return Ok(());
    }
    let new: HashSet<Uuid> = created.iter().map(|a| a.id).collect();
    let to: Vec<String> = accounts::table
        .filter(accounts::is_superuser.eq(true))
        .filter(accounts::is_active.eq(true))
        .filter(accounts::email.ne(""))
        .order(accounts::created_at.asc())
        .select((accounts::id, accounts::email))
        .load::<(Uuid, String)>(conn)?
        .into_iter()
        .filter(|(id, _)| !new.contains(id))
        .map(|(_, email)| email)
        .collect();
    if to.is_empty() {
        return Ok(());
    }
    let (hour, nth) = count_notice(conn)?;
    let nth = u32::try_from(nth).unwrap_or(u32::MAX);
    if nth > per_hour {
        // These accounts are not named in any notice: the next hour's
        // first one counts them.
        diesel::sql_query(
            "UPDATE registration_notice_hours SET unmailed = unmailed + $1 WHERE hour = $2",
        )
        .bind::<diesel::sql_types::Integer, _>(i32::try_from(created.len()).unwrap_or(i32::MAX))
        .bind::<diesel::sql_types::Timestamptz, _>(hour)
        .execute(conn)?;
    }
    let notice = match nth {
        1 => registration_notice(created, to, unmailed_before(conn, hour)?),
        n if n <= per_hour => registration_notice(created, to, None),
        n if n == per_hour.saturating_add(1) => notices_paused(hour, per_hour, to),
        _ => return Ok(()),
    };
    enqueue(conn, topics::NOTIFICATION, &notice)
}

/// Accounts created while notices were paused: how many, and from the
/// start of the first such hour to the end of the last.
#[derive(QueryableByName)]
struct Unmailed {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    accounts: i64,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    first: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    last: DateTime<Utc>,
}

/// Takes the [`Unmailed`] accounts of the hours before `hour` (set back
/// to 0, so that one notice reports them), if any.
fn unmailed_before(conn: &mut PgConnection, hour: DateTime<Utc>) -> QueryResult<Option<Unmailed>> {
    diesel::sql_query(
        "WITH old AS ( \
             SELECT hour, unmailed FROM registration_notice_hours \
             WHERE hour < $1 AND unmailed > 0 FOR UPDATE), \
         taken AS ( \
             UPDATE registration_notice_hours h SET unmailed = 0 FROM old \
             WHERE h.hour = old.hour \
             RETURNING old.hour, old.unmailed::bigint AS unmailed) \
         SELECT sum(unmailed)::bigint AS accounts, min(hour) AS first, \
                max(hour) + interval '1 hour' AS last \
         FROM taken HAVING count(*) > 0",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(hour)
    .get_result::<Unmailed>(conn)
    .optional()
}

#[derive(QueryableByName)]
struct NoticeCount {
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    hour: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    notices: i32,
}

/// Counts one more registration notice in the current clock hour (the
/// row's lock orders concurrent registrations) and returns the hour and
/// how many it has asked for, this one included. A new hour's first
/// notice deletes the hours older than a day.
fn count_notice(conn: &mut PgConnection) -> QueryResult<(DateTime<Utc>, i32)> {
    let counted = diesel::sql_query(
        "INSERT INTO registration_notice_hours AS h (hour, notices) \
         VALUES (date_trunc('hour', now()), 1) \
         ON CONFLICT (hour) DO UPDATE SET notices = h.notices + 1 \
         RETURNING hour, notices",
    )
    .get_result::<NoticeCount>(conn)?;
    if counted.notices == 1 {
        diesel::sql_query(
            "DELETE FROM registration_notice_hours \
             WHERE hour < now() - interval '1 day' AND unmailed = 0",
        )
        .execute(conn)?;
    }
    Ok((counted.hour, counted.notices))
}

/// The notice sent instead of the `per_hour + 1`-th registration notice of
/// `hour`: none follow until the next hour.
fn notices_paused(hour: DateTime<Utc>, per_hour: u32, to: Vec<String>) -> Envelope {
    let resume = hour + chrono::Duration::hours(1);
    notification(
        "registration",
        to,
        format!(
            "Registration notices paused until {}",
            resume.format("%H:%M UTC")
        ),
        format!(
            "{per_hour} registration notices were sent in the hour from {} \
             (REGISTRATION_NOTICES_PER_HOUR). Accounts are still being created, \
             but no more notices are sent until {}; the first one after that \
             counts the accounts created meanwhile. GET /v1/users lists them.\n",
            hour.format("%Y-%m-%d %H:%M UTC"),
            resume.format("%Y-%m-%d %H:%M UTC"),
        ),
    )
}

/// Accounts a batch's notice names one by one; the rest are counted.
const NOTICE_LISTS_AT_MOST: usize = 50;

/// The `notification.v1` event that tells `to` of the new accounts
/// `created` (at least one), and of those created while notices were
/// paused (`unmailed`), if any.
fn registration_notice(
    created: &[&Account],
    to: Vec<String>,
    unmailed: Option<Unmailed>,
) -> Envelope {
    let (subject, mut body) = match created {
        [a] => (
            format!("New account: {}", a.username),
            format!(
                "A new account was created.\n\n\
                 Username: {}\n\
                 Name: {} {}\n\
                 Email: {}\n\
                 Superuser: {}\n\
                 Account id: {}\n\
                 Created at: {}\n",
                a.username,
                a.firstname,
                a.lastname,
                a.email,
                if a.is_superuser { "yes" } else { "no" },
                a.id,
                a.created_at.to_rfc3339(),
            ),
        ),
        many => {
            let mut body = format!("{} new accounts were created together:\n\n", many.len());
            for a in many.iter().take(NOTICE_LISTS_AT_MOST) {
                body.push_str(&format!("{} <{}> ({})\n", a.username, a.email, a.id));
            }
            if many.len() > NOTICE_LISTS_AT_MOST {
                body.push_str(&format!(
                    "and {} more.\n",
                    many.len() - NOTICE_LISTS_AT_MOST
                ));
            }
            (format!("{} new accounts", many.len()), body)
        }
    };
    if let Some(u) = unmailed {
        body.push_str(&format!(
            "\nWhile registration notices were paused, {} more accounts were \
             created between {} and {} and not mailed one by one; \
             GET /v1/users lists them.\n",
            u.accounts,
            u.first.format("%Y-%m-%d %H:%M UTC"),
            u.last.format("%Y-%m-%d %H:%M UTC"),
        ));
    }
    notification("registration", to, subject, body)
}

/// A `notification.v1` event of this service.
fn notification(kind: &str, to: Vec<String>, subject: String, body: String) -> Envelope {
    use contracts::topics::notification::Notification;
    let notice = Notification {
        id: Uuid::now_v7(),
        kind: kind.into(),
        to,
        subject,
        body,
    };
    Envelope::new(
        Op::Create,
        "notification",
        notice.id.to_string(),
        1,
        Source {
            service: "authenticator".into(),
            table: "accounts".into(),
        },
        None,
        serde_json::to_value(&notice).ok(),
    )
}

pub fn by_username(conn: &mut PgConnection, username: &str) -> QueryResult<Option<Account>> {
    accounts::table
        .filter(accounts::username.eq(username))
        .select(Account::as_select())
        .first(conn)
        .optional()
}

pub fn by_id(conn: &mut PgConnection, id: Uuid) -> QueryResult<Option<Account>> {
    accounts::table
        .find(id)
        .select(Account::as_select())
        .first(conn)
        .optional()
}

pub struct ListFilter {
    pub active: Option<bool>,
    pub username_prefix: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

/// A page of accounts in creation order, and how many match in all.
pub fn list(conn: &mut PgConnection, f: &ListFilter) -> QueryResult<(Vec<Account>, i64)> {
    let filtered = || {
        let mut q = accounts::table.into_boxed();
        if let Some(a) = f.active {
            q = q.filter(accounts::is_active.eq(a));
        }
        if let Some(p) = &f.username_prefix {
            // Escape LIKE wildcards: the prefix is matched literally.
            let escaped = p
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            q = q.filter(accounts::username.like(format!("{escaped}%")));
        }
        q
    };
    let total = filtered().count().get_result(conn)?;
    let items = filtered()
        .order((accounts::created_at.asc(), accounts::id.asc()))
        .limit(f.limit)
        .offset(f.offset)
        .select(Account::as_select())
        .load(conn)?;
    Ok((items, total))
}

/// A change to apply to one account. `None` fields stay as they are.
#[derive(Default)]
pub struct Change {
    pub email: Option<String>,
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub phone: Option<String>,
    pub is_active: Option<bool>,
    pub password_hash: Option<String>,
    /// End every session token issued so far (a logout of every device).
    pub end_all_sessions: bool,
    /// End this one session token (a logout of one device).
    pub end_session: Option<EndedSession>,
}

/// Applies `change` under a row lock; writes an event only when something
/// actually changed. `None` when the account does not exist.
pub fn update(conn: &mut PgConnection, id: Uuid, change: Change) -> QueryResult<Option<Account>> {
    conn.transaction(|conn| {
        let Some(before) = accounts::table
            .find(id)
            .for_update()
            .select(Account::as_select())
            .first(conn)
            .optional()?
        else {
            return Ok(None);
        };
        let mut next = before.clone();
        let now = Utc::now();
        if let Some(v) = change.email {
            next.email = v;
        }
        if let Some(v) = change.firstname {
            next.firstname = v;
        }
        if let Some(v) = change.lastname {
            next.lastname = v;
        }
        if let Some(v) = change.phone {
            next.phone = v;
        }
        if let Some(v) = change.is_active {
            next.is_active = v;
        }
        let password_changed = change.password_hash.is_some();
        if let Some(h) = change.password_hash {
            next.password_hash = Some(h);
            next.password_changed_at = Some(now);
        }
        // What ends sessions: a new password, a deactivation, a logout of
        // every device; a logout of one device ends that token alone.
        let mut ended = before.ended_sessions();
        let mut end_all =
            password_changed || change.end_all_sessions || (before.is_active && !next.is_active);
        if let Some(one) = change.end_session {
            if !ended.iter().any(|e| e.jti == one.jti) {
                ended.push(one);
            }
            end_all |= ended.len() > MAX_ENDED_SESSIONS;
        }
        if end_all {
            next.session_epoch = before.session_epoch + 1;
            ended.clear();
        }
        next.ended_sessions = serde_json::to_value(&ended).unwrap_or_default();
        let unchanged = !password_changed
            && next.session_epoch == before.session_epoch
            && next.ended_sessions == before.ended_sessions
            && next.email == before.email
            && next.firstname == before.firstname
            && next.lastname == before.lastname
            && next.phone == before.phone
            && next.is_active == before.is_active;
        if unchanged {
            return Ok(Some(before));
        }
        let after: Account = diesel::update(accounts::table.find(id))
            .set((
                accounts::email.eq(&next.email),
                accounts::firstname.eq(&next.firstname),
                accounts::lastname.eq(&next.lastname),
                accounts::phone.eq(&next.phone),
                accounts::is_active.eq(next.is_active),
                accounts::password_hash.eq(&next.password_hash),
                accounts::password_changed_at.eq(next.password_changed_at),
                accounts::session_epoch.eq(next.session_epoch),
                accounts::ended_sessions.eq(&next.ended_sessions),
                accounts::version.eq(before.version + 1),
                accounts::updated_at.eq(now),
            ))
            .returning(Account::as_returning())
            .get_result(conn)?;
        publish(conn, Op::Update, Some(&before), &after)?;
        Ok(Some(after))
    })
}

/// Replaces an account's hash with one of the same password at another
/// cost (after a successful login), unless the hash changed meanwhile. Not
/// a password change: no session ends, no event (the hash is never in one).
pub fn rehash(conn: &mut PgConnection, id: Uuid, old: &str, new: &str) -> QueryResult<bool> {
    diesel::update(
        accounts::table
            .find(id)
            .filter(accounts::password_hash.eq(old)),
    )
    .set(accounts::password_hash.eq(new))
    .execute(conn)
    .map(|n| n == 1)
}
