//! diesel table definitions (see migrations/safekeeper).

diesel::table! {
    role (id) {
        id -> Int4,
        name -> Text,
        description -> Text,
    }
}

diesel::table! {
    permission_object (id) {
        id -> Int4,
        name -> Text,
    }
}

diesel::table! {
    permission_action (id) {
        id -> Int4,
        name -> Text,
    }
}

diesel::table! {
    scope (id) {
        id -> Int4,
        name -> Text,
        description -> Text,
    }
}

diesel::table! {
    permission (id) {
        id -> Int4,
        name -> Text,
        object_id -> Int4,
        action_id -> Int4,
    }
}

diesel::table! {
    permission_scope (permission_id, scope_id) {
        permission_id -> Int4,
        scope_id -> Int4,
    }
}

diesel::table! {
    role_permission (role_id, permission_id) {
        role_id -> Int4,
        permission_id -> Int4,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        username -> Text,
        is_active -> Bool,
        is_superuser -> Bool,
        version -> Int8,
        session_epoch -> Int8,
        ended_sessions -> Array<Text>,
    }
}

diesel::table! {
    user_role (user_id, role_id) {
        user_id -> Uuid,
        role_id -> Int4,
    }
}

diesel::table! {
    user_role_version (user_id) {
        user_id -> Uuid,
        version -> Int8,
    }
}

diesel::table! {
    client (id) {
        id -> Text,
        name -> Text,
        secret_hash -> Nullable<Text>,
        is_public -> Bool,
        first_party -> Bool,
        redirect_uris -> Array<Text>,
        grant_types -> Array<Text>,
        created_at -> Timestamptz,
        pkce_required -> Bool,
    }
}

diesel::table! {
    client_scope (client_id, scope_id) {
        client_id -> Text,
        scope_id -> Int4,
    }
}

diesel::table! {
    grant_family (id) {
        id -> Uuid,
        client_id -> Text,
        user_id -> Nullable<Uuid>,
        revoked_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    authorization_code (code_hash) {
        code_hash -> Text,
        family_id -> Uuid,
        client_id -> Text,
        user_id -> Uuid,
        redirect_uri -> Text,
        scope -> Text,
        code_challenge -> Nullable<Text>,
        expires_at -> Timestamptz,
        consumed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    refresh_token (token_hash) {
        token_hash -> Text,
        family_id -> Uuid,
        scope -> Text,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    revoked_access_token (jti) {
        jti -> Uuid,
        client_id -> Text,
        expires_at -> Timestamptz,
        revoked_at -> Timestamptz,
    }
}

diesel::joinable!(permission_scope -> scope (scope_id));
diesel::joinable!(permission_scope -> permission (permission_id));
diesel::joinable!(role_permission -> role (role_id));
diesel::joinable!(role_permission -> permission (permission_id));
diesel::joinable!(user_role -> role (role_id));
diesel::joinable!(client_scope -> scope (scope_id));
diesel::joinable!(permission -> permission_object (object_id));
diesel::joinable!(permission -> permission_action (action_id));

diesel::allow_tables_to_appear_in_same_query!(
    role,
    permission_object,
    permission_action,
    scope,
    permission,
    permission_scope,
    role_permission,
    users,
    user_role,
    client,
    client_scope,
    grant_family,
    authorization_code,
    refresh_token,
    revoked_access_token,
);
