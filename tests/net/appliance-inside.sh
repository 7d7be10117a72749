#!/bin/bash
# appliance-inside.sh WORK OVF_RUN OVA: run inside the KVM test host by
# tests/net_appliance.rs. Boots the appliance with user-mode networking and
# -p 18080:80, fetches its page through the published port, waits for the
# guest's DNS hook, stops ovf-run and checks passt went with it. Prints
# "NET-TEST <what> <result>" lines; exits non-zero on the first failure.
set -u
. "$(dirname "$0")/unchroot.sh"
work="$1" bin="$2" ova="$3"
say() { echo "NET-TEST $*"; }
fail() { say "FAIL $*"; exit 1; }
secs() { echo $((SECONDS - t0)); }

# The test host has only loopback, and passt copies the host's addresses and
# default route: give it an uplink (a TAP nobody reads; nothing leaves).
ip link set lo up
{ ip tuntap add ext0 mode tap && ip addr add 10.0.2.15/24 dev ext0 &&
  ip link set ext0 up && ip route add default via 10.0.2.2 dev ext0 onlink; } ||
    fail "setup cannot make the stand-in uplink"

# The host's resolver: a stub on 127.0.0.1, named by /etc/resolv.conf (a
# loopback resolver, as with systemd-resolved or dnsmasq; passt hands the
# guest its gateway address as DNS server and forwards those queries here).
printf 'nameserver 127.0.0.1\n' > /tmp/resolv.conf
mount --bind /tmp/resolv.conf /etc/resolv.conf || fail "setup cannot replace /etc/resolv.conf"
/usr/bin/python3 "$(dirname "$0")/dns-stub.py" 127.0.0.1 53 "$work/dns.log" &
dns_pid=$!

t0=$SECONDS
XDG_CACHE_HOME="$work/cache" "$bin" --accept-eula --no-console --console-log "$work/console.log" \
    --append ovfrun.test=dns -p 18080:80 "$ova" 2> "$work/ovf-run.stderr" &
vm=$!
while ! grep -q OVF-RUN-READY "$work/console.log" 2>/dev/null; do
    kill -0 $vm 2>/dev/null || fail "boot ovf-run exited before the ready marker"
    [ "$(secs)" -lt 900 ] || fail "boot no ready marker within 900 s"
    sleep 1
done
say "ready $(secs) s"
passt_pids="$(pgrep -x 'passt(\.avx2)?' | tr '\n' ' ')"
[ -n "$passt_pids" ] || fail "passt not running while the VM runs"
say "passt running: $passt_pids"

t1=$SECONDS
ok=""
for _ in $(seq 120); do
    if curl -s --max-time 5 -o "$work/page.html" http://127.0.0.1:18080/ &&
        grep -q OVF-RUN-TEST-PAGE "$work/page.html"; then ok=1; break; fi
    sleep 1
done
[ -n "$ok" ] || fail "curl no page through 127.0.0.1:18080 within 120 s of the marker"
say "curl ok $((SECONDS - t1)) s after the marker: $(grep -o 'OVF-RUN-TEST-PAGE[^<]*' "$work/page.html")"
# Published on loopback only.
if curl -s --max-time 3 -o /dev/null http://10.0.2.15:18080/; then
    fail "publish port 18080 answers on 10.0.2.15, not only on 127.0.0.1"
fi
say "publish loopback-only ok"

# Every thread of the ovf-run process has its seccomp filter
# (docs/seccomp.md), the CLI's own first thread too (the "supervisor" kind,
# installed while the vCPUs are held before the guest runs).
unfiltered=""
for st in /proc/$vm/task/*/status; do
    name="$(awk '/^Name:/ {print $2}' "$st" 2>/dev/null)"
    mode="$(awk '/^Seccomp:/ {print $2}' "$st" 2>/dev/null)"
    [ -n "$mode" ] || continue   # the thread ended meanwhile
    [ "$mode" = 2 ] || unfiltered="$unfiltered $name(Seccomp:$mode)"
done
[ -z "$unfiltered" ] || fail "seccomp threads without a filter:$unfiltered"
say "seccomp every thread filtered: $(ls /proc/$vm/task | wc -l) threads"

for _ in $(seq 150); do
    grep -q "OVF-RUN-DNS" "$work/console.log" && break
    sleep 1
done
line="$(grep -a -o 'OVF-RUN-DNS.*' "$work/console.log" | head -n 1 | tr -d '\r')"
[ -n "$line" ] || fail "dns no OVF-RUN-DNS line from the guest within 150 s"
say "dns guest: $line"
say "dns stub: $(grep -c '^query ' "$work/dns.log") queries: $(grep '^query ' "$work/dns.log" | tr '\n' ';')"

# Ctrl-C / SIGTERM presses the power button; the guest shuts down.
kill -TERM $vm
for _ in $(seq 120); do kill -0 $vm 2>/dev/null || break; sleep 1; done
if kill -0 $vm 2>/dev/null; then kill -KILL $vm; fail "stop ovf-run still running 120 s after SIGTERM"; fi
wait $vm
say "stop ovf-run exited with status $?"
sleep 1
left="$(pgrep -x 'passt(\.avx2)?' | tr '\n' ' ')"
[ -z "$left" ] || fail "orphan passt still running after ovf-run exited: $left"
curl -s --max-time 3 -o /dev/null http://127.0.0.1:18080/ && fail "orphan port 18080 still answers"
say "stop passt gone"
kill $dns_pid 2>/dev/null
say "DONE"
