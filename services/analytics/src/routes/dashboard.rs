//! The analytics dashboard: server-rendered HTML for administrators
//! (`read:analytics`) signed in through the safekeeper (`crates/dashboard`
//! has the flow): today's management earnings, how many workers owe money,
//! and the most expensive task of each day, week and month of the last 30
//! days. Anyone else signed in gets a 403 page. Errors are HTML pages, not
//! problems.
use actix_web::{http::StatusCode, web, HttpRequest, HttpResponse};
use dashboard::html::{self, escape, money};
use platform::db::with_conn;
use resource_server::auth::ReadModelUser;

use crate::{
    auth::READ,
    domain::{DayRange, Period},
    error::ApiError,
    state::AppState,
    store::{self, PeriodTop},
};

const TITLE: &str = "Analytics";

/// The dashboard's tables of most expensive tasks, in the page's order.
const PERIODS: [Period; 3] = [Period::Day, Period::Week, Period::Month];

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

/// One table row per period (the store's winners), newest period first.
fn rows(period: Period, range: DayRange, tops: Vec<PeriodTop>) -> Vec<Vec<String>> {
    tops.into_iter()
        .rev()
        .map(|PeriodTop { start, end, best }| {
            let label = if period == Period::Day {
                start.to_string()
            } else {
                format!("{start} to {}", end.min(range.to))
            };
            match best {
                Some(b) => vec![
                    escape(&label),
                    escape(b.title.as_deref().unwrap_or("(title not known yet)")),
                    money(b.amount_cents),
                    escape(&b.day.to_string()),
                ],
                None => vec![
                    escape(&label),
                    "No reward paid".to_owned(),
                    String::new(),
                    String::new(),
                ],
            }
        })
        .collect()
}

/// `GET /dashboard`: the administrator's view.
async fn page(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let (session, user) = match dashboard::routes::signed_in(state.get_ref(), &req, TITLE).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    match user {
        Some(u) if u.usable() && session.claims.has_scope(READ) && u.still_holds(READ) => {}
        Some(u) if u.known() => return dashboard::refused(),
        _ => {
            return html::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not known yet",
                "Your account is not known to analytics yet. Reload in a moment.",
            )
        }
    }
    let today = state.today();
    let Ok(range) = DayRange::parse(None, None, today) else {
        return unavailable(&"no default range");
    };
    let loaded = with_conn(&state.pool, move |c| -> Result<_, ApiError> {
        Ok((
            store::earnings_of(c, today)?,
            store::negative_balances(c)?,
            store::most_expensive_per(c, PERIODS, range)?,
        ))
    })
    .await;
    let ((fees, rewards), negative, tops) = match loaded {
        Ok(v) => v,
        Err(e) => return unavailable(&e),
    };
    let headers = ["Period", "Task", "Reward", "Paid on"];
    let [days, weeks, months] = tops;
    let body = format!(
        "<section aria-labelledby=\"today\">\n<h2 id=\"today\">Today</h2>\n\
         <p>Management's earnings today ({day}, {zone}): <strong id=\"earnings-today\">{earned}</strong> \
         (fees {fees} minus rewards {rewards}).</p>\n\
         <p>Workers with a negative balance: <strong id=\"negative-balances\">{negative}</strong>.</p>\n\
         </section>\n\
         <section aria-labelledby=\"expensive\">\n<h2 id=\"expensive\">Most expensive tasks</h2>\n{days}{weeks}{months}</section>\n",
        day = escape(&today.to_string()),
        zone = escape(state.zone.name()),
        earned = money(fees - rewards),
        fees = money(fees),
        rewards = money(rewards),
        days = html::table(
            "Per day, the last 30 days, newest first",
            &headers,
            &rows(Period::Day, range, days)
        ),
        weeks = html::table(
            "Per week (Monday to Sunday), newest first",
            &headers,
            &rows(Period::Week, range, weeks)
        ),
        months = html::table(
            "Per month, newest first",
            &headers,
            &rows(Period::Month, range, months)
        ),
    );
    html::page(StatusCode::OK, TITLE, Some(session.signed_in()), &body)
}

fn unavailable(e: &dyn std::fmt::Display) -> HttpResponse {
    tracing::warn!(error = %e, "the analytics dashboard cannot read its database");
    html::message(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "The dashboard cannot read the reports right now. Try again in a moment.",
    )
}
