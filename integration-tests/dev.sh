#!/usr/bin/env bash
# Bosun's developer entry point.
#
#   integration-tests/dev.sh up [--masters N]   build and run a local cluster
#                                               (masters and a node agent on
#                                               the local Docker engine)
#   integration-tests/dev.sh up --hosts N [--masters M]
#                                               N hosts on this machine, each
#                                               a network namespace with its
#                                               own engine and agent, and M
#                                               masters (default 1); as root
#   integration-tests/dev.sh test               the whole test suite (CI runs this)
#   integration-tests/dev.sh bench ARGS...      the benchmark tool (release build)
#   integration-tests/dev.sh images [--release] images for docker-compose.yml,
#                                               from the build `up` makes
#                                               (or a release build), and
#                                               the BusyBox image
#   integration-tests/dev.sh images --bin-dir DIR [--tag TAG]
#                                               only the images, of binaries
#                                               already built (the tests')
#
# Installs what a fresh Debian machine lacks, and keeps the cargo build cache
# outside the clone ($CARGO_TARGET_DIR, default ~/.cache/bosun/target) so
# later runs are incremental.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/bosun/target}"
mkdir -p "$CARGO_TARGET_DIR"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Installs Debian packages, waiting for another apt or dpkg to finish and
# retrying through transient mirror errors; on failure it prints apt's own
# output, so a CI log says why.
apt_install() {
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    local apt=($sudo env DEBIAN_FRONTEND=noninteractive apt-get -q
        -o DPkg::Lock::Timeout=300 -o Acquire::Retries=3)
    local out
    out="$(mktemp)"
    # A fresh machine may have no package lists, or stale ones whose
    # files have left the mirror: update before every retry.
    for attempt in 1 2 3; do
        if "${apt[@]}" install -y "$@" >"$out" 2>&1; then
            rm -f "$out"
            return 0
        fi
        log "apt-get install failed (attempt $attempt); updating the package lists"
        "${apt[@]}" update >>"$out" 2>&1 || sleep $((attempt * 10))
    done
    cat "$out" >&2
    rm -f "$out"
    echo "error: could not install $*; install them by hand and run again" >&2
    return 1
}

# System packages: clang/libclang for rocksdb's bindings, busybox-static for
# the test image, python3 gRPC for the "any language" API test.
ensure_deps() {
    local missing=()
    command -v clang >/dev/null || missing+=(clang)
    ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || missing+=(libclang-dev)
    [ -x /bin/busybox ] || command -v busybox >/dev/null || missing+=(busybox-static)
    # The hosts of the networking tests: namespaces, veths, bridges, and
    # the packet filter the agent programs.
    { command -v ip && command -v bridge && command -v nsenter; } >/dev/null || missing+=(iproute2 util-linux)
    command -v iptables-restore >/dev/null || missing+=(iptables)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt_install "${missing[@]}"
    fi
    if ! python3 -c 'import grpc, grpc_reflection, grpc_health' >/dev/null 2>&1; then
        log "installing python grpcio, grpcio-reflection and grpcio-health-checking"
        python3 -m pip install --quiet grpcio grpcio-reflection grpcio-health-checking protobuf
    fi
}

BUSYBOX_IMAGE="local/busybox:1"

# A BusyBox image made from the host's busybox-static, for trying Bosun
# without a registry.
import_busybox() {
    docker image inspect "$BUSYBOX_IMAGE" >/dev/null 2>&1 && return
    log "importing $BUSYBOX_IMAGE from the host's busybox"
    local root
    root="$(mktemp -d)"
    mkdir -p "$root/bin" "$root/tmp"
    cp "$(command -v busybox)" "$root/bin/busybox"
    for applet in $("$root/bin/busybox" --list); do
        [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
    done
    tar -C "$root" -c . | docker import - "$BUSYBOX_IMAGE" >/dev/null
    rm -rf "$root"
}

cmd_test() {
    ensure_deps
    log "formatting"
    cargo fmt --all -- --check
    log "building"
    cargo build --workspace --all-targets --locked
    log "clippy"
    cargo clippy --workspace --all-targets --locked -- -D warnings
    log "tests"
    # The compose test runs alone, after the others: it starts a whole
    # cluster of containers, and its disk load (image layers on the
    # engine) would slow the other tests' fsyncs and elections.
    local rc=0
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run --workspace --locked --no-fail-fast -E 'not binary(compose)' || rc=$?
        log "tests: the docker-compose cluster"
        cargo nextest run --workspace --locked --no-fail-fast -E 'binary(compose)' || rc=$?
    else
        cargo test --workspace --locked --no-fail-fast -- --skip compose_ || rc=$?
        cargo test --workspace --locked --no-fail-fast --test compose || rc=$?
    fi
    return "$rc"
}

cmd_up() {
    local masters=3 masters_given="" hosts=""
    while [ $# -gt 0 ]; do
        case "$1" in
            --masters) masters="$2"; masters_given=1; shift 2 ;;
            --hosts) hosts="$2"; shift 2 ;;
            *) echo "unknown option $1" >&2; exit 2 ;;
        esac
    done
    if [ -n "$hosts" ]; then
        up_hosts "$hosts" "${masters_given:+$masters}"
        return
    fi
    ensure_deps
    log "building master, node-agent and ctl"
    cargo build --locked -p bosun-master -p bosun-node-agent -p bosun-ctl
    import_busybox
    local bin="$CARGO_TARGET_DIR/debug"
    local data="${BOSUN_LOCAL_DATA:-$HOME/.local/share/bosun/local-cluster}"
    mkdir -p "$data"
    local pids=() servers=()
    trap 'kill "${pids[@]}" 2>/dev/null; wait; log "cluster stopped (data kept in $data)"' EXIT INT TERM
    for i in $(seq 1 "$masters"); do
        local port=$((7419 + i))
        local args=(--node-id "$i" --listen "127.0.0.1:$port" --data-dir "$data/master-$i")
        [ "$i" -gt 1 ] && args+=(--join 127.0.0.1:7420)
        "$bin/master" "${args[@]}" >"$data/master-$i.log" 2>&1 &
        pids+=($!)
        servers+=("127.0.0.1:$port")
    done
    export BOSUN_SERVER
    BOSUN_SERVER="$(IFS=,; echo "${servers[*]}")"
    # Wait until every master is a voter and the built-in namespaces exist.
    for _ in $(seq 1 150); do
        if [ "$("$bin/ctl" cluster status 2>/dev/null | grep -c ' yes$')" -eq "$masters" ] \
            && "$bin/ctl" get namespace default >/dev/null 2>&1; then
            break
        fi
        sleep 0.2
    done
    local node
    node="$(hostname | tr '[:upper:]' '[:lower:]')"
    "$bin/node-agent" --master "$BOSUN_SERVER" --name "$node" --data-dir "$data/agent" >"$data/agent.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 150); do
        "$bin/ctl" get nodes 2>/dev/null | grep -q " Ready " && break
        sleep 0.2
    done
    "$bin/ctl" cluster status
    "$bin/ctl" get nodes
    cat >&2 <<MSG

Bosun is running: $masters master(s) and a node agent ($node) on the local
Docker engine; logs in $data/*.log. The engine has the image $BUSYBOX_IMAGE.
In another shell:
    export BOSUN_SERVER=$BOSUN_SERVER
    export PATH="$bin:\$PATH"     # ctl, also in scripts
    ctl get nodes
Press Ctrl-C to stop (pods keep running; \`ctl delete\` them first).
MSG
    wait
}

# The cluster of `up --hosts N [--masters M]`: bosun-hosts makes the
# hosts (network namespaces, each with its own engine and agent) and the
# masters' hosts, prints how to reach them, and removes it all on Ctrl-C.
up_hosts() {
    local hosts="$1" masters="${2:-1}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: up --hosts makes network namespaces and runs engines: run it as root" >&2
        exit 1
    fi
    ensure_deps
    log "building master, node-agent, ctl and bosun-hosts"
    cargo build --locked -p bosun-master -p bosun-node-agent -p bosun-ctl
    cargo build --locked -p bosun-integration-tests --bin bosun-hosts
    exec "$CARGO_TARGET_DIR/debug/bosun-hosts" --hosts "$hosts" --masters "$masters"
}

cmd_bench() {
    ensure_deps
    cargo build --release --locked -p bosun-master -p bosun-node-agent -p bosun-integration-tests
    "$CARGO_TARGET_DIR/release/bosun-bench" --bin-dir "$CARGO_TARGET_DIR/release" "$@"
}

# Images FROM scratch holding each binary and the libraries it links,
# tagged bosun/NAME:TAG. By default of the debug build `up` makes (seconds
# when `up` ran before: no second build from scratch), --release for a
# release build (slower to make, faster to run). --bin-dir takes binaries
# already built and does nothing else (the compose test builds its images
# from the suite's binaries this way, with a tag of its own).
cmd_images() {
    local profile=debug bin_dir="" tag=dev
    while [ $# -gt 0 ]; do
        case "$1" in
            --release) profile=release; shift ;;
            --bin-dir) bin_dir="$2"; shift 2 ;;
            --tag) tag="$2"; shift 2 ;;
            *) echo "unknown option $1" >&2; exit 2 ;;
        esac
    done
    if [ -z "$bin_dir" ]; then
        ensure_deps
        local cargo_profile=()
        [ "$profile" = release ] && cargo_profile=(--release)
        log "building master, node-agent and ctl ($profile)"
        cargo build --locked "${cargo_profile[@]}" -p bosun-master -p bosun-node-agent -p bosun-ctl
        bin_dir="$CARGO_TARGET_DIR/$profile"
        import_busybox
    fi
    local name
    for name in master node-agent ctl; do
        local root binary
        root="$(mktemp -d)"
        binary="$bin_dir/$name"
        [ -x "$binary" ] || { echo "error: no $binary" >&2; rm -rf "$root"; exit 1; }
        mkdir -p "$root/usr/local/bin" "$root/tmp" "$root/data"
        chmod 1777 "$root/tmp"
        strip -o "$root/usr/local/bin/$name" "$binary"
        for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
            mkdir -p "$root$(dirname "$lib")"
            cp -L "$lib" "$root$lib"
        done
        # The engine's chatter (a deprecation notice of its legacy builder)
        # only when the build fails.
        local out
        if ! out="$(docker build -q -t "bosun/$name:$tag" -f "$ROOT/$name/Dockerfile" "$root" 2>&1)"; then
            echo "$out" >&2
            rm -rf "$root"
            exit 1
        fi
        rm -rf "$root"
        log "built bosun/$name:$tag"
    done
}

case "${1:-}" in
    up) shift; cmd_up "$@" ;;
    test) shift; cmd_test "$@" ;;
    bench) shift; cmd_bench "$@" ;;
    images) shift; cmd_images "$@" ;;
    *) sed -n '2,24p' "$0" >&2; exit 2 ;;
esac
