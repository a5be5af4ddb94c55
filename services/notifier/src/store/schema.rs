//! diesel table definitions (see migrations/notifier).

diesel::table! {
    deliveries (id) {
        id -> Uuid,
        kind -> Text,
        source -> Text,
        recipients -> Array<Text>,
        subject -> Text,
        body -> Text,
        status -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        sent_at -> Nullable<Timestamptz>,
        failed_at -> Nullable<Timestamptz>,
        request_id -> Nullable<Text>,
        traceparent -> Nullable<Text>,
    }
}
