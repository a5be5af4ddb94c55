//! The tripwire's population: how many users have sent a rule event,
//! counted in shards so that new users' events do not all update one row.

use diesel::{pg::PgConnection, prelude::*};
use platform::db::prepared;

use super::schema::population;

const SHARDS: u32 = 16;

/// Which of `writers` event writers applies `user_id`'s events: the same
/// hash as the population's shards, so that with a number of writers that
/// divides 16 no two writers update one population row.
pub fn writer_for(user_id: &str, writers: usize) -> usize {
    shard(user_id) as usize % writers.max(1)
}

pub(super) fn shard(user_id: &str) -> i16 {
    // FNV-1a: stable across builds, unlike the std hasher.
    let h = user_id.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    (h % SHARDS) as i16
}

/// How many users have sent a rule event.
pub fn population_size(conn: &mut PgConnection) -> QueryResult<i64> {
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query("SELECT COALESCE(SUM(users), 0)::BIGINT AS n FROM population")
        .get_result::<N>(conn)
        .map(|r| r.n)
}

/// One more user in `user_id`'s shard.
pub(super) fn count_new_user(conn: &mut PgConnection, user_id: &str) -> QueryResult<()> {
    diesel::update(population::table.find(shard(user_id)))
        .set(population::users.eq(population::users + 1))
        .execute(conn)?;
    Ok(())
}

/// A batch's new users by shard, counted at its end by one statement.
#[derive(Default)]
pub(super) struct NewUsers([i64; SHARDS as usize]);

impl NewUsers {
    pub(super) fn add(&mut self, user_id: &str) {
        self.0[shard(user_id) as usize] += 1;
    }

    pub(super) fn count(&self, conn: &mut PgConnection) -> QueryResult<()> {
        let (shards, counts): (Vec<i16>, Vec<i64>) = self
            .0
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(s, n)| (s as i16, *n))
            .unzip();
        if !shards.is_empty() {
            prepared(
                "UPDATE population SET users = population.users + n.users \
                 FROM unnest($1::int2[], $2::int8[]) AS n(shard, users) \
                 WHERE population.shard = n.shard",
            )
            .bind::<diesel::sql_types::Array<diesel::sql_types::SmallInt>, _>(&shards)
            .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(&counts)
            .execute(conn)?;
        }
        Ok(())
    }
}
