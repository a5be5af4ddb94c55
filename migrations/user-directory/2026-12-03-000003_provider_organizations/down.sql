DROP TABLE provider_organizations;
