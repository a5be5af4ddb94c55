//! diesel table definitions (see migrations/task): the catalogue, the users
//! read model, tasks with their status history and monthly rollup, and the
//! `task_view` view.

diesel::table! {
    task_rollup (assignee, month, status_id) {
        assignee -> Uuid,
        month -> Timestamptz,
        status_id -> Int4,
        tasks -> Int4,
    }
}

diesel::allow_tables_to_appear_in_same_query!(task, users);

diesel::table! {
    task_status (id) {
        id -> Int4,
        name -> Text,
    }
}

diesel::table! {
    task_severity (id) {
        id -> Int4,
        name -> Text,
    }
}

diesel::table! {
    workflow (id) {
        id -> Int4,
        name -> Text,
        initial_status_id -> Int4,
    }
}

diesel::table! {
    transition (id) {
        id -> Int4,
        workflow_id -> Int4,
        from_status_id -> Int4,
        to_status_id -> Int4,
        needs_approval -> Bool,
        approver_role -> Nullable<Text>,
    }
}

diesel::table! {
    task_type (id) {
        id -> Int4,
        name -> Text,
        workflow_id -> Int4,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        username -> Nullable<Text>,
        is_active -> Bool,
        roles -> Array<Text>,
        scopes -> Nullable<Array<Text>>,
        user_version -> Int8,
        role_version -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    task (id) {
        id -> Uuid,
        title -> Text,
        description -> Nullable<Text>,
        creator -> Uuid,
        assignee -> Nullable<Uuid>,
        type_id -> Int4,
        severity_id -> Nullable<Int4>,
        status_id -> Int4,
        parent -> Nullable<Uuid>,
        due_date -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        updated_by -> Nullable<Uuid>,
        price_cents -> Int8,
        assignment_fee_cents -> Int8,
        completion_reward_cents -> Int8,
        version -> Int8,
    }
}

diesel::table! {
    task_status_history (id) {
        id -> Int8,
        task_id -> Uuid,
        from_status_id -> Nullable<Int4>,
        to_status_id -> Int4,
        changed_by -> Uuid,
        changed_at -> Timestamptz,
    }
}

// The view of migrations/task: a task with the names of what it points to.
diesel::table! {
    task_view (id) {
        id -> Uuid,
        title -> Text,
        description -> Nullable<Text>,
        creator_id -> Uuid,
        creator -> Nullable<Text>,
        assignee_id -> Nullable<Uuid>,
        assignee -> Nullable<Text>,
        type_id -> Int4,
        type_name -> Nullable<Text>,
        severity_id -> Nullable<Int4>,
        severity_name -> Nullable<Text>,
        status_id -> Int4,
        status_name -> Nullable<Text>,
        parent -> Nullable<Uuid>,
        due_date -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        updated_by_id -> Nullable<Uuid>,
        updated_by -> Nullable<Text>,
        price_cents -> Int8,
        assignment_fee_cents -> Int8,
        completion_reward_cents -> Int8,
        version -> Int8,
    }
}
