DROP INDEX memberships_org_order;
