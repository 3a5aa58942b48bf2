# Developer tasks. `make digits` and `make test` are README's two commands.
.PHONY: digits test prereqs images cluster cluster-stop mlflow-clients fmt clippy check bench

CARGO ?= cargo

# No special build flags: `tug-infsrv` is copied into scoring images and a `FROM scratch`
# router image, and a dynamically linked build travels with its own loader and libraries
# (src/endpoint/runtime.rs), so `make`, `cargo build` and `cargo install` give the same tug.

# Install what the tests need when it is missing (needs root; Debian/Ubuntu).
prereqs:
	@command -v debootstrap >/dev/null || { \
	  echo "installing debootstrap (builds the offline base images)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; }
	@command -v python3 >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3; }
	@command -v kubernetes-validate >/dev/null || { \
	  echo "installing kubernetes-validate (checks tug's Kubernetes objects against current schemas)"; \
	  python3 -m pip install --quiet --disable-pip-version-check kubernetes-validate==1.37.0; }
	@command -v moto_server >/dev/null || { \
	  echo "installing moto's S3-compatible server (remote-data tests fetch from it)"; \
	  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]==5.1.18'; }
	@docker info >/dev/null 2>&1 || { echo "error: no Docker engine answers (is dockerd running?)"; exit 1; }

# The offline base images and the curated-environment stand-ins built on them (each skipped
# when already built from the same recipe; the stand-ins' wheels come from PyPI on the host).
images: prereqs
	images/build-base.sh all
	images/build-curated.sh all

# Run the digits example end to end: build the base image if needed, then the job.
digits:
	@command -v debootstrap >/dev/null || $(MAKE) prereqs
	images/build-base.sh sklearn
	$(CARGO) run --release --locked -- job create -f examples/digits/train.yml --stream

# A real single-node Kubernetes (1.20, built from Debian's source package, cached in
# /var/cache/tug-k8s) for the Kubernetes e2e suite; pods run on this machine's engine.
K8S := tests/k8s/cluster.sh
cluster: prereqs
	$(K8S) build
	$(K8S) start

cluster-stop:
	$(K8S) stop

# Real MLflow clients (three versions) and their wheelhouses, from PyPI on the host, cached
# in /var/cache/tug-mlflow: the tracking tests run them on the host and in containers.
mlflow-clients:
	tests/mlflow/clients.sh

# The whole test suite against the real Docker engine and the local cluster. The e2e
# suite must not skip here (TUG_E2E_REQUIRED); the cluster is stopped however it ends.
test: images cluster mlflow-clients
	@$(K8S) env
	env $$($(K8S) env) TUG_E2E_REQUIRED=1 $(CARGO) test --locked --all-targets -- --test-threads=4; \
	  rc=$$?; $(K8S) stop; exit $$rc

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --all-targets --locked -- -D warnings

check: fmt clippy test

bench:
	$(CARGO) run --release --locked --example bench_jobs
