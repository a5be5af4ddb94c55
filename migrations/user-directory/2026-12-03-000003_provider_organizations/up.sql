-- What WorkOS says of each organization named in the directory's file
-- (its `workos_id`), from organization.created|updated|deleted events,
-- kept by the provider's id: known before the local organization is
-- created, and after it is gone. The local name stays the operators' (it
-- links the organization to its entry in the file, and is unique where
-- WorkOS names are not): the provider's name and domains are kept beside
-- it, never written over it.
CREATE TABLE provider_organizations (
    workos_id           TEXT PRIMARY KEY,
    name                TEXT        NOT NULL,
    -- The organization's domains at WorkOS, as text (["foo-corp.com"]).
    domains             JSONB       NOT NULL DEFAULT '[]',
    -- The newest state applied (the organization's updated_at at WorkOS):
    -- an event about an older state changes nothing.
    provider_updated_at TIMESTAMPTZ NOT NULL,
    -- Deleted at WorkOS. Final: no later event brings it back. The local
    -- organization and its members stay (its admin removes it); it takes
    -- no new members.
    deleted_at          TIMESTAMPTZ,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
