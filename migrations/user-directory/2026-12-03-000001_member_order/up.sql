-- `GET /v1/users` pages an organization's members in the order they
-- joined: this index hands them out in that order, so a page of 20 reads
-- 20 entries instead of sorting every member of a growing organization.
CREATE INDEX memberships_org_order ON memberships (organization_id, created_at, id)
    WHERE status <> 'deleted';
