#!/usr/bin/env bash
# Build tug's offline stand-ins for Azure ML's curated environments without any container
# registry: tug's Debian base images (build-base.sh) plus the real MLflow client and, for
# lightgbm, LightGBM, installed from a wheelhouse that pip fills on this host. The image
# builds run with no network (`docker build --network none`): containers never reach PyPI.
#
# Usage: images/build-curated.sh [minimal|sklearn|lightgbm|all] [--force]
#
# Environment:
#   TUG_WHEELHOUSE         where downloaded wheels are kept (default /var/cache/tug-wheels);
#                          fill it on a connected machine and copy it over to build offline
#   TUG_CURATED_MLFLOW     mlflow-skinny version (default 3.15.2, what azureml-mlflow pins)
#   TUG_CURATED_LIGHTGBM   lightgbm version (default 3.3.5, for Azure's lightgbm-3.3)
#   TUG_CURATED_SKOPS      skops version in the sklearn stand-in (default 0.11.0): MLflow 3's
#                          mlflow.sklearn.save_model/log_model write skops by default
#   PIP_INDEX_URL ...      pip's own settings apply to the download (an internal index)
#
# An image is skipped when one with the same `tug.curated.recipe` label (sha256 of this
# script, the variant, the pins and the base image's id) exists; --force rebuilds anyway.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly HERE
readonly SCRIPT_PATH="$HERE/$(basename "${BASH_SOURCE[0]}")"
readonly WHEELHOUSE="${TUG_WHEELHOUSE:-/var/cache/tug-wheels}"
readonly MLFLOW="${TUG_CURATED_MLFLOW:-3.15.2}"
readonly LIGHTGBM="${TUG_CURATED_LIGHTGBM:-3.3.5}"
# 0.11 is the newest skops that accepts Debian bookworm's numpy 1.24.
readonly SKOPS="${TUG_CURATED_SKOPS:-0.11.0}"
readonly REPO="tug/curated"
readonly VENV="/opt/tug/venv"

die() {
    echo "build-curated.sh: error: $*" >&2
    exit 1
}

log() {
    echo "build-curated.sh: $*" >&2
}

target="all"
force=0
for arg in "$@"; do
    case "$arg" in
        minimal | sklearn | lightgbm | all) target="$arg" ;;
        --force) force=1 ;;
        -h | --help) sed -n '2,17p' "$SCRIPT_PATH" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$arg' (expected minimal, sklearn, lightgbm, all or --force)" ;;
    esac
done

command -v docker >/dev/null 2>&1 || die "the docker CLI is not installed"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (is dockerd running? is DOCKER_HOST right?)"

# The image each stand-in starts from: a Debian base, or (lightgbm) the sklearn stand-in, so
# the two share every layer but LightGBM's.
base_of() {
    case "$1" in
        minimal) echo tug/python:3.11-minimal ;;
        sklearn) echo tug/python:3.11-sklearn ;;
        lightgbm) echo "$REPO:sklearn" ;;
    esac
}

# What pip installs into the image's virtual environment (the base's Debian packages —
# numpy, scipy, scikit-learn, pandas — satisfy the rest, through --system-site-packages).
requirements_of() {
    case "$1" in
        minimal) echo "mlflow-skinny==$MLFLOW" ;;
        sklearn) echo "mlflow-skinny==$MLFLOW skops==$SKOPS" ;;
        lightgbm) echo "lightgbm==$LIGHTGBM" ;;
    esac
}

# What the build imports to prove the install works.
imports_of() {
    case "$1" in
        minimal) echo mlflow ;;
        sklearn) echo "mlflow, skops.io" ;;
        lightgbm) echo "lightgbm, mlflow" ;;
    esac
}

# Fill the wheelhouse for one variant on the host. Wheels only, for the image's Python.
# LightGBM's own dependencies (numpy, scipy, scikit-learn) come from Debian in the base, so
# they are not downloaded.
fill_wheelhouse() {
    local variant="$1" python="$2" dir="$3"
    [[ -f "$dir/ready" ]] && return 0
    python3 -m pip --version >/dev/null 2>&1 ||
        die "pip is not installed on this host (apt-get install python3-pip); it fetches the wheels"
    log "$variant: downloading wheels for Python $python into $dir"
    rm -rf "$dir"
    mkdir -p "$dir"
    local -a pip=(python3 -m pip download --quiet --disable-pip-version-check
        --only-binary=:all: --python-version "$python" --dest "$dir")
    case "$variant" in
        lightgbm) "${pip[@]}" --no-deps "lightgbm==$LIGHTGBM" wheel ;;
        minimal) "${pip[@]}" "mlflow-skinny==$MLFLOW" ;;
        sklearn)
            # skops without its numeric dependencies (Debian's scikit-learn satisfies them);
            # its other requirements with theirs.
            "${pip[@]}" "mlflow-skinny==$MLFLOW" "huggingface-hub>=0.17.0" "tabulate>=0.8.8"
            "${pip[@]}" --no-deps "skops==$SKOPS"
            ;;
    esac
    touch "$dir/ready"
}

build_one() {
    local variant="$1"
    local base
    base="$(base_of "$variant")"
    if [[ "$variant" == lightgbm ]]; then
        build_one sklearn
    elif ! docker image inspect "$base" >/dev/null 2>&1; then
        log "$variant: base image $base is missing; building it first (needs root and debootstrap)"
        "$HERE/build-base.sh" "${base##*-}"
    fi
    local base_id python recipe tag="$REPO:$variant"
    base_id="$(docker image inspect --format '{{.Id}}' "$base")"
    # (a stand-in inherits its base's labels, so this works for both kinds of base)
    python="$(docker image inspect --format '{{index .Config.Labels "tug.base.python"}}' "$base")"
    python="${python%.*}"
    recipe="$({
        cat "$SCRIPT_PATH"
        printf '\nvariant=%s\nrequirements=%s\nbase=%s\n' "$variant" "$(requirements_of "$variant")" "$base_id"
    } | sha256sum | cut -d' ' -f1)"
    if [[ $force -eq 0 ]] && [[ "$(docker image inspect --format '{{index .Config.Labels "tug.curated.recipe"}}' "$tag" 2>/dev/null)" == "$recipe" ]]; then
        log "$variant: $tag is up to date"
        return 0
    fi
    local wheels="$WHEELHOUSE/curated-py$python-mlflow$MLFLOW"
    [[ "$variant" == sklearn ]] && wheels="$WHEELHOUSE/curated-py$python-mlflow$MLFLOW-skops$SKOPS"
    [[ "$variant" == lightgbm ]] && wheels="$WHEELHOUSE/curated-py$python-lightgbm$LIGHTGBM"
    fill_wheelhouse "$variant" "$python" "$wheels"

    local ctx
    ctx="$(mktemp -d "${TMPDIR:-/tmp}/tug-curated.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '$ctx'" RETURN
    cp -r "$wheels" "$ctx/wheels"
    # Two stages, so the wheels never become a layer of the image. LightGBM goes into the
    # sklearn stand-in's existing venv in one stage (its wheel, 2 MB, stays in a layer):
    # copying the whole venv out of a second stage would duplicate MLflow's 120 MB.
    if [[ "$variant" == lightgbm ]]; then
        cat >"$ctx/Dockerfile" <<EOF
FROM $base
COPY wheels /tmp/wheels
RUN $VENV/bin/pip install --quiet --no-input --disable-pip-version-check --no-cache-dir \\
      --no-index --find-links /tmp/wheels $(requirements_of "$variant") \\
 && $VENV/bin/python -c "import $(imports_of "$variant")" && rm -rf /tmp/wheels
EOF
    else
        cat >"$ctx/Dockerfile" <<EOF
FROM $base AS install
COPY wheels /tmp/wheels
RUN python3 -m venv --system-site-packages $VENV \\
 && $VENV/bin/pip install --quiet --no-input --disable-pip-version-check --no-cache-dir \\
      --no-index --find-links /tmp/wheels $(requirements_of "$variant") \\
 && $VENV/bin/python -c "import $(imports_of "$variant")"

FROM $base
COPY --from=install $VENV $VENV
ENV PATH=$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
EOF
    fi
    local start=$SECONDS
    log "$variant: building $tag from $base (no network)"
    docker build --quiet --network none --tag "$tag" \
        --label "org.opencontainers.image.title=tug curated stand-in $variant" \
        --label "org.opencontainers.image.source=tug images/build-curated.sh" \
        --label "org.opencontainers.image.base.name=$base" \
        --label "tug.curated.variant=$variant" \
        --label "tug.curated.recipe=$recipe" \
        --label "tug.curated.requirements=$(requirements_of "$variant")" \
        "$ctx" >/dev/null
    local size
    size="$(docker image inspect --format '{{.Size}}' "$tag")"
    log "$variant: built $tag in $((SECONDS - start)) s, size $(awk -v b="$size" 'BEGIN { printf "%.1f MB", b / 1e6 }')"
}

start=$SECONDS
case "$target" in
    all) for v in minimal sklearn lightgbm; do build_one "$v"; done ;;
    *) build_one "$target" ;;
esac
log "done in $((SECONDS - start)) s"
