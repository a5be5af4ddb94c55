//! diesel table definitions of the directory's core tables (see
//! migrations/user-directory); the tables of `changes`, `org_events` and
//! `admin_refresh` stay in those modules.

diesel::table! {
    organizations (id) {
        id -> Uuid,
        name -> Text,
        status -> Text,
        admin_email -> Text,
        admin_login -> Text,
        admin_reference_id -> Nullable<Text>,
        version -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        admin_session_epoch -> Int8,
        admin_is_active -> Bool,
        admin_provider_version -> Nullable<Int8>,
    }
}

diesel::table! {
    tenant_data (organization_id, key) {
        organization_id -> Uuid,
        key -> Text,
        value -> Jsonb,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        first_name -> Text,
        last_name -> Text,
        reference_id -> Text,
        provider_login -> Text,
        is_active -> Bool,
        provider_updated_at -> Nullable<Timestamptz>,
        provider_version -> Nullable<Int8>,
        version -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
        environment_role -> Text,
    }
}

diesel::table! {
    memberships (id) {
        id -> Uuid,
        user_id -> Uuid,
        organization_id -> Uuid,
        role -> Text,
        status -> Text,
        reference_id -> Nullable<Text>,
        provider_updated_at -> Nullable<Timestamptz>,
        version -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    user_creations (id) {
        id -> Uuid,
        email -> Text,
        provider_login -> Text,
        organization_id -> Uuid,
        role -> Text,
        state -> Text,
        reference_id -> Nullable<Text>,
        membership_reference_id -> Nullable<Text>,
        user_id -> Nullable<Uuid>,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    provider_tasks (id) {
        id -> Int8,
        kind -> Text,
        reference_id -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_error -> Nullable<Text>,
        created_at -> Timestamptz,
        done_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    provider_events (id) {
        id -> Text,
        event -> Text,
        payload -> Jsonb,
        source -> Text,
        received_at -> Timestamptz,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        applied_at -> Nullable<Timestamptz>,
        outcome -> Nullable<Text>,
    }
}

diesel::table! {
    sync_cursors (name) {
        name -> Text,
        cursor -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    import_jobs (id) {
        id -> Uuid,
        organization_id -> Uuid,
        status -> Text,
        total -> Int4,
        processed -> Int4,
        created -> Int4,
        existing -> Int4,
        failed -> Int4,
        input -> Nullable<Jsonb>,
        results -> Jsonb,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::joinable!(memberships -> users (user_id));
diesel::joinable!(memberships -> organizations (organization_id));
diesel::allow_tables_to_appear_in_same_query!(users, memberships, organizations);
