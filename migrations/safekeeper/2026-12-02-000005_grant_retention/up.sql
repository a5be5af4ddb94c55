-- Expired codes and refresh tokens, and spent grant families, are deleted
-- in small batches (platform::retention). Rows arrive in time order and
-- their expiry follows (a fixed lifetime after issue), so block-range
-- indexes find the old ones at almost no cost to issuing.
CREATE INDEX authorization_code_expiry_brin ON authorization_code USING brin (expires_at);
CREATE INDEX refresh_token_expiry_brin ON refresh_token USING brin (expires_at);
CREATE INDEX grant_family_created_brin ON grant_family USING brin (created_at);
-- Deleting a family looks for its codes (the NOT EXISTS that makes it
-- spent, and the cascade): without this, a scan of every code per family.
CREATE INDEX authorization_code_family_idx ON authorization_code (family_id);
