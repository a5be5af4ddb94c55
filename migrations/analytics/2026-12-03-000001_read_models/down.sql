DROP TABLE day_top_reward;
DROP TABLE account_balance;
DROP TABLE day_earnings;
DROP TABLE ledger_transaction;
DROP TABLE task;
DROP TABLE users;
