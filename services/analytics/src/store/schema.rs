//! diesel table definitions (see migrations/analytics); the users read
//! model's table is `resource_server::users::users`.

diesel::table! {
    task (id) {
        id -> Uuid,
        title -> Text,
        version -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    ledger_transaction (id) {
        id -> Uuid,
        account_id -> Uuid,
        kind -> Text,
        amount_cents -> Int8,
        balance_after_cents -> Int8,
        task_id -> Nullable<Uuid>,
        business_day -> Date,
        created_at -> Timestamptz,
        version -> Int8,
        reversed_by -> Nullable<Uuid>,
    }
}

diesel::table! {
    day_earnings (day) {
        day -> Date,
        fees_cents -> Int8,
        rewards_cents -> Int8,
    }
}

diesel::table! {
    account_balance (account_id) {
        account_id -> Uuid,
        balance_cents -> Int8,
        version -> Int8,
    }
}

diesel::table! {
    day_top_reward (day) {
        day -> Date,
        transaction_id -> Uuid,
        task_id -> Nullable<Uuid>,
        amount_cents -> Int8,
    }
}

diesel::table! {
    negative_balance_count (only_row) {
        only_row -> Bool,
        workers -> Int8,
    }
}
