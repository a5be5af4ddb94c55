DROP TABLE day_close, balance, ledger_entry, users;
DROP FUNCTION ledger_entry_append_only();
