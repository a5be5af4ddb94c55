//! The accounting dashboard: server-rendered HTML for people signed in
//! through the safekeeper (`crates/dashboard` has the flow). A worker
//! (`read:accounting`) sees their balance and ledger; management
//! (`su_read:accounting`) also sees today's earnings, the last 30 days and
//! any worker's ledger (`/dashboard?account=<id>`). Errors are HTML pages,
//! not problems.

use std::collections::HashMap;

use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use dashboard::html::{self, escape, money};
use platform::db::with_conn;
use resource_server::auth::ReadModelUser;
use uuid::Uuid;

use crate::{
    auth::{READ, SU_READ},
    domain::DayRange,
    error::ApiError,
    state::AppState,
    store,
};

const TITLE: &str = "Accounting";

/// How many of the ledger's newest entries the page shows.
const ENTRIES: i64 = 50;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(dashboard::routes::configure::<AppState>)
        .route("/dashboard", web::get().to(page));
}

impl dashboard::routes::Host for AppState {
    fn dashboard(&self) -> Option<&dashboard::Dashboard> {
        self.dashboard.as_ref()
    }
    fn pool(&self) -> &platform::db::PgPool {
        &self.pool
    }
    fn verifier(&self) -> &platform::jwt::Verifier {
        &self.access
    }
    fn revocations(&self) -> &platform::revocation::Revocations {
        &self.revocations
    }
}

/// `GET /dashboard?account=`: the signed-in person's view.
async fn page(
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let (session, user) = match dashboard::routes::signed_in(state.get_ref(), &req, TITLE).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let user = match user {
        Some(u) if u.usable() => u,
        Some(u) if u.known() => {
            return html::message(
                StatusCode::FORBIDDEN,
                "Account deactivated",
                "This account is deactivated.",
            )
        }
        _ => {
            return html::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not known yet",
                "Your account is not known to accounting yet. Reload in a moment.",
            )
        }
    };
    let me = user.id();
    let holds = |s: &str| session.claims.has_scope(s) && user.still_holds(s);
    let manager = holds(SU_READ);
    if !manager && !holds(READ) {
        return dashboard::refused();
    }
    let account = match query.get("account").map(|a| a.trim()) {
        None | Some("") => me,
        Some(raw) => match raw.parse::<Uuid>() {
            Ok(id) if id == me || manager => id,
            Ok(_) => return dashboard::refused(),
            Err(_) => {
                return html::message(
                    StatusCode::BAD_REQUEST,
                    "Not an account",
                    "The account must be an account id (a UUID).",
                )
            }
        },
    };
    let today = state.calendar.today();
    let loaded = with_conn(&state.pool, move |c| -> Result<_, ApiError> {
        let owner = store::user(c, account)?.and_then(|u| u.username);
        let balance = store::balance_of(c, account)?;
        let entries = store::entries(c, account, ENTRIES, None)?;
        // Management's view: the last 30 days (the API's default range).
        let days = DayRange::parse(None, None, today)
            .ok()
            .filter(|_| manager)
            .map(|r| store::day_totals(c, r.from, r.to).map(|t| (r, t)))
            .transpose()?;
        Ok((owner, balance, entries, days))
    })
    .await;
    let (owner, balance, entries, days) = match loaded {
        Ok(v) => v,
        Err(e) => return unavailable(&e),
    };
    let mut body = String::new();
    let whose = if account == me {
        "Your balance".to_owned()
    } else {
        format!(
            "Balance of {}",
            owner.clone().unwrap_or_else(|| account.to_string())
        )
    };
    body.push_str(&format!(
        "<section aria-labelledby=\"balance\">\n<h2 id=\"balance\">{}</h2>\n\
         <p><strong id=\"balance-amount\">{}</strong></p>\n</section>\n",
        escape(&whose),
        money(balance)
    ));
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.seq.to_string(),
                escape(&e.business_day.to_string()),
                escape(&e.kind),
                escape(&e.description),
                money(e.amount_cents),
                money(e.balance_after_cents),
            ]
        })
        .collect();
    body.push_str(&format!(
        "<section aria-labelledby=\"ledger\">\n<h2 id=\"ledger\">Ledger</h2>\n{}</section>\n",
        html::table(
            &format!("The {ENTRIES} newest entries, newest first"),
            &["#", "Day", "Kind", "Description", "Amount", "Balance after"],
            &rows,
        )
    ));
    if let Some((range, totals)) = days {
        let mut totals = totals.into_iter().peekable();
        let mut rows = Vec::new();
        let mut today_row = (0, 0);
        for day in range.days() {
            let (fees, rewards) = match totals.next_if(|t| t.day == day) {
                Some(t) => (t.fees_cents, t.rewards_cents),
                None => (0, 0),
            };
            if day == today {
                today_row = (fees, rewards);
            }
            rows.push(vec![
                escape(&day.to_string()),
                money(fees),
                money(rewards),
                money(fees - rewards),
            ]);
        }
        rows.reverse();
        body.push_str(&format!(
            "<section aria-labelledby=\"earnings\">\n<h2 id=\"earnings\">Management's earnings</h2>\n\
             <p>Today ({day}, {zone}): <strong id=\"earnings-today\">{earned}</strong> \
             (fees {fees} minus rewards {rewards}).</p>\n{table}\
             <form method=\"get\" action=\"/dashboard\">\n\
             <label for=\"account\">A worker's account id</label>\n\
             <input id=\"account\" name=\"account\" required>\n\
             <button type=\"submit\">Show their ledger</button>\n</form>\n</section>\n",
            day = escape(&today.to_string()),
            zone = escape(state.calendar.zone.name()),
            earned = money(today_row.0 - today_row.1),
            fees = money(today_row.0),
            rewards = money(today_row.1),
            table = html::table(
                "Earnings per day, the last 30 days, newest first",
                &["Day", "Fees collected", "Rewards paid", "Earnings"],
                &rows,
            ),
        ));
    }
    html::page(StatusCode::OK, TITLE, Some(session.signed_in()), &body)
}

fn unavailable(e: &dyn std::fmt::Display) -> HttpResponse {
    tracing::warn!(error = %e, "the accounting dashboard cannot read its database");
    html::message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "The dashboard cannot read the ledger right now. Try again in a moment.",
    )
}
