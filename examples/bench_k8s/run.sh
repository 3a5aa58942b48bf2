#!/usr/bin/env bash
# P6: command jobs and deployments on the local cluster, tug next to kubectl 1.20 (Debian's
# kubernetes-client, unpacked into a scratch folder so it does not replace another kubectl).
#   examples/bench_k8s/run.sh [N]        # needs root, the local cluster (started if not)
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-5}
K8S=tests/k8s/cluster.sh
RUN=${TUG_K8S_RUN:-/tmp/tug-k8s}
[[ -f $RUN/kubeconfig ]] || { $K8S build; $K8S start; }
scratch=${TUG_BENCH_SCRATCH:-/tmp/tug-bench-k8s}
mkdir -p "$scratch"
if [[ ! -x $scratch/usr/bin/kubectl ]]; then
    (cd "$scratch" && apt-get download -qq kubernetes-client && dpkg-deb -x kubernetes-client_*.deb .)
fi
cargo build --release --quiet --bin tug
python3 examples/bench_k8s/p6.py "$PWD/target/release/tug" "$RUN/kubeconfig" "$RUN/audit.log" \
    "$scratch/usr/bin/kubectl" "$n"
cargo build --release --quiet --bin tug-infsrv
python3 examples/bench_k8s/p6_deploy.py "$PWD/target/release/tug" "$RUN/kubeconfig" \
    "$scratch/usr/bin/kubectl" "$n"
