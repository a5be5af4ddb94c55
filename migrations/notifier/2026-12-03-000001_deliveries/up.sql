-- One row per notification (notification.v1), keyed by the notification's
-- id: a replayed or duplicated event finds its row and adds nothing. The
-- sender claims due pending rows, sends them, and marks them sent, or
-- schedules the next attempt, or, past the last, marks them failed.
CREATE TABLE deliveries (
    id              uuid PRIMARY KEY,
    kind            text        NOT NULL,
    -- The service that asked for it (the event's source.service).
    source          text        NOT NULL,
    recipients      text[]      NOT NULL,
    subject         text        NOT NULL,
    body            text        NOT NULL,
    status          text        NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sent', 'failed')),
    -- Attempts started (a claim counts one), and when the next may start:
    -- a claimed row's is pushed past its lease, so a sender that died
    -- mid-attempt leaves it for another after the lease.
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    failed_at       timestamptz,
    -- The trace of the event that asked for it, which the sending goes on.
    request_id      text,
    traceparent     text
);

CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_sent ON deliveries (sent_at) WHERE status = 'sent';
