//! Applying `notification.v1`: each notification is recorded as a pending
//! delivery, once per notification id, and nothing more. Sending is the
//! sender's ([`crate::sender`]), so a relay that is slow or away never
//! holds up the partition.

use contracts::topics::notification::Notification;
use diesel::pg::PgConnection;
use platform::events::{topics, Envelope};

use crate::store::{self, NewDelivery};

/// Records the notification `envelope` carries as a pending delivery;
/// answers whether it is new (a replayed or duplicated event adds
/// nothing). A notification that cannot be sent ([`check`]) is refused,
/// and so set aside on the dead letters. A deletion asks for nothing.
pub fn apply(conn: &mut PgConnection, topic: &str, envelope: &Envelope) -> anyhow::Result<bool> {
    anyhow::ensure!(topic == topics::NOTIFICATION, "unexpected topic {topic}");
    let change = envelope
        .state::<Notification>()
        .map_err(|e| anyhow::anyhow!("not a notification: {e:?}"))?;
    if change.deleted {
        return Ok(false);
    }
    let n = change.state;
    check(&n)?;
    let cx = platform::telemetry::current();
    let added = store::record(
        conn,
        &NewDelivery {
            id: n.id,
            kind: n.kind,
            source: envelope.source.service.clone(),
            recipients: n.to,
            subject: n.subject,
            body: n.body,
            request_id: cx.as_ref().map(|c| c.request_id.clone()),
            traceparent: cx.as_ref().map(|c| c.traceparent()),
        },
    )?;
    if added {
        tracing::info!(notification.id = %n.id, "notification recorded");
    } else {
        tracing::info!(notification.id = %n.id, "notification recorded before; nothing to add");
    }
    Ok(added)
}

/// Whether `n` can be sent: at least one recipient, each an address; a
/// subject (and a kind) on one line without control characters (a line
/// break there would start a header of the sender's choosing); a body
/// without NUL.
pub fn check(n: &Notification) -> anyhow::Result<()> {
    anyhow::ensure!(!n.to.is_empty(), "notification {} has no recipient", n.id);
    for to in &n.to {
        to.parse::<lettre::Address>()
            .map_err(|e| anyhow::anyhow!("notification {}: recipient {to:?}: {e}", n.id))?;
    }
    anyhow::ensure!(
        !n.subject.chars().any(char::is_control) && !n.kind.chars().any(char::is_control),
        "notification {}: the subject or the kind holds a control character",
        n.id
    );
    // PostgreSQL stores no NUL: refused here, it is not retried as if the
    // database were away.
    anyhow::ensure!(
        !n.body.contains('\0'),
        "notification {}: the body holds a NUL character",
        n.id
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(to: &[&str], subject: &str) -> Notification {
        Notification {
            id: uuid::Uuid::now_v7(),
            kind: "payout".into(),
            to: to.iter().map(|t| t.to_string()).collect(),
            subject: subject.into(),
            body: "Lines\nand tabs\tare fine here.".into(),
        }
    }

    #[test]
    fn a_notification_with_addresses_and_a_one_line_subject_can_be_sent() {
        assert!(check(&notification(&["ann@example.com", "b@example.org"], "Paid")).is_ok());
    }

    #[test]
    fn no_recipient_a_non_address_or_a_broken_subject_cannot_be_sent() {
        assert!(check(&notification(&[], "Paid")).is_err());
        assert!(check(&notification(&["ann"], "Paid")).is_err());
        assert!(check(&notification(&["ann@example.com", "a b@c"], "Paid")).is_err());
        assert!(check(&notification(
            &["ann@example.com"],
            "Paid\r\nBcc: x@example.com"
        ))
        .is_err());
        assert!(check(&notification(&["ann@example.com"], "Paid\u{0}")).is_err());
        let mut nul = notification(&["ann@example.com"], "Paid");
        nul.body.push('\0');
        assert!(check(&nul).is_err());
    }
}
