//! diesel table definitions (see migrations/access-rule).

diesel::table! {
    users (user_id) {
        user_id -> Text,
        scam_flags -> Int8,
        card_count -> Int8,
        zip_count -> Int8,
        total_spend_cents -> Int8,
        chargeback_cents -> Int8,
        scam_restricted_at -> Nullable<Timestamptz>,
        zip_restricted_at -> Nullable<Timestamptz>,
        chargeback_restricted_at -> Nullable<Timestamptz>,
        is_active -> Bool,
        account_version -> Int8,
        version -> Int8,
        first_event_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    cards (user_id, zip_code, last_four_digits) {
        user_id -> Text,
        zip_code -> Text,
        last_four_digits -> Text,
        total_spend_cents -> Int8,
        added_at -> Timestamptz,
    }
}

diesel::table! {
    events (id) {
        id -> Int8,
        event_id -> Nullable<Text>,
        user_id -> Text,
        name -> Text,
        properties -> Jsonb,
        outcome -> Jsonb,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    restriction_log (id) {
        id -> Int8,
        user_id -> Text,
        rule -> Text,
        action -> Text,
        cause -> Text,
        actor -> Nullable<Text>,
        reason -> Text,
        at -> Timestamptz,
    }
}

diesel::table! {
    rules (rule) {
        rule -> Text,
        tripped_at -> Nullable<Timestamptz>,
        suspended_until -> Nullable<Timestamptz>,
        last_reset_at -> Nullable<Timestamptz>,
        last_reset_by -> Nullable<Text>,
        trip_count -> Int8,
        version -> Int8,
    }
}

diesel::table! {
    population (shard) {
        shard -> Int2,
        users -> Int8,
    }
}

diesel::table! {
    superusers (account_id) {
        account_id -> Text,
        is_superuser -> Bool,
        version -> Int8,
    }
}

diesel::allow_tables_to_appear_in_same_query!(users, cards, events, restriction_log);
