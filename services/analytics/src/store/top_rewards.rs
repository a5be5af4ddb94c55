//! The most expensive tasks: each business day's highest reward
//! (`day_top_reward`, kept by `transactions`), folded into days, weeks or
//! months, with the titles of the tasks that win.
//!
//! The days are read on their own and the titles fetched afterwards by
//! the tasks' primary key, for the winners only: joining the days with
//! `task` made PostgreSQL hash the whole `task` table (100,000 rows in the
//! benchmark) for at most 366 titles.

use std::collections::HashMap;

use chrono::NaiveDate;
use diesel::{
    pg::PgConnection,
    prelude::*,
    sql_types::{Array, Text, Uuid as SqlUuid},
};
use uuid::Uuid;

use super::schema::day_top_reward;
use crate::domain::{DayRange, Period};

/// The highest reward of a day, with its task's title when the task's
/// events have been applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopReward {
    pub day: NaiveDate,
    pub transaction_id: Uuid,
    pub task_id: Option<Uuid>,
    pub amount_cents: i64,
    pub title: Option<String>,
}

/// One period of a range (its first and last day; a week runs Monday to
/// Sunday) and its highest reward, `None` when none was paid in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodTop {
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub best: Option<TopReward>,
}

/// The highest reward of each `period` that `range` touches (only the
/// days inside the range count), in order, with the winners' titles.
pub fn most_expensive(
    conn: &mut PgConnection,
    period: Period,
    range: DayRange,
) -> QueryResult<Vec<PeriodTop>> {
    let [periods] = most_expensive_per(conn, [period], range)?;
    Ok(periods)
}

/// [`most_expensive`] for several periods at once (the dashboard shows
/// days, weeks and months): the range's days are read once, and one list
/// of periods is returned per entry of `periods`, in that order.
pub fn most_expensive_per<const N: usize>(
    conn: &mut PgConnection,
    periods: [Period; N],
    range: DayRange,
) -> QueryResult<[Vec<PeriodTop>; N]> {
    let days = day_tops(conn, range.from, range.to)?;
    let mut folded = periods.map(|period| winners(period, range, days.clone()));
    fill_titles(
        conn,
        folded.iter_mut().flatten().filter_map(|p| p.best.as_mut()),
    )?;
    Ok(folded)
}

/// The days' highest rewards, without titles: at most 366 rows read by
/// the key.
fn day_tops(
    conn: &mut PgConnection,
    from: NaiveDate,
    to: NaiveDate,
) -> QueryResult<Vec<TopReward>> {
    let rows: Vec<(NaiveDate, Uuid, Option<Uuid>, i64)> = day_top_reward::table
        .filter(day_top_reward::day.between(from, to))
        .order(day_top_reward::day)
        .select((
            day_top_reward::day,
            day_top_reward::transaction_id,
            day_top_reward::task_id,
            day_top_reward::amount_cents,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(day, transaction_id, task_id, amount_cents)| TopReward {
            day,
            transaction_id,
            task_id,
            amount_cents,
            title: None,
        })
        .collect())
}

/// Each period's highest reward; on a tie, the earlier day's. `days` is
/// in day order.
fn winners(period: Period, range: DayRange, days: Vec<TopReward>) -> Vec<PeriodTop> {
    let mut days = days.into_iter().peekable();
    period
        .starts(range)
        .into_iter()
        .map(|start| {
            let end = period.end_of(start);
            let mut best: Option<TopReward> = None;
            while let Some(d) = days.next_if(|d| d.day <= end) {
                if best
                    .as_ref()
                    .is_none_or(|b| d.amount_cents > b.amount_cents)
                {
                    best = Some(d);
                }
            }
            PeriodTop { start, end, best }
        })
        .collect()
}

/// Sets the title of each reward whose task's events have been applied,
/// reading only those tasks, by their primary key.
fn fill_titles<'a>(
    conn: &mut PgConnection,
    rewards: impl Iterator<Item = &'a mut TopReward>,
) -> QueryResult<()> {
    let mut rewards: Vec<&mut TopReward> = rewards.collect();
    let mut ids: Vec<Uuid> = rewards.iter().filter_map(|r| r.task_id).collect();
    if ids.is_empty() {
        return Ok(());
    }
    ids.sort_unstable();
    ids.dedup();
    #[derive(QueryableByName)]
    struct Title {
        #[diesel(sql_type = SqlUuid)]
        id: Uuid,
        #[diesel(sql_type = Text)]
        title: String,
    }
    let titles: HashMap<Uuid, String> =
        diesel::sql_query("SELECT id, title FROM task WHERE id = ANY($1)")
            .bind::<Array<SqlUuid>, _>(&ids)
            .load::<Title>(conn)?
            .into_iter()
            .map(|t| (t.id, t.title))
            .collect();
    for r in &mut rewards {
        r.title = r.task_id.and_then(|id| titles.get(&id).cloned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn reward(day: &str, amount_cents: i64) -> TopReward {
        TopReward {
            day: d(day),
            transaction_id: Uuid::now_v7(),
            task_id: Some(Uuid::now_v7()),
            amount_cents,
            title: None,
        }
    }

    #[test]
    fn each_period_takes_its_highest_reward_and_the_earlier_day_on_a_tie() {
        let range = DayRange {
            from: d("2026-01-30"),
            to: d("2026-03-02"),
        };
        let days = vec![
            reward("2026-01-30", 500),
            reward("2026-01-31", 900),
            reward("2026-02-03", 700),
            reward("2026-02-10", 700),
            reward("2026-02-11", 600),
        ];
        let months = winners(Period::Month, range, days.clone());
        let best: Vec<_> = months
            .iter()
            .map(|p| (p.start, p.end, p.best.as_ref().map(|b| b.day)))
            .collect();
        assert_eq!(
            best,
            [
                (d("2026-01-01"), d("2026-01-31"), Some(d("2026-01-31"))),
                (d("2026-02-01"), d("2026-02-28"), Some(d("2026-02-03"))),
                (d("2026-03-01"), d("2026-03-31"), None),
            ]
        );
        let days_only = winners(Period::Day, range, days);
        assert_eq!(days_only.len(), 32);
        assert_eq!(days_only.iter().filter(|p| p.best.is_some()).count(), 5);
    }
}
