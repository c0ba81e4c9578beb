#!/bin/bash
# One side of the two-VM multi-host run (tests/multihost/test_two_vms.py):
#
#   NETLAB_VM_NET=listen:PORT  tests/vm/run -- tests/multihost/vm_guest.sh vm1
#   NETLAB_VM_NET=connect:PORT tests/vm/run -- tests/multihost/vm_guest.sh vm2
#
# Runs as root inside a full-kernel VM whose only NIC is a wire to the other VM.
# Both sides give that NIC an underlay address (vm1 10.77.0.1/24, vm2 10.77.0.2/24:
# they exist only inside the two VMs).
#   vm1: a single-member etcd on 10.77.0.1:2379 (data on tmpfs), `netlab agent --host
#        vm1`, then the controller: up, check, down of topologies/multihost-vm.yml;
#        verifies that no lab namespace and no vxlan device is left, puts
#        /netlab-test/done, waits for vm2's verdict (/netlab-test/vm2), stops the
#        agent and etcd by pid.
#   vm2: waits for etcd, runs `netlab agent --host vm2`, waits for /netlab-test/done,
#        verifies the lab is gone from this kernel too, stops its agent, puts its
#        verdict /netlab-test/vm2.
# Prints a summary; exits 0 only if every step passed.
#
# Environment: NETLAB_MH_WAIT (seconds for each bounded wait, default 180),
# NETLAB_MH_TOPOLOGY (default topologies/multihost-vm.yml).
set -uo pipefail

role=${1:-}
case $role in
  vm1) me=10.77.0.1 peer=10.77.0.2 ;;
  vm2) me=10.77.0.2 peer=10.77.0.1 ;;
  *) echo "usage: $0 vm1|vm2" >&2; exit 2 ;;
esac
cd "$(dirname "$(readlink -f "$0")")/../.." || exit 2

ETCD=http://10.77.0.1:2379
TOPO=${NETLAB_MH_TOPOLOGY:-topologies/multihost-vm.yml}
WAIT=${NETLAB_MH_WAIT:-180}
LOGS=/run/netlab-mh           # tmpfs inside the VM
mkdir -p "$LOGS"
export ETCDCTL_API=3
# Let python keep netlab's bytecode (in this VM's tmpfs overlay: nothing reaches the host),
# so each netlab command after the first skips compiling it under TCG (about 1 s each).
unset PYTHONDONTWRITEBYTECODE
if command -v netlab >/dev/null; then NETLAB=(netlab); else NETLAB=(python3 -m netlab); fi

declare -a passed=() failed=()
uptime_s() { cut -d' ' -f1 /proc/uptime; }
say() { printf '[%s %7ss] %s\n' "$role" "$(uptime_s)" "$*"; }
ok() { passed+=("$1"); say "ok   - $1"; }
bad() { failed+=("$1"); say "FAIL - $1"; }
since() { awk -v t="$1" '{ printf "%.1f", $1 - t }' /proc/uptime; }
kv() { etcdctl --endpoints "$ETCD" --dial-timeout=2s --command-timeout=5s "$@"; }
has_key() { kv get --keys-only "$1" 2>/dev/null | grep -q .; }

# wait_for SECONDS DESCRIPTION CMD...: poll CMD until it succeeds (bounded).
wait_for() {
  local limit=$1 what=$2 t
  shift 2
  t=$(uptime_s)
  while ! "$@" >/dev/null 2>&1; do
    if awk -v t="$t" -v l="$limit" '{ exit !($1 - t > l) }' /proc/uptime; then
      bad "$what (not within ${limit}s)"
      return 1
    fi
    sleep 0.5
  done
  ok "$what ($(since "$t")s)"
}

# run DESCRIPTION CMD...: run a netlab command with its output shown indented.
run() {
  local what=$1 t rc
  shift
  t=$(uptime_s)
  say "\$ $*"
  "$@" 2>&1 | sed 's/^/    | /'
  rc=${PIPESTATUS[0]}
  if [[ $rc == 0 ]]; then ok "$what ($(since "$t")s)"; else bad "$what (exit $rc, $(since "$t")s)"; fi
  return "$rc"
}

# Stop a background process by its pid: SIGTERM, then SIGKILL after 20 s.
stop_pid() {
  local pid=$1 name=$2 i
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name (pid $pid) ignored SIGTERM: SIGKILL"
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  say "stopped $name (pid $pid)"
}

agent_pid="" etcd_pid=""
cleanup() {
  stop_pid "$agent_pid" "netlab agent"
  stop_pid "$etcd_pid" etcd
}
trap cleanup EXIT

finish() {
  cleanup
  agent_pid="" etcd_pid=""
  if [[ ${#failed[@]} != 0 && -s $LOGS/agent.log ]]; then
    say "agent log (last 60 lines):"
    tail -n 60 "$LOGS/agent.log" | sed 's/^/    agent| /'
  fi
  if [[ ${#failed[@]} != 0 && -s $LOGS/etcd.log ]]; then
    say "etcd log (last 20 lines):"
    tail -n 20 "$LOGS/etcd.log" | sed 's/^/    etcd| /'
  fi
  echo "== $role summary: ${#passed[@]} steps passed, ${#failed[@]} failed"
  local f
  for f in "${failed[@]}"; do echo "   failed: $f"; done
  [[ ${#failed[@]} == 0 ]] && exit 0
  exit 1
}

# No lab namespace and no vxlan device left on this kernel.
check_clean() {
  local ns vx
  ns=$(ip netns list 2>&1)
  if [[ -z $ns ]]; then ok "no lab namespace left (ip netns list is empty)"
  else bad "namespaces left on $role: $(echo "$ns" | tr '\n' ' ')"; fi
  vx=$(ip -o link show type vxlan 2>&1)
  if [[ -z $vx ]]; then ok "no vxlan device left in the root namespace"
  else bad "vxlan devices left on $role: $(echo "$vx" | awk -F': ' '{print $2}' | tr '\n' ' ')"; fi
}

start_agent() {
  say "\$ ${NETLAB[*]} agent --etcd $ETCD --host $role $* &"
  "${NETLAB[@]}" agent --etcd "$ETCD" --host "$role" "$@" >"$LOGS/agent.log" 2>&1 &
  agent_pid=$!
  say "netlab agent pid $agent_pid"
}

agent_alive() {
  kill -0 "$agent_pid" 2>/dev/null && return 0
  bad "netlab agent (pid $agent_pid) exited early"
  return 1
}

# --- the underlay: the VM's one NIC (found by its MAC, else the one real device)
say "kernel $(uname -r), $(nproc) vCPUs, netlab: ${NETLAB[*]}"
nic=""
for d in /sys/class/net/*; do
  [[ -e $d/device ]] || continue
  if [[ -n ${NETLAB_VM_MAC:-} && $(<"$d/address") == "$NETLAB_VM_MAC" ]]; then nic=${d##*/}; break; fi
  [[ -z $nic ]] && nic=${d##*/}
done
if [[ -z $nic ]]; then
  bad "no NIC in this VM (is NETLAB_VM_NET set?)"
  finish
fi
ip addr add "$me/24" dev "$nic" && ip link set "$nic" up \
  && ok "underlay $me/24 on $nic ($(<"/sys/class/net/$nic/address"))" \
  || { bad "configuring $nic"; finish; }
wait_for "$WAIT" "peer $peer answers ping" ping -c1 -W1 "$peer" || finish
if ip route | grep -q '^default'; then bad "a default route exists: $(ip route | grep '^default')"; fi

if [[ $role == vm1 ]]; then
  # --- etcd: one member, data on tmpfs
  t=$(uptime_s)
  etcd --name vm1 --data-dir "$LOGS/etcd" \
    --listen-client-urls "$ETCD" --advertise-client-urls "$ETCD" \
    --listen-peer-urls http://10.77.0.1:2380 --initial-advertise-peer-urls http://10.77.0.1:2380 \
    --initial-cluster vm1=http://10.77.0.1:2380 --initial-cluster-state new \
    >"$LOGS/etcd.log" 2>&1 &
  etcd_pid=$!
  say "etcd pid $etcd_pid"
  wait_for "$WAIT" "etcd answers on $ETCD" kv endpoint health || finish
  kv del --prefix /netlab-test/ >/dev/null

  # --- this host's agent, then wait until vm2's has registered too
  start_agent --state-dir /run/netlab
  # (/netlab/hosts/<host> is the agent's registration, on its lease: netlab/multihost/store.py)
  wait_for "$WAIT" "agent vm1 registered" has_key /netlab/hosts/vm1 || true
  wait_for "$WAIT" "agent vm2 registered (from the other VM)" has_key /netlab/hosts/vm2 || true
  agent_alive || true

  # --- the controller
  if [[ ${#failed[@]} == 0 ]]; then
    run "netlab up --etcd" "${NETLAB[@]}" up --etcd "$ETCD" "$TOPO"
    run "netlab check --etcd (ping, tcp, dns across the hosts)" \
      "${NETLAB[@]}" check --etcd "$ETCD" "$TOPO"
    ip netns list | sed 's/^/    vm1 netns: /'
  fi
  run "netlab down --etcd" "${NETLAB[@]}" down --etcd "$ETCD" "$TOPO"
  check_clean

  # --- tell vm2, and wait for its verdict before etcd goes away
  if kv put /netlab-test/done "$([[ ${#failed[@]} == 0 ]] && echo ok || echo failed)" >/dev/null; then
    ok "put /netlab-test/done"
  else
    bad "put /netlab-test/done"
  fi
  if wait_for "$WAIT" "vm2 reported" has_key /netlab-test/vm2; then
    verdict=$(kv get --print-value-only /netlab-test/vm2)
    if [[ $verdict == ok ]]; then ok "vm2's verdict: ok"; else bad "vm2's verdict: $verdict"; fi
  fi
  finish
fi

# --- vm2
wait_for "$WAIT" "etcd at $ETCD answers" kv endpoint health || finish
start_agent
wait_for "$WAIT" "agent vm2 registered" has_key /netlab/hosts/vm2 || true
# The whole controller run happens on vm1: allow for it (several of WAIT).
if wait_for "$((WAIT * 5))" "/netlab-test/done from vm1" has_key /netlab-test/done; then
  say "vm1 says: $(kv get --print-value-only /netlab-test/done)"
fi
agent_alive || true
check_clean
stop_pid "$agent_pid" "netlab agent"
agent_pid=""
# Report this side's verdict to vm1 (which keeps etcd up until it has read it).
kv put /netlab-test/vm2 "$([[ ${#failed[@]} == 0 ]] && echo ok || echo "failed: ${failed[*]}")" >/dev/null \
  || bad "put /netlab-test/vm2"
finish
