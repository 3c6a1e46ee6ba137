#!/usr/bin/env bash
# The kernel's own floor for a routed pod network on this machine, with no
# Bosun and no Docker: two "hosts" (network namespaces joined by a veth),
# each with a bridge and a "pod" namespace behind it, routes between the
# two pod ranges (host-gw by hand). Prints iperf3's throughput host to host
# and pod to pod, side by side, for comparison with `bosun-bench network`.
# Needs root and iperf3. Everything it makes is named bfl-* and removed.
#
#   integration-tests/bench/pod-network-floor.sh [rounds]
set -euo pipefail
P=bfl
rounds="${1:-3}"
pids=""
cleanup() {
    if [ -n "$pids" ]; then
        for pid in "$pids"/*.pid; do [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null; done
        rm -rf "$pids"
    fi
    for n in h1 h2 p1 p2; do ip netns del "$P-$n" 2>/dev/null || true; done
}
trap cleanup EXIT
cleanup
pids="$(mktemp -d /tmp/bfl-XXXXXX)"
for n in h1 h2 p1 p2; do ip netns add "$P-$n"; ip -n "$P-$n" link set lo up; done
ip link add "$P-x" type veth peer name "$P-y"
ip link set "$P-x" netns "$P-h1"
ip link set "$P-y" netns "$P-h2"
ip -n "$P-h1" addr add 10.250.99.1/24 dev "$P-x"
ip -n "$P-h2" addr add 10.250.99.2/24 dev "$P-y"
ip -n "$P-h1" link set "$P-x" up
ip -n "$P-h2" link set "$P-y" up
for i in 1 2; do
    ip -n "$P-h$i" link add br0 type bridge
    ip -n "$P-h$i" addr add "10.77.$i.1/24" dev br0
    ip -n "$P-h$i" link set br0 up
    ip link add "$P-v$i" type veth peer name eth0 netns "$P-p$i"
    ip link set "$P-v$i" netns "$P-h$i"
    ip -n "$P-h$i" link set "$P-v$i" master br0 up
    ip -n "$P-p$i" addr add "10.77.$i.2/24" dev eth0
    ip -n "$P-p$i" link set eth0 up
    ip -n "$P-p$i" route add default via "10.77.$i.1"
    ip netns exec "$P-h$i" sysctl -qw net.ipv4.ip_forward=1
done
ip -n "$P-h1" route add 10.77.2.0/24 via 10.250.99.2
ip -n "$P-h2" route add 10.77.1.0/24 via 10.250.99.1
ip netns exec "$P-h2" iperf3 -s -p 5301 -D -I "$pids/h.pid"
ip netns exec "$P-p2" iperf3 -s -p 5302 -D -I "$pids/p.pid"
gbits() {
    ip netns exec "$1" iperf3 -c "$2" -p "$3" -t 5 -J |
        python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9,2))'
}
for _ in $(seq 50); do
    ip netns exec "$P-h1" iperf3 -c 10.250.99.2 -p 5301 -t 1 >/dev/null 2>&1 && break
    sleep 0.1
done
for _ in $(seq "$rounds"); do
    h="$(gbits "$P-h1" 10.250.99.2 5301)"
    p="$(gbits "$P-p1" 10.77.2.2 5302)"
    python3 -c "print('hosts $h Gbit/s  pods $p Gbit/s  ratio %.2fx' % ($p / $h))"
done
