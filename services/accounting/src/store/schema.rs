//! diesel table definitions (see migrations/accounting); the users read
//! model's table is `resource_server::users::users`.

diesel::table! {
    ledger_entry (seq) {
        seq -> Int8,
        id -> Uuid,
        account_id -> Uuid,
        kind -> Text,
        amount_cents -> Int8,
        balance_after_cents -> Int8,
        task_id -> Nullable<Uuid>,
        description -> Text,
        business_day -> Date,
        created_at -> Timestamptz,
        source_key -> Text,
        reverses -> Nullable<Uuid>,
    }
}

diesel::table! {
    balance (account_id) {
        account_id -> Uuid,
        balance_cents -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    day_close (day) {
        day -> Date,
        closed_at -> Timestamptz,
        paid_count -> Int4,
        paid_cents -> Int8,
    }
}

diesel::allow_tables_to_appear_in_same_query!(balance, ledger_entry);
