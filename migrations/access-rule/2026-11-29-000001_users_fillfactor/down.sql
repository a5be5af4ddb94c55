ALTER TABLE users RESET (fillfactor);
