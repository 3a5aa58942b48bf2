#!/usr/bin/env bash
# A real single-node Kubernetes for tug's e2e suite, built from Debian bookworm's own
# `kubernetes` source package (no registry is needed: pods run on this machine's Docker
# engine through the kubelet's dockershim and see its locally built images).
#
# Test equipment, not product. The facts behind every step are in the shared reference
# `local-kubernetes.md`; the three source fixes are marked FIX below.
#
#   tests/k8s/cluster.sh build    # once per machine: ~10 min on 2 cores, cached in $CACHE
#   tests/k8s/cluster.sh start    # etcd, apiserver, controller-manager, scheduler, kubelet
#   tests/k8s/cluster.sh env      # prints TUG_E2E_KUBECONFIG=... for the e2e suite
#   tests/k8s/cluster.sh stop     # stops everything and removes the pods' containers
#
# The API server writes an audit line per request to $RUN/audit.log (benchmarks count
# tug's requests there).
#
# Needs root (apt, the kubelet). Everything listens on loopback only.
set -euo pipefail

CACHE=${TUG_K8S_CACHE:-/var/cache/tug-k8s}
RUN=${TUG_K8S_RUN:-/tmp/tug-k8s}
NODE=${TUG_K8S_NODE:-tug-node}
VERSION=v1.20.2
PAUSE_IMAGE=tug/k8s-pause:3.4
BIN=$CACHE/bin
# Bump when the build steps change, so a cached build from older steps is redone.
RECIPE=3

log() { printf '== k8s: %s\n' "$*" >&2; }
die() { printf 'k8s: error: %s\n' "$*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "needs root (apt-get, the kubelet); run as root"

apt_install() {
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    ((${#missing[@]} == 0)) && return 0
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build() {
    if [[ -f $BIN/.recipe && $(cat "$BIN/.recipe") == "$RECIPE" ]]; then
        log "binaries cached in $BIN"
        return 0
    fi
    local src_list=/etc/apt/sources.list.d/tug-k8s-src.sources
    if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
        log "adding a deb-src entry for bookworm ($src_list)"
        cat >"$src_list" <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
        apt-get update -qq
    fi
    apt_install golang-go etcd-server socat dpkg-dev openssl golang-github-modern-go-reflect2-dev gcc libc6-dev

    local work=$CACHE/work
    rm -rf "$work"
    mkdir -p "$work"
    log "fetching the kubernetes source package"
    (cd "$work" && apt-get source -qq kubernetes >/dev/null)
    local tree
    tree=$(find "$work" -maxdepth 1 -mindepth 1 -type d -name 'kubernetes-*' | head -1)
    [[ -n $tree ]] || die "apt-get source kubernetes gave no tree in $work"

    export GOPATH=$work/gopath GO111MODULE=off GOPROXY=off CGO_ENABLED=0 GOFLAGS=
    export GOCACHE=$CACHE/go-build
    mkdir -p "$GOPATH/src/k8s.io"
    ln -sfn "$tree" "$GOPATH/src/k8s.io/kubernetes"
    cd "$GOPATH/src/k8s.io/kubernetes"

    # FIX 1: reflect2 1.0.1 panics under Go >= 1.18 on every request body with a map.
    rm -rf vendor/github.com/modern-go/reflect2
    cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 vendor/github.com/modern-go/reflect2

    # FIX 3: this machine refuses negative oom_score_adj values; the kubelet asks for them.
    sed -i 's/defaultSandboxOOMAdj\( *\)int = -998/defaultSandboxOOMAdj\1int = 0/' pkg/kubelet/dockershim/docker_sandbox.go
    sed -i -E 's/(KubeletOOMScoreAdj|KubeProxyOOMScoreAdj|guaranteedOOMScoreAdj)( *)int = -99[0-9]/\1\2int = 0/' pkg/kubelet/qos/policy.go
    grep -q 'defaultSandboxOOMAdj *int = 0' pkg/kubelet/dockershim/docker_sandbox.go || die "FIX 3 did not apply to docker_sandbox.go"

    # FIX 2: the apiserver needs the generated OpenAPI definitions the release tarball omits.
    log "generating OpenAPI definitions"
    go build -o "$work/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
    local pkgs
    pkgs=$(grep -rl --include='*.go' '+k8s:openapi-gen=' pkg staging/src/k8s.io vendor/k8s.io \
        | xargs -n1 dirname | sort -u \
        | grep -v -e code-generator -e sample-apiserver \
        | sed -e 's#^pkg/#k8s.io/kubernetes/pkg/#' \
              -e 's#^staging/src/k8s.io/#k8s.io/kubernetes/vendor/k8s.io/#' \
              -e 's#^vendor/#k8s.io/kubernetes/vendor/#' | sort -u | paste -sd, -)
    log "openapi-gen over $(tr ',' '\n' <<<"$pkgs" | wc -l) packages"
    "$work/openapi-gen" -i "$pkgs" -p k8s.io/kubernetes/pkg/generated/openapi \
        -O zz_generated.openapi -h hack/boilerplate/boilerplate.generatego.txt \
        --report-filename /dev/null >/dev/null
    [[ -f pkg/generated/openapi/zz_generated.openapi.go ]] || die "openapi-gen wrote nothing"

    local v=k8s.io/kubernetes/vendor/k8s.io/component-base/version
    local ldflags="-s -w -X $v.gitVersion=$VERSION -X $v.gitMajor=1 -X $v.gitMinor=20 -X $v.gitTreeState=clean"
    mkdir -p "$BIN.new"
    for cmd in kube-apiserver kube-controller-manager kube-scheduler kubelet; do
        log "go build $cmd"
        go build -ldflags "$ldflags" -o "$BIN.new/$cmd" "k8s.io/kubernetes/cmd/$cmd"
    done
    log "building the pause image binary"
    gcc -static -Os -DVERSION="$VERSION" -o "$BIN.new/pause" build/pause/linux/pause.c
    cd /
    rm -rf "$BIN" "$work"
    mv "$BIN.new" "$BIN"
    echo "$RECIPE" >"$BIN/.recipe"
    log "built into $BIN"
}

wait_for() { # what, seconds, command...
    local what=$1 secs=$2
    shift 2
    for ((i = 0; i < secs * 4; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.25
    done
    die "$what did not come up within ${secs}s (logs in $RUN/*.log)"
}

api() { curl -sf --cacert "$RUN/pki/apiserver.crt" -H "Authorization: Bearer $(cat "$RUN/token")" "https://127.0.0.1:6443$1"; }

start() {
    [[ -x $BIN/kube-apiserver ]] || die "no binaries in $BIN: run '$0 build' first"
    apt_install etcd-server socat curl openssl
    stop quiet
    mkdir -p "$RUN/pki" "$RUN/etcd" "$RUN/kubelet"
    if ! grep -qE "^127\.0\.0\.1[[:space:]].*\b$NODE\b" /etc/hosts; then
        echo "127.0.0.1 $NODE" >>/etc/hosts
    fi
    if ! docker image inspect "$PAUSE_IMAGE" >/dev/null 2>&1; then
        tar -C "$BIN" -c pause | docker import -c 'ENTRYPOINT ["/pause"]' - "$PAUSE_IMAGE" >/dev/null
    fi
    openssl genrsa -out "$RUN/pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$RUN/pki/sa.key" -pubout -out "$RUN/pki/sa.pub" 2>/dev/null
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$RUN/token"
    echo "$(cat "$RUN/token"),admin,admin,system:masters" >"$RUN/pki/tokens.csv"

    log "starting etcd"
    setsid etcd --data-dir "$RUN/etcd" --listen-client-urls http://127.0.0.1:2379 \
        --advertise-client-urls http://127.0.0.1:2379 --listen-peer-urls http://127.0.0.1:2380 \
        >"$RUN/etcd.log" 2>&1 </dev/null &
    echo $! >"$RUN/etcd.pid"
    wait_for etcd 30 curl -sf http://127.0.0.1:2379/health

    # Every API request, one line each when it completes: how benchmarks count requests.
    cat >"$RUN/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted"]
rules:
  - level: Metadata
POLICY
    log "starting kube-apiserver"
    setsid "$BIN/kube-apiserver" --etcd-servers=http://127.0.0.1:2379 \
        --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port=6443 \
        --cert-dir="$RUN/pki" --token-auth-file="$RUN/pki/tokens.csv" \
        --authorization-mode=RBAC,Node --service-cluster-ip-range=10.96.0.0/16 \
        --service-account-key-file="$RUN/pki/sa.pub" \
        --service-account-signing-key-file="$RUN/pki/sa.key" \
        --service-account-issuer=https://kubernetes.default.svc \
        --feature-gates=TTLAfterFinished=true \
        --audit-policy-file="$RUN/audit-policy.yaml" --audit-log-path="$RUN/audit.log" \
        --audit-log-maxsize=500 --audit-log-maxbackup=1 \
        >"$RUN/apiserver.log" 2>&1 </dev/null &
    echo $! >"$RUN/apiserver.pid"
    wait_for kube-apiserver 90 api /readyz

    cat >"$RUN/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: tug-local
  cluster:
    server: https://127.0.0.1:6443
    certificate-authority-data: $(base64 -w0 "$RUN/pki/apiserver.crt")
users:
- name: admin
  user:
    token: $(cat "$RUN/token")
contexts:
- name: tug-local
  context: {cluster: tug-local, user: admin}
current-context: tug-local
KC
    chmod 600 "$RUN/kubeconfig"

    log "starting kube-controller-manager and kube-scheduler"
    setsid "$BIN/kube-controller-manager" --kubeconfig="$RUN/kubeconfig" --leader-elect=false \
        --bind-address=127.0.0.1 --service-account-private-key-file="$RUN/pki/sa.key" \
        --root-ca-file="$RUN/pki/apiserver.crt" --use-service-account-credentials=true \
        --feature-gates=TTLAfterFinished=true \
        >"$RUN/controller-manager.log" 2>&1 </dev/null &
    echo $! >"$RUN/controller-manager.pid"
    setsid "$BIN/kube-scheduler" --kubeconfig="$RUN/kubeconfig" --leader-elect=false \
        --bind-address=127.0.0.1 >"$RUN/scheduler.log" 2>&1 </dev/null &
    echo $! >"$RUN/scheduler.pid"

    log "starting kubelet (node $NODE)"
    setsid "$BIN/kubelet" --kubeconfig="$RUN/kubeconfig" --container-runtime=docker \
        --cgroup-driver=cgroupfs --fail-swap-on=false --cgroups-per-qos=false \
        --enforce-node-allocatable= --root-dir="$RUN/kubelet" \
        --pod-infra-container-image="$PAUSE_IMAGE" --address=127.0.0.1 --read-only-port=0 \
        --hostname-override="$NODE" --oom-score-adj=0 \
        --anonymous-auth=true --authorization-mode=AlwaysAllow \
        --image-gc-high-threshold=100 --image-gc-low-threshold=99 \
        --eviction-hard='memory.available<64Mi,nodefs.available<1%,imagefs.available<1%' \
        --serialize-image-pulls=false --v=1 \
        >"$RUN/kubelet.log" 2>&1 </dev/null &
    echo $! >"$RUN/kubelet.pid"
    wait_for "node $NODE Ready" 120 node_ready
    wait_for "default service account" 60 api /api/v1/namespaces/default/serviceaccounts/default
    log "ready: KUBECONFIG=$RUN/kubeconfig"
}

node_ready() {
    api "/api/v1/nodes/$NODE" | python3 -c '
import json, sys
n = json.load(sys.stdin)
ready = any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
tainted = any(t["key"] == "node.kubernetes.io/not-ready" for t in n["spec"].get("taints", []))
sys.exit(0 if ready and not tainted else 1)'
}

stop() {
    local quiet=${1:-}
    for c in kubelet scheduler controller-manager apiserver etcd; do
        local pidf=$RUN/$c.pid
        [[ -f $pidf ]] || continue
        local pid
        pid=$(cat "$pidf")
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 40; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -KILL -- "-$pid" 2>/dev/null || true
        rm -f "$pidf"
    done
    # The kubelet names pod containers k8s_<container>_<pod>_<namespace>_...
    local pods
    pods=$(docker ps -aq --filter name='^k8s_' 2>/dev/null || true)
    [[ -n $pods ]] && docker rm -f $pods >/dev/null 2>&1 || true
    rm -rf "$RUN/etcd"
    [[ -n $quiet ]] || log "stopped"
}

case ${1:-} in
build) build ;;
start) start ;;
stop) stop ;;
env) echo "TUG_E2E_KUBECONFIG=$RUN/kubeconfig" ;;
*) die "usage: $0 build|start|stop|env" ;;
esac
