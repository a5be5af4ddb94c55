# The platform's commands. `make up` and `make test` work on a fresh machine.
.PHONY: up down test bench tools fmt lint ci logs

up:        ## build and start everything with demo data, print where it is
	@bash scripts/up.sh

down:      ## stop what `make up` started
	@bash scripts/down.sh

test:      ## every test, starting PostgreSQL and the broker if needed
	@bash scripts/test.sh

bench:     ## measure, print a table, write target/bench/results.json
	@bash scripts/bench.sh

tools:     ## install the local broker (tansu)
	@bash -c 'source scripts/lib.sh && ensure_tansu'

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

logs:
	@tail -n 50 -f .state/logs/*.log
