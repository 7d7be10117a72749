#!/bin/bash
# inside.sh WORK OVF_RUN OVA [test|bench]: run inside the KVM test host by
# tests/snapshot.rs (test) and scripts/bench-snapshot (bench).
#
# Both: the mbr appliance boots detached to http:80 (cold), `ovf-run
# snapshot src DIR --stop` writes the snapshot and powers the source off.
# test: 3 clones restored at once, each with its own published port, each
#   serves its page; a file written in clone 1 (console login) is served by
#   clone 1 only, not by clone 2 nor by a later fresh restore; clone 1's
#   uptime continues from the snapshot and its clock is right; every clone
#   powers off with exit 0; then the refusals: a truncated memory file, a
#   state file of another format version, a modified package (exit 1,
#   nothing left running).
# bench: one clone alone, then 4 at once: restore -> ready times, and each
#   clone's RSS and PSS (the memory file's pages they share count once in
#   the PSS sum).
# Prints "SNAPSHOT-TEST ..." lines (bench: "SNAPSHOT-BENCH ..." too), then
# "SNAPSHOT-TEST DONE"; exits non-zero on the first failure.
set -u
PREFIX=SNAPSHOT-TEST
. "$(dirname "$0")/../lib/inside.sh"
work="$1" bin="$2" ova_src="$3" mode="${4:-test}"
standin_uplink

# Everything on the test host's tmpfs: the snapshot is mapped (9p would
# not do), and a copy of the package that the test may modify.
t=/run/snapshot-test
rm -rf "$t" "$work"/*.out "$work"/*.stderr "$work"/*.console "$work"/*.events
mkdir -p "$t/cache" "$t/run"
export XDG_CACHE_HOME="$t/cache" XDG_RUNTIME_DIR="$t/run"
cp "$ova_src" "$t/app.ova" || fail "cannot copy the package"
ova="$t/app.ova"
snap="$t/snap"
"$bin" verify --cached "$ova" > /dev/null || fail "setup verify"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# wait_for FILE PATTERN SECONDS
wait_for() {
    local end=$((SECONDS + $3))
    until grep -qa -- "$2" "$1" 2>/dev/null; do
        [ $SECONDS -lt $end ] || return 1
        sleep 0.2
    done
}
pid_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$XDG_RUNTIME_DIR/ovf-run/$1/info.json"; }
# memory NAME: "RSS_KIB PSS_KIB" of the instance's process
memory() {
    local pid; pid="$(pid_of "$1")" || return 1
    awk '/^Rss:/ { r = $2 } /^Pss:/ { p = $2 } END { print r, p }' "/proc/$pid/smaps_rollup"
}
# skew ADDR: the guest's clock minus ours, in seconds (busybox httpd's
# Date header; the header has whole seconds)
skew() {
    curl -sI --max-time 30 "http://$1/" | tr -d '\r' | sed -n 's/^Date: //p' |
        python3 -c 'import email.utils, sys, time; print(round(email.utils.parsedate_to_datetime(sys.stdin.read().strip()).timestamp() - time.time()))'
}
page_ok() { curl -s --max-time 30 "http://$1/" | grep -q OVF-RUN-TEST-PAGE; }
status_of() { curl -s --max-time 30 -o /dev/null -w '%{http_code}' "http://$1$2"; }

# 1. The source, cold, and its snapshot.
t0="$(now)"
"$bin" -d --name src --accept-eula --cpus 1 --memory 512 -p 0:80 --ready-when http:80 \
    --ready-timeout 15m "$ova" > "$work/src.out" 2> "$work/src.stderr" ||
    fail "the source did not start: $(tail -n 5 "$work/src.stderr")"
cold="$(since "$t0")"
say "source ready cold $cold s"
source_skew="$(skew "$("$bin" port src 80)")" || fail "no Date from the source"
say "source clock off by $source_skew s before the snapshot"
"$bin" snapshot src "$snap" --stop --time 120 > "$work/snapshot.out" 2> "$work/snapshot.stderr" ||
    fail "snapshot exited $?: $(cat "$work/snapshot.out" "$work/snapshot.stderr")"
grep -q "^src: snapshot in $snap" "$work/snapshot.out" || fail "snapshot said: $(cat "$work/snapshot.out")"
grep -q "^src: exited with 0 (poweroff)" "$work/snapshot.out" ||
    fail "the source did not power off: $(cat "$work/snapshot.out" "$work/snapshot.stderr")"
say "snapshot: $(head -n 1 "$work/snapshot.out")"
say "snapshot size: $(du -sk "$snap" | cut -f1) KiB on disk (memory file $(du -k "$snap/memory" | cut -f1) KiB of $((512 * 1024)) KiB guest memory, disk layer $(du -sk "$snap/disk0" | cut -f1) KiB)"
[ -z "$(left)" ] || fail "processes left after the snapshot: $(left)"

bench() {
    PREFIX=SNAPSHOT-BENCH
    say "cold boot to ready: $cold s"
    t0="$(now)"
    "$bin" restore "$snap" -d --name one -p 0:80 --ready-when http:80 > "$work/one.out" 2> "$work/one.stderr" ||
        fail "restore one: $(cat "$work/one.stderr")"
    say "restore to ready, one clone: $(since "$t0") s"
    say "one clone's events: $(grep -o '"t_ms":[0-9]*,"name":"one","event":"[a-z]*"' "$XDG_RUNTIME_DIR/ovf-run/one/events.jsonl" | sed 's/"t_ms":\([0-9]*\),"name":"one","event":"\([a-z]*\)"/\2 \1 ms/' | tr '\n' ',')"
    page_ok "$("$bin" port one 80)" || fail "clone one does not serve"
    read -r rss pss <<<"$(memory one)"
    say "one clone alone: rss $rss KiB pss $pss KiB"
    "$bin" stop --time 120 one > /dev/null || fail "stop one"
    t0="$(now)"
    pids=""
    for n in b1 b2 b3 b4; do
        "$bin" restore "$snap" -d --name "$n" -p 0:80 --ready-when http:80 > "$work/$n.out" 2> "$work/$n.stderr" &
        pids="$pids $!"
    done
    for p in $pids; do wait "$p" || fail "a clone of four did not start: $(cat "$work"/b*.stderr)"; done
    say "restore to ready, four clones at once: $(since "$t0") s (all four ready)"
    total_rss=0 total_pss=0
    for n in b1 b2 b3 b4; do
        page_ok "$("$bin" port "$n" 80)" || fail "clone $n does not serve"
        read -r rss pss <<<"$(memory "$n")"
        total_rss=$((total_rss + rss)) total_pss=$((total_pss + pss))
    done
    say "four clones together: rss $total_rss KiB pss $total_pss KiB"
    "$bin" stop --time 120 b1 b2 b3 b4 > /dev/null || fail "stop the four"
    PREFIX=SNAPSHOT-TEST
}

clones() {
    mkfifo "$t/c1.in" && exec 3<> "$t/c1.in" || fail "fifo"
    t0="$(now)"
    "$bin" restore "$snap" --name c1 -p 0:80 --ready-when http:80 --events "$work/c1.events" \
        < "$t/c1.in" > "$work/c1.console" 2> "$work/c1.stderr" &
    c1=$!
    pids=""
    for n in c2 c3; do
        "$bin" restore "$snap" -d --name "$n" -p 0:80 --ready-when http:80 > "$work/$n.out" 2> "$work/$n.stderr" &
        pids="$pids $!"
    done
    for p in $pids; do wait "$p" || fail "restore -d exited $?: $(cat "$work"/c[23].stderr)"; done
    wait_for "$work/c1.events" '"event":"ready"' 600 || fail "clone c1 not ready: $(tail -n 5 "$work/c1.stderr")"
    say "3 clones ready $(since "$t0") s after the restores began"
    declare -A addr
    for n in c1 c2 c3; do
        addr[$n]="$("$bin" port "$n" 80)" || fail "port $n"
        page_ok "${addr[$n]}" || fail "clone $n at ${addr[$n]} does not serve the page"
    done
    [ "$(printf '%s\n' "${addr[@]}" | sort -u | wc -l)" = 3 ] || fail "ports not distinct: ${addr[*]}"
    say "3 clones serve on ${addr[c1]} ${addr[c2]} ${addr[c3]}"

    # Log in on c1's console (getty was waiting at the snapshot) and write.
    started="$(now)"
    printf '\n' >&3
    wait_for "$work/c1.console" 'login:' 120 || fail "no login prompt on c1: $(tail -c 300 "$work/c1.console")"
    printf 'root\n' >&3
    wait_for "$work/c1.console" 'Password:' 120 || fail "no password prompt on c1: $(tail -c 300 "$work/c1.console")"
    printf 'ovf-run\n' >&3
    sleep 3
    # (One long line: the console holds what the UART cannot take yet.)
    printf '%s\n' 'echo CLONE-ONE > /srv/www/clone1.txt; sync; d=$(ls -d /sys/bus/acpi/devices/VMGENCTR:* | head -n 1); dev=no; [ -n "$d" ] && dev=yes; drv=$(basename "$(readlink $d/driver)" 2>/dev/null); echo "CHECK up=$(cut -d. -f1 /proc/uptime) clock=$(date +%s) genid=$(od -An -tx1 -j 913408 -N16 /dev/mem | tr -d " \n") device=$dev driver=${drv:-none} clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource) end"' >&3
    pattern='CHECK up=[0-9]* clock=[0-9]* genid=[0-9a-f]* device=[a-z]* driver=[a-z_]* clocksource=[a-z_-]* end'
    wait_for "$work/c1.console" "$pattern" 180 ||
        fail "no answer from c1's shell: $(tail -c 500 "$work/c1.console")"
    read -r up clock genid device driver clocksource <<<"$(grep -ao "$pattern" "$work/c1.console" | tail -n 1 | sed 's/CHECK up=//; s/ [a-z]*=/ /g; s/ end//')"
    # The source's ID is in the snapshot's memory file (guest address
    # 0xdf000 = file offset 913408: the first region starts at 0).
    source_id="$(od -An -tx1 -j 913408 -N16 "$snap/memory" | tr -d ' \n')"
    say "VM generation ID: source $source_id, c1 $genid; ACPI VMGENCTR device $device, driver $driver (the cloud kernel of the mbr appliance has no CONFIG_VMGENID)"
    [ "$device" = yes ] || fail "the guest has no ACPI VMGENCTR device"
    [ ${#genid} = 32 ] && [ ${#source_id} = 32 ] && [ "$genid" != "$source_id" ] ||
        fail "c1's generation ID ($genid) is not a new one (source: $source_id)"
    say "c1 has a new VM generation ID"
    age="$(since "$started")"
    host_clock="$(date +%s)"
    c1_skew=$((clock - host_clock))
    say "c1 uptime $up s, clone alive ${age%.*}+ s, guest clock off by $c1_skew s (the source was off by $source_skew s; clocksource $clocksource)"
    [ "$up" -gt "$(( ${age%.*} + 10 ))" ] || fail "c1's uptime $up s: it rebooted (the source was up ~$cold s)"
    # Not behind the source's own offset (a clock that was not moved on
    # would be behind by the whole time since the snapshot), not ahead of
    # the real time. (In the TCG test host the guests' clocks start a few
    # seconds behind already.)
    [ "$c1_skew" -ge $((source_skew - 3)) ] && [ "$c1_skew" -le 3 ] ||
        fail "c1's clock is $c1_skew s off, the source's was $source_skew s: the restore did not move it on"
    say "c1 uptime continues from the snapshot"

    [ "$(status_of "${addr[c1]}" /clone1.txt)" = 200 ] || fail "c1 does not serve its own file"
    curl -s "http://${addr[c1]}/clone1.txt" | grep -q CLONE-ONE || fail "c1's file has other content"
    [ "$(status_of "${addr[c2]}" /clone1.txt)" = 404 ] || fail "c2 sees c1's file"
    say "c1's file: served by c1, not by c2"

    out="$("$bin" stop --time 120 c2 c3)" || fail "stop c2 c3 exited $?: $out"
    [ "$(grep -c 'exited with 0 (poweroff)' <<<"$out")" = 2 ] || fail "c2/c3 did not power off: $out"
    "$bin" stop --time 120 c1 > /dev/null
    wait "$c1"; code=$?
    exec 3>&-
    [ "$code" = 0 ] || fail "c1 exited $code: $(tail -n 5 "$work/c1.stderr")"
    say "3 clones powered off, exit 0"

    "$bin" restore "$snap" -d --name fresh -p 0:80 --ready-when http:80 --snapshot-when-ready "$t/again" \
        > "$work/fresh.out" 2> "$work/fresh.stderr" || fail "fresh restore: $(cat "$work/fresh.stderr")"
    a="$("$bin" port fresh 80)"
    # The snapshot is taken the moment it is ready (the guest pauses).
    wait_for "$XDG_RUNTIME_DIR/ovf-run/fresh/events.jsonl" '"event":"snapshot"' 300 && [ -s "$t/again/state" ] ||
        fail "--snapshot-when-ready wrote no snapshot: $(cat "$XDG_RUNTIME_DIR/ovf-run/fresh/events.jsonl")"
    code="$(status_of "$a" /clone1.txt)"
    [ "$code" = 404 ] || fail "a fresh restore answers $code for c1's file (404 expected)"
    say "--snapshot-when-ready: a snapshot of the clone in $t/again ($(du -sk "$t/again" | cut -f1) KiB)"
    out="$("$bin" stop --time 120 fresh)" && grep -q 'exited with 0 (poweroff)' <<<"$out" ||
        fail "fresh did not power off: $out"
    say "a fresh restore does not see c1's file; exit 0"
}

# refused NAME DIR EXPECTED-TEXT [restore options]: exit 1, the message, nothing left
refused() {
    local what="$1" dir="$2" text="$3"; shift 3
    "$bin" restore "$dir" --name "$what" -p 0:80 --no-console --timeout 120s "$@" \
        > "$work/$what.out" 2> "$work/$what.stderr"
    local code=$?
    [ "$code" = 1 ] || fail "$what: exit $code, not 1: $(tail -n 5 "$work/$what.stderr")"
    grep -q -- "$text" "$work/$what.stderr" || fail "$what: $(tail -n 5 "$work/$what.stderr")"
    sleep 1
    [ -z "$(left)" ] || fail "$what: processes left: $(left)"
    say "refused $what: exit 1: $(grep -m1 -- "$text" "$work/$what.stderr" | cut -c 1-200)"
}

refusals() {
    mkdir -p "$t/cut" "$t/version"
    cp "$snap/state" "$t/cut/state" && ln -s "$snap/disk0" "$snap/kernel" "$snap/initrd" "$t/cut/" &&
        truncate -s 1M "$t/cut/memory" || fail "cut setup"
    refused truncated-memory "$t/cut" "guest memory at 0x"
    cp "$snap/state" "$t/version/state" && ln -s "$snap/disk0" "$t/version/disk0" &&
        ln -s "$snap/memory" "$t/version/memory" || fail "version setup"
    printf '\x02\x00\x00\x00' | dd of="$t/version/state" bs=1 seek=8 conv=notrunc status=none
    refused other-version "$t/version" "format version 2"
    head -c 10240 /dev/zero >> "$ova"
    refused modified-package "$snap" "the package changed since the snapshot"
}

case "$mode" in
    test) clones; refusals ;;
    bench) bench ;;
    *) fail "unknown mode '$mode' (test or bench)" ;;
esac
sleep 1
[ -z "$(left)" ] || fail "processes left: $(left)"
[ -z "$(ls -A "$XDG_RUNTIME_DIR/ovf-run" 2>/dev/null)" ] || fail "state left: $(ls -A "$XDG_RUNTIME_DIR/ovf-run")"
[ -z "$(ls -A "$XDG_CACHE_HOME/ovf-run/overlays" 2>/dev/null)" ] ||
    fail "overlays left: $(ls -A "$XDG_CACHE_HOME/ovf-run/overlays")"
say "nothing left"
rm -rf "$t"
say "DONE"
