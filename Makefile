# The platform's commands. `make up` and `make test` work on a fresh machine.
.PHONY: up down test bench chaos fuzz soak tools fmt lint ci logs

up:        ## build and start everything with demo data, print where it is
	@bash scripts/up.sh

down:      ## stop what `make up` started
	@bash scripts/down.sh

test:      ## every test, starting PostgreSQL and the broker if needed
	@bash scripts/test.sh

bench:     ## measure, print a table, write target/bench/results.json
	@bash scripts/bench.sh

chaos:     ## the fault suite against a platform of its own (scripts/chaos.py)
	@bash scripts/chaos.sh

fuzz:      ## schemathesis against every service's OpenAPI on a platform of its own: no 5xx but documented 503s
	@bash scripts/fuzz.sh

soak:      ## 10 minutes of mixed load on a platform of its own: no errors, flat memory, p99 and pruned tables
	@bash scripts/soak.sh

tools:     ## install the local broker (tansu)
	@bash -c 'source scripts/lib.sh && ensure_tansu'

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

logs:
	@tail -n 50 -f .state/logs/*.log

.PHONY: images images-check k8s-check
images:    ## an image per service from deploy/Dockerfile (docs/containers.md)
	@bash scripts/images.sh build

images-check: ## build the images, run everything with Compose from local images, probe, smoke test
	@bash scripts/images.sh check

k8s-check: ## render the Kustomize overlays, validate them against the Kubernetes schemas
	@bash scripts/k8s-check.sh
