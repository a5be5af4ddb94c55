//! `task rebuild-read-model`: empties the users read model and moves the
//! consumer group's offsets back to the earliest on both topics, so the
//! next start replays every account and grant event into a fresh table.
//! Run it with the service stopped (a live member of the group would
//! commit its own positions over the reset).
//!
//! The other way to rebuild needs no command: start with a new
//! `CONSUMER_GROUP`. A new group begins at the earliest offset, and since
//! applying is idempotent by version the same table results.

use std::time::Duration;

use anyhow::Context;
use diesel::{Connection, PgConnection};
use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer},
    Offset, TopicPartitionList,
};

use crate::{config::Settings, startup, store};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Which end of each partition a reset moves a group to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Replay everything still in the topic.
    Earliest,
    /// Skip everything published so far.
    Latest,
}

/// Commits the earliest (or latest) offset of every partition of `topics`
/// for `group`. Returns how many partitions were reset.
pub fn reset_offsets(
    brokers: &str,
    group: &str,
    topics: &[String],
    to: Position,
) -> anyhow::Result<usize> {
    let consumer: BaseConsumer = platform::events::client_config(brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let md = consumer
            .fetch_metadata(Some(topic), TIMEOUT)
            .with_context(|| format!("reading the partitions of {topic}"))?;
        for t in md.topics() {
            for p in t.partitions() {
                let (low, high) = consumer
                    .fetch_watermarks(topic, p.id(), TIMEOUT)
                    .with_context(|| format!("reading the offsets of {topic}/{}", p.id()))?;
                let at = match to {
                    Position::Earliest => low,
                    Position::Latest => high,
                };
                tpl.add_partition_offset(topic, p.id(), Offset::Offset(at))?;
            }
        }
    }
    let n = tpl.count();
    if n > 0 {
        consumer
            .commit(&tpl, CommitMode::Sync)
            .with_context(|| format!("committing offsets for group {group}"))?;
    }
    Ok(n)
}

/// Moves the consumer group of `settings` to `to` on both topics (creating
/// them if needed). Returns how many partitions were reset.
pub async fn reset_group(settings: &Settings, to: Position) -> anyhow::Result<usize> {
    let cfg = startup::consumer_config(settings);
    let topics: Vec<&str> = cfg.topics.iter().map(String::as_str).collect();
    platform::events::ensure_topics(&cfg.brokers, &topics, cfg.partitions, cfg.replication).await?;
    let (brokers, group, topics) = (cfg.brokers, cfg.group_id, cfg.topics);
    platform::db::blocking(move || reset_offsets(&brokers, &group, &topics, to)).await?
}

/// Resets the group, then truncates the table (in that order: if the broker
/// is unreachable, the read model is left as it was).
pub async fn rebuild_read_model(settings: &Settings) -> anyhow::Result<()> {
    let n = reset_group(settings, Position::Earliest).await?;
    let url = settings.common.database_url.clone();
    platform::db::blocking(move || -> anyhow::Result<()> {
        platform::db::migrate(&url, startup::MIGRATIONS)?;
        let mut conn = PgConnection::establish(&url).context("connecting to PostgreSQL")?;
        store::truncate_users(&mut conn)?;
        Ok(())
    })
    .await??;
    tracing::info!(
        group = %settings.consumer_group,
        partitions = n,
        "read model emptied and offsets reset; the next start replays from the earliest offset"
    );
    Ok(())
}
