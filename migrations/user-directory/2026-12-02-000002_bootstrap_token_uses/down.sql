DROP TABLE bootstrap_token_uses;
