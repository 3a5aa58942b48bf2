#!/usr/bin/env bash
# Build tug's Debian Python base images without any container registry:
# debootstrap a minimal Debian root file system, add Python with apt inside a chroot,
# and `docker import` the result as a single-layer image.
#
# Usage: images/build-base.sh [minimal|sklearn|all] [--force]
#
# Environment:
#   TUG_DEBIAN_MIRROR           Debian mirror (default http://deb.debian.org/debian)
#   TUG_DEBIAN_SUITE            suite (default bookworm)
#   TUG_DEBIAN_SECURITY_MIRROR  security archive (default http://deb.debian.org/debian-security;
#                               set to the empty string to build without security updates)
#   TUG_BASE_WORKDIR            where the temporary root file systems go (default ${TMPDIR:-/tmp});
#                               must be a local file system without nodev/noexec
#   TUG_EXTRA_CA_CERTS          colon-separated PEM certificate files to trust in the image
#                               (a TLS-intercepting proxy, an internal index); default none
#
# An image is skipped when one with the same `tug.base.recipe` label (sha256 of this script,
# the suite and the package list) already exists; --force rebuilds anyway.
set -euo pipefail

readonly MIRROR="${TUG_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
readonly SUITE="${TUG_DEBIAN_SUITE:-bookworm}"
readonly SECURITY_MIRROR="${TUG_DEBIAN_SECURITY_MIRROR-http://deb.debian.org/debian-security}"
readonly WORK_BASE="${TUG_BASE_WORKDIR:-${TMPDIR:-/tmp}}"
readonly EXTRA_CA_CERTS="${TUG_EXTRA_CA_CERTS:-}"
# apt inside the chroot trusts what the host trusts while building (https mirrors), like
# debootstrap, which downloads with the host's tools. Not copied into the image.
readonly HOST_CA_BUNDLE="/etc/ssl/certs/ca-certificates.crt"
readonly REPO="tug/python"
SCRIPT_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
readonly SCRIPT_PATH

# Packages per variant, installed with --no-install-recommends on top of debootstrap's minbase.
readonly PKGS_MINIMAL="python3 python3-venv python3-pip ca-certificates"
readonly PKGS_SKLEARN="$PKGS_MINIMAL python3-numpy python3-sklearn python3-pandas python3-matplotlib"

# What a process inside the chroot sees: nothing from the caller's environment.
readonly CHROOT_ENV=(env -i
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    HOME=/root LANG=C.UTF-8 LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive)

usage() {
    sed -n '2,17p' "$SCRIPT_PATH" | sed 's/^# \{0,1\}//'
}

die() {
    echo "build-base.sh: error: $*" >&2
    exit 1
}

log() {
    echo "build-base.sh: $*" >&2
}

# --- arguments ------------------------------------------------------------------------------

target="all"
force=0
for arg in "$@"; do
    case "$arg" in
        minimal | sklearn | all) target="$arg" ;;
        --force) force=1 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '$arg' (expected minimal, sklearn, all or --force)" ;;
    esac
done

# --- preconditions --------------------------------------------------------------------------

if ! command -v debootstrap >/dev/null 2>&1; then
    die "debootstrap is not installed. Install it with: apt-get install debootstrap"
fi
[[ $EUID -eq 0 ]] || die "debootstrap and chroot need root; run this script as root (e.g. with sudo)"
command -v docker >/dev/null 2>&1 || die "the docker CLI is not installed"
docker info >/dev/null 2>&1 || die "cannot reach the Docker engine (is dockerd running? is DOCKER_HOST right?)"
[[ -d "$WORK_BASE" ]] || die "work dir '$WORK_BASE' does not exist"
extra_certs=()
if [[ -n "$EXTRA_CA_CERTS" ]]; then
    IFS=: read -r -a extra_certs <<<"$EXTRA_CA_CERTS"
    for cert in "${extra_certs[@]}"; do
        [[ -r "$cert" ]] || die "TUG_EXTRA_CA_CERTS: cannot read '$cert'"
        grep -q -- '-----BEGIN CERTIFICATE-----' "$cert" ||
            die "TUG_EXTRA_CA_CERTS: '$cert' is not a PEM certificate"
    done
fi

# --- temporary work dir, always cleaned up ----------------------------------------------------

WORK="$(mktemp -d "$WORK_BASE/tug-base.XXXXXX")"
WORK="$(cd "$WORK" && pwd -P)"

# Unmount everything below $1 (deepest first), then remove it without crossing file systems.
unmount_below() {
    local dir="$1" mnt
    # /proc/self/mounts escapes spaces as \040; our paths contain none.
    awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r |
        while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
}

cleanup() {
    local rc=$?
    if [[ -n "${WORK:-}" && -d "$WORK" ]]; then
        unmount_below "$WORK"
        rm -rf --one-file-system "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Shared between variants in one invocation so `all` downloads each .deb once.
mkdir -p "$WORK/debootstrap-cache" "$WORK/apt-archives/partial"

# --- helpers --------------------------------------------------------------------------------

packages_for() {
    case "$1" in
        minimal) echo "$PKGS_MINIMAL" ;;
        sklearn) echo "$PKGS_SKLEARN" ;;
    esac
}

recipe_hash() {
    local variant="$1"
    {
        cat "$SCRIPT_PATH"
        printf '\nsuite=%s\nvariant=%s\npackages=%s\n' "$SUITE" "$variant" "$(packages_for "$variant")"
        local cert
        for cert in "${extra_certs[@]}"; do
            printf 'extra-ca=%s\n' "$(sha256sum <"$cert" | cut -d' ' -f1)"
        done
    } | sha256sum | cut -d' ' -f1
}

human_size() {
    awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1000 / 1000 }'
}

in_chroot() {
    local rootfs="$1"
    shift
    "${CHROOT_ENV[@]}" chroot "$rootfs" "$@"
}

write_sources_list() {
    local rootfs="$1"
    {
        echo "# Written by tug images/build-base.sh. Point these at an internal mirror if needed."
        echo "deb $MIRROR $SUITE main"
        echo "deb $MIRROR $SUITE-updates main"
        if [[ -n "$SECURITY_MIRROR" ]]; then
            echo "deb $SECURITY_MIRROR $SUITE-security main"
        fi
    } >"$rootfs/etc/apt/sources.list"
}

# Keep later `apt-get install`s in Dockerfiles small too (the same rules as Debian's slim images).
write_dpkg_excludes() {
    local rootfs="$1"
    mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d"
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/tug-slim" <<'EOF'
# Written by tug images/build-base.sh: no documentation in the image (licences are kept).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
    cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
# Written by tug images/build-base.sh: do not keep downloaded packages in image layers.
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    cat >"$rootfs/etc/apt/apt.conf.d/docker-no-recommends" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
EOF
    echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
}

install_packages() {
    local rootfs="$1" variant="$2"
    local -a pkgs
    read -r -a pkgs <<<"$(packages_for "$variant")"

    cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
    mount -t proc proc "$rootfs/proc"
    # The docker-clean hook deletes .debs after each dpkg run; here we want to keep them in the
    # shared cache for the next variant, so the hook is installed only after this step.
    mount --bind "$WORK/apt-archives" "$rootfs/var/cache/apt/archives"

    local -a apt=(apt-get -q -y -o APT::Sandbox::User=root -o Dpkg::Use-Pty=0
        -o Acquire::Languages=none -o APT::Install-Recommends=false
        -o APT::Install-Suggests=false)
    if [[ -r "$HOST_CA_BUNDLE" ]]; then
        cp "$HOST_CA_BUNDLE" "$rootfs/tmp/tug-host-ca.crt"
        apt+=(-o Acquire::https::CaInfo=/tmp/tug-host-ca.crt)
    fi
    local aptlog="$WORK/apt-$variant.log"
    {
        in_chroot "$rootfs" "${apt[@]}" update &&
            in_chroot "$rootfs" "${apt[@]}" dist-upgrade &&
            in_chroot "$rootfs" "${apt[@]}" install "${pkgs[@]}"
    } >"$aptlog" 2>&1 || {
        tail -n 30 "$aptlog" >&2
        die "$variant: apt-get in the root file system failed (log above)"
    }
    log "$variant: $(grep -c '^Setting up ' "$aptlog" || true) packages installed or upgraded"

    umount "$rootfs/var/cache/apt/archives"
    umount "$rootfs/proc"
}

add_extra_certs() {
    local rootfs="$1" cert i=0
    [[ ${#extra_certs[@]} -gt 0 ]] || return 0
    mkdir -p "$rootfs/usr/local/share/ca-certificates"
    for cert in "${extra_certs[@]}"; do
        i=$((i + 1))
        cp "$cert" "$rootfs/usr/local/share/ca-certificates/tug-extra-$i-$(basename "${cert%.*}").crt"
    done
    in_chroot "$rootfs" update-ca-certificates >/dev/null
    log "added ${#extra_certs[@]} extra CA certificate(s)"
}

add_user() {
    local rootfs="$1"
    in_chroot "$rootfs" groupadd --gid 1000 tug
    in_chroot "$rootfs" useradd --uid 1000 --gid 1000 --home-dir /home/tug --create-home \
        --shell /bin/bash --comment "tug runtime user" tug
}

slim_down() {
    local rootfs="$1"
    in_chroot "$rootfs" apt-get clean
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
    mkdir -p "$rootfs/var/lib/apt/lists/partial"
    find "$rootfs/var/cache/apt/archives" -name '*.deb' -delete
    # Documentation, manuals, translations. Copyright files stay (licence notices).
    find "$rootfs/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
    find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
    rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/lintian
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
    # Logs and backups written while building; host files debootstrap copied in.
    find "$rootfs/var/log" -type f -delete
    rm -f "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old
    rm -f "$rootfs/etc/resolv.conf" "$rootfs/etc/hostname"
    : >"$rootfs/etc/machine-id" 2>/dev/null || true
    chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
    rm -rf "$rootfs"/tmp/* "$rootfs"/var/tmp/*
}

build_variant() {
    local variant="$1"
    local recipe existing
    recipe="$(recipe_hash "$variant")"

    existing="$(docker images --filter "label=tug.base.recipe=$recipe" \
        --filter "reference=$REPO" --format '{{.Repository}}:{{.Tag}}' | head -n1)"
    if [[ -n "$existing" && $force -eq 0 ]]; then
        log "$variant: $existing is up to date (recipe ${recipe:0:12}); skipping (use --force to rebuild)"
        return 0
    fi

    local start=$SECONDS
    local rootfs="$WORK/rootfs-$variant"
    log "$variant: debootstrap $SUITE from $MIRROR into $rootfs"
    debootstrap --variant=minbase --cache-dir="$WORK/debootstrap-cache" \
        "$SUITE" "$rootfs" "$MIRROR" >"$WORK/debootstrap-$variant.log" 2>&1 || {
        tail -n 30 "$WORK/debootstrap-$variant.log" >&2
        die "$variant: debootstrap failed (is $MIRROR reachable and does it carry '$SUITE'?)"
    }

    write_sources_list "$rootfs"
    log "$variant: installing $(packages_for "$variant")"
    install_packages "$rootfs" "$variant"
    write_dpkg_excludes "$rootfs"
    add_extra_certs "$rootfs"
    add_user "$rootfs"
    slim_down "$rootfs"

    local pyver pyfull
    pyver="$(in_chroot "$rootfs" python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    pyfull="$(in_chroot "$rootfs" python3 -c 'import platform; print(platform.python_version())')"
    in_chroot "$rootfs" python3 -c 'import venv, ensurepip, ssl' ||
        die "$variant: python3 in the root file system is missing venv/ensurepip/ssl"
    if [[ "$variant" == sklearn ]]; then
        in_chroot "$rootfs" python3 -c 'import numpy, sklearn' ||
            die "$variant: numpy/sklearn do not import in the root file system"
    fi

    local tag="$REPO:$pyver-$variant" previous
    previous="$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
    log "$variant: importing as $tag"
    tar --numeric-owner -C "$rootfs" \
        --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . |
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV LANG=C.UTF-8' \
            --change 'WORKDIR /' \
            --change 'CMD ["python3"]' \
            --change "LABEL org.opencontainers.image.title=\"tug python $pyver $variant\"" \
            --change 'LABEL org.opencontainers.image.source="tug images/build-base.sh"' \
            --change "LABEL org.opencontainers.image.base.name=\"debian:$SUITE\"" \
            --change "LABEL org.opencontainers.image.created=\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"" \
            --change "LABEL tug.base.variant=\"$variant\"" \
            --change "LABEL tug.base.python=\"$pyfull\"" \
            --change "LABEL tug.base.recipe=\"$recipe\"" \
            - "$tag" >/dev/null

    # Drop the image this one replaces, unless something still uses it (other tags,
    # containers, images built on it): then docker refuses, which is fine.
    if [[ -n "$previous" && "$previous" != "$(docker image inspect --format '{{.Id}}' "$tag")" ]]; then
        docker image rm "$previous" >/dev/null 2>&1 || true
    fi

    # The root file system is no longer needed; free the space before the next variant.
    unmount_below "$rootfs"
    rm -rf --one-file-system "$rootfs"

    local size
    size="$(docker image inspect --format '{{.Size}}' "$tag")"
    log "$variant: built $tag in $((SECONDS - start)) s, size $(human_size "$size") (Python $pyfull)"
}

case "$target" in
    all) variants=(minimal sklearn) ;;
    *) variants=("$target") ;;
esac

total_start=$SECONDS
for v in "${variants[@]}"; do
    build_variant "$v"
done
log "done in $((SECONDS - total_start)) s"
