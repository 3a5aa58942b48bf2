# Developer tasks. `make digits` and `make test` are README's two commands.
.PHONY: digits test prereqs images fmt clippy check bench

CARGO ?= cargo

# Static binaries: `tug-infsrv` is copied into scoring images (any base, any C library)
# and into a `FROM scratch` router image. glibc links statically when the target is
# given explicitly (build scripts and proc macros stay dynamic).
HOST_TRIPLE := $(shell rustc -vV | sed -n 's/^host: //p')
ifneq ($(filter %-linux-gnu,$(HOST_TRIPLE)),)
export CARGO_BUILD_TARGET ?= $(HOST_TRIPLE)
export CARGO_TARGET_$(shell echo $(HOST_TRIPLE) | tr a-z- A-Z_)_RUSTFLAGS ?= -C target-feature=+crt-static
endif

# Install what the tests need when it is missing (needs root; Debian/Ubuntu).
prereqs:
	@command -v debootstrap >/dev/null || { \
	  echo "installing debootstrap (builds the offline base images)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; }
	@command -v python3 >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3; }
	@docker info >/dev/null 2>&1 || { echo "error: no Docker engine answers (is dockerd running?)"; exit 1; }

# The offline base images (skipped when already built from the same recipe).
images: prereqs
	images/build-base.sh all

# Run the digits example end to end: build the base image if needed, then the job.
digits:
	@command -v debootstrap >/dev/null || $(MAKE) prereqs
	images/build-base.sh sklearn
	$(CARGO) run --release --locked -- job create -f examples/digits/train.yml --stream

# The whole test suite against the real Docker engine.
test: images
	$(CARGO) test --locked --all-targets -- --test-threads=4

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --all-targets --locked -- -D warnings

check: fmt clippy test

bench:
	$(CARGO) run --release --locked --example bench_jobs
