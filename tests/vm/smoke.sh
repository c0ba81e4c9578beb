#!/usr/bin/env bash
# Smoke check of the full-kernel VM runner.
#
#   tests/vm/smoke.sh           on the host: boots the VM a few times and checks
#                               the kernel features, exit status and timeout
#   tests/vm/smoke.sh --inside  the part that runs inside the VM
#   tests/vm/smoke.sh --wire ME PEER  inside one of two VMs joined by NETLAB_VM_NET
#
# Prints "N passed, N failed" and exits non-zero if any check failed.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
pass=0 fail=0
ok() { echo "ok   - $*"; pass=$((pass + 1)); }
bad() { echo "FAIL - $*"; fail=$((fail + 1)); }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }

inside() {
  check "running under the full kernel (NETLAB_FULL_KERNEL=1)" [ "${NETLAB_FULL_KERNEL:-}" = 1 ]
  echo "     kernel $(uname -r), python $(command -v python3)"
  check "ip link add g1 type gre" ip link add g1 type gre local 10.0.0.1 remote 10.0.0.2
  check "gretap link" ip link add gt1 type gretap local 10.0.0.1 remote 10.0.0.3
  ip link del g1 2>/dev/null; ip link del gt1 2>/dev/null
  check "tc qdisc add dev lo root netem delay 10ms" \
    tc qdisc add dev lo root netem delay 10ms
  # The delay is real: a UDP round trip over loopback crosses lo twice.
  check "netem delays loopback (>= 20 ms round trip)" python3 - <<'EOF'
import socket, time
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", 0))
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.bind(("127.0.0.1", 0))
a.settimeout(5); b.settimeout(5)
t = time.monotonic()
a.sendto(b"x", b.getsockname()); _, peer = b.recvfrom(16)
b.sendto(b"y", peer); a.recvfrom(16)
rtt = time.monotonic() - t
print(f"     loopback round trip {rtt * 1000:.1f} ms")
raise SystemExit(0 if rtt >= 0.019 else 1)
EOF
  tc qdisc del dev lo root 2>/dev/null
  check "python3 -c 'import pyroute2'" python3 -c 'import pyroute2'
  check "pyroute2 adds a gre link" python3 - <<'EOF'
from pyroute2 import IPRoute
with IPRoute() as ipr:
    ipr.link("add", ifname="g2", kind="gre", gre_local="10.0.0.1", gre_remote="10.0.0.9")
    idx = ipr.link("get", ifname="g2")[0]["index"]
    ipr.link("del", index=idx)
EOF
  check "nftables table" nft add table inet netlab_smoke
  nft delete table inet netlab_smoke 2>/dev/null
  check "modules preloaded (sch_netem ip_gre veth bridge vxlan ifb sch_tbf sch_htb nf_tables)" \
    bash -c 'for m in sch_netem ip_gre veth bridge vxlan ifb sch_tbf sch_htb nf_tables; do
               [ -d /sys/module/$m ] || { echo "     missing $m"; exit 1; }; done'
  check "cwd preserved ($PWD)" [ "$PWD" = "$SMOKE_CWD" ]
  check "no NIC by default (no device-backed interface, no route)" \
    bash -c '! ls -d /sys/class/net/*/device >/dev/null 2>&1 && [ -z "$(ip route)" ]'
  check "writes stay in the VM (touch in the repo)" touch "$HERE/.vm-smoke-write"
}

host() {
  local t0 t1 rc out
  cd "$HERE/../.."
  "$HERE/setup" || { bad "setup"; return; }

  t0=$(date +%s.%N)
  SMOKE_CWD=$PWD "$HERE/run" -- "$HERE/smoke.sh" --inside >"${TMPDIR:-/tmp}/netlab-vm-smoke.$$" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  sed 's/^/  vm| /' "${TMPDIR:-/tmp}/netlab-vm-smoke.$$"
  local inner
  inner=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "${TMPDIR:-/tmp}/netlab-vm-smoke.$$")
  rm -f "${TMPDIR:-/tmp}/netlab-vm-smoke.$$"
  check "checks inside the VM pass ($inner; exit $rc)" [ "$rc" = 0 ]
  echo "     full smoke run in the VM: $(secs "$t0" "$t1") s"
  check "the VM's writes did not reach the host" [ ! -e "$HERE/.vm-smoke-write" ]

  "$HERE/run" sh -c 'exit 3'; rc=$?
  check "exit status 3 propagates (got $rc)" [ "$rc" = 3 ]

  out=$("$HERE/run" sh -c 'echo out; echo err >&2; printf tail')
  check "output streams back (got $(printf %q "$out"))" [ "$out" = $'out\nerr\ntail' ]

  NETLAB_VM_NET=listen:0 "$HERE/run" true 2>/dev/null; rc=$?
  check "a malformed NETLAB_VM_NET is refused (got $rc)" [ "$rc" = 2 ]

  # Two VMs joined by NETLAB_VM_NET ping each other over their one NIC.
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  t0=$(date +%s.%N)
  NETLAB_VM_NET=listen:$port "$HERE/run" "$HERE/smoke.sh" --wire 10.77.0.1 10.77.0.2 \
    >"${TMPDIR:-/tmp}/netlab-vm-wire1.$$" 2>&1 &
  local vm1=$!
  NETLAB_VM_NET=connect:$port "$HERE/run" "$HERE/smoke.sh" --wire 10.77.0.2 10.77.0.1 \
    >"${TMPDIR:-/tmp}/netlab-vm-wire2.$$" 2>&1
  local rc2=$?
  wait "$vm1"; rc=$?
  t1=$(date +%s.%N)
  sed 's/^/  vm1| /' "${TMPDIR:-/tmp}/netlab-vm-wire1.$$"
  sed 's/^/  vm2| /' "${TMPDIR:-/tmp}/netlab-vm-wire2.$$"
  rm -f "${TMPDIR:-/tmp}/netlab-vm-wire1.$$" "${TMPDIR:-/tmp}/netlab-vm-wire2.$$"
  check "two VMs on NETLAB_VM_NET ping each other (exits $rc $rc2, $(secs "$t0" "$t1") s)" \
    [ "$rc$rc2" = 00 ]

  t0=$(date +%s.%N)
  NETLAB_VM_TIMEOUT=3 "$HERE/run" sleep 600 2>/dev/null; rc=$?
  t1=$(date +%s.%N)
  check "timeout kills qemu and exits 124 (got $rc after $(secs "$t0" "$t1") s)" \
    [ "$rc" = 124 ]
}

# --wire ME PEER: inside a VM with a NETLAB_VM_NET NIC: address it, ping the peer.
wire() {
  local me=$1 peer=$2 nic="" d i
  for d in /sys/class/net/*; do
    [ "$(cat "$d/address")" = "${NETLAB_VM_MAC:-}" ] && nic=${d##*/}
  done
  check "the NIC with MAC ${NETLAB_VM_MAC:-?} is there (${nic:-none})" [ -n "$nic" ]
  [ -n "$nic" ] || return
  check "address $me/24 on $nic" ip addr add "$me/24" dev "$nic"
  ip link set "$nic" up
  for i in $(seq 60); do ping -c1 -W1 "$peer" >/dev/null 2>&1 && break; done
  check "ping $peer" ping -c3 -i0.2 -W2 "$peer"
  check "no default route" [ -z "$(ip route show default)" ]
  sleep 2  # let the peer's last ping be answered before this VM goes away
}

case "${1:-}" in
  --inside) inside ;;
  --wire) wire "$2" "$3" ;;
  *) host ;;
esac
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
