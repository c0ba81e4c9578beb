#!/bin/bash
# netlab VM stage 2: runs inside the VM as root, chrooted into the overlay of
# the host's root. tests/vm/run copies this file into the job directory, which
# the VM sees at /run/netlab-vm, together with:
#   nonce    marker suffix      argv  NUL-terminated command words
#   env      NUL-terminated NAME=VALUE list       cwd   working directory
#   modpath  this kernel's modules dir            modules  modules to load
#   tty      1 if the host's stdout is a terminal
# It prints a begin marker, loads modules, runs the command with the given
# environment and cwd, records the status in ./status and prints the end marker
# NETLAB_VM_EXIT_<nonce>=<status>. Stage 1 powers the VM off afterwards.
J=/run/netlab-vm
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
nonce=$(<"$J/nonce")
printf 'NETLAB_VM_BEGIN_%s\n' "$nonce"

finish() {
  echo "$1" >"$J/status"
  sync
  printf 'NETLAB_VM_EXIT_%s=%d\n' "$nonce" "$1"
  exit 0
}

mapfile -d '' -t argv <"$J/argv"
mapfile -d '' -t envv <"$J/env"
cwd=$(<"$J/cwd")
kver=$(uname -r)

# /tmp and /var/tmp are the host's, seen through the overlay: readable, and
# writes stay in the VM. /run is a fresh tmpfs (no host netns, sockets, pids).
[[ -L /var/run ]] || mount --bind /run /var/run
mountpoint -q /sys/fs/cgroup || mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mkdir -p /run/netns /run/lock

# This kernel's modules (from the host's cache dir, through the 9p root) where
# modprobe and the kernel's auto-loading look for them.
modpath=$(<"$J/modpath")
if [[ -d $modpath ]]; then
  # A tmpfs hides the host's own /lib/modules: removing a host copy of this
  # kernel's tree (linux-image installed there) through the overlay takes ~10 s.
  mkdir -p /lib/modules
  mount -t tmpfs -o mode=755 tmpfs /lib/modules
  ln -s "$modpath" "/lib/modules/$kver"
else
  echo "netlab-vm: no modules at $modpath" >&2
fi
mapfile -t mods < <(grep -v '^$' "$J/modules")
if ((${#mods[@]})) && ! modprobe -a -q "${mods[@]}" 2>/dev/null; then
  missing=()
  for m in "${mods[@]}"; do modprobe -q "$m" 2>/dev/null || missing+=("$m"); done
  echo "netlab-vm: warning: modules not loaded: ${missing[*]}" >&2
fi

hostname netlab-vm 2>/dev/null
ip link set lo up 2>/dev/null  # as on any booted system; a NETLAB_VM_NET NIC stays down for the command
cd "$cwd" || { echo "netlab-vm: cannot cd to $cwd" >&2; finish 125; }

if [[ $(<"$J/tty") == 1 ]]; then
  env -i "${envv[@]}" "${argv[@]}" </dev/null
  rc=$?
else
  # The host's stdout is not a terminal: let the command see a pipe too.
  env -i "${envv[@]}" "${argv[@]}" </dev/null 2>&1 | cat
  rc=${PIPESTATUS[0]}
fi
finish "$rc"
