#!/bin/bash
# tap-inside.sh WORK OVF_RUN KERNEL INITRD: run inside the KVM test host by
# tests/net_tap.rs, in a network namespace of its own (it re-runs itself
# under `unshare --net`). Makes a TAP interface with 10.99.0.1/24, serves
# WORK/www on 10.99.0.1:8099 and boots the small network guest with
# `ovf-run boot --net tap=ovfrun-tap0` and 10.99.0.2/24; then traffic in
# both directions: the guest fetches a page from the host side, the host
# side fetches the guest's page and pings it; finally the guest sees
# WORK/www/stop and powers off. Prints "NET-TEST <what> <result>" lines.
set -u
if [ "${1:-}" != --in-netns ]; then
    exec unshare --net -- "$0" --in-netns "$@"
fi
shift
work="$1" bin="$2" kernel="$3" initrd="$4"
say() { echo "NET-TEST $*"; }
fail() { say "FAIL $*"; exit 1; }
tap=ovfrun-tap0

ip link set lo up
{ ip tuntap add "$tap" mode tap && ip addr add 10.99.0.1/24 dev "$tap" && ip link set "$tap" up; } ||
    fail "setup cannot make TAP $tap in the namespace"
say "namespace interfaces: $(ip -o link | awk -F': ' '{print $2}' | tr '\n' ' ')"
mkdir -p "$work/www"
token="HOST-SIDE-$RANDOM$RANDOM"
echo "$token" > "$work/www/from-host.txt"
rm -f "$work/www/stop"
busybox httpd -f -p 10.99.0.1:8099 -h "$work/www" &
httpd=$!

"$bin" boot --kernel "$kernel" --initrd "$initrd" --memory 256 --cpus 1 \
    --append "console=ttyS0 quiet panic=-1 ovfrun.ip=10.99.0.2/24 ovfrun.host=10.99.0.1" \
    --no-console --console-log "$work/console.log" --net tap=$tap 2> "$work/ovf-run.stderr" &
vm=$!
t0=$SECONDS
until grep -q "GUEST-NET: up" "$work/console.log" 2>/dev/null; do
    kill -0 $vm 2>/dev/null || fail "boot ovf-run exited before the guest's network came up"
    [ $((SECONDS - t0)) -lt 300 ] || fail "boot guest network not up within 300 s"
    sleep 0.5
done
say "guest up $((SECONDS - t0)) s: $(grep -a -o 'GUEST-NET: up.*' "$work/console.log" | tr -d '\r')"

# Host side -> guest: HTTP and ping.
ok=""
for _ in $(seq 30); do
    page="$(curl -s --max-time 3 http://10.99.0.2/guest.txt)" && [ -n "$page" ] && { ok=1; break; }
    sleep 1
done
[ -n "$ok" ] || fail "host-to-guest no answer from http://10.99.0.2/guest.txt"
say "host-to-guest http: $page"
busybox ping -c 2 -W 3 10.99.0.2 > "$work/ping.txt" 2>&1 || fail "host-to-guest ping: $(tail -n 2 "$work/ping.txt")"
say "host-to-guest ping: $(grep -o '[0-9]* packets received' "$work/ping.txt")"

# Guest -> host side: the guest fetched our page.
for _ in $(seq 30); do
    grep -q "GUEST-NET: fetched" "$work/console.log" && break
    sleep 1
done
got="$(grep -a -o 'GUEST-NET: fetched.*' "$work/console.log" | tr -d '\r')"
[ "$got" = "GUEST-NET: fetched $token" ] || fail "guest-to-host expected 'GUEST-NET: fetched $token', got '$got'"
say "guest-to-host http: $got"

touch "$work/www/stop"
for _ in $(seq 60); do kill -0 $vm 2>/dev/null || break; sleep 1; done
if kill -0 $vm 2>/dev/null; then kill -KILL $vm; fail "stop ovf-run still running 60 s after the guest was told to power off"; fi
wait $vm
rc=$?
[ $rc -eq 0 ] || fail "stop ovf-run exited with status $rc"
say "stop guest powered off, ovf-run status 0"
kill $httpd 2>/dev/null
say "DONE"
