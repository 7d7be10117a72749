#!/bin/bash
# inside.sh WORK PART TEST_EXE OVF_RUN OVA: run inside the KVM test host by
# tests/sandbox.rs, one test host job per PART: "library" (four instances
# through the library API) or "cli" (three detached instances, and the
# ready-timeout and timeout runs beside them). Two shorter jobs rather than
# one long one: a test host that dies is retried per job, and a long job with
# four guests is where the test host dies most (README, test bed). Prints
# "SANDBOX-TEST <what> <result>" lines, then "SANDBOX-TEST DONE"; exits
# non-zero on the first failure.
set -u
PREFIX=SANDBOX-TEST
. "$(dirname "$0")/../lib/inside.sh"
work="$1" part="$2" test_exe="$3" bin="$4" ova="$5"
standin_uplink

# Instance state on the test host's tmpfs /run, as on a desktop.
export XDG_CACHE_HOME="$work/cache" XDG_RUNTIME_DIR=/run/sandbox-test
# A second attempt (kvm-run reruns the job when the test host died) starts
# clean: the dead attempt's overlays and results are still in the shared
# work directory (its processes died with its test host).
rm -rf "$XDG_CACHE_HOME/ovf-run/overlays" "$work"/*.result "$work"/*.events "$work"/*.out \
    "$work"/*.stderr "$work"/*.console "$work/ps.json"
mkdir -p "$XDG_RUNTIME_DIR"
# Verify once, so the parallel starts below all find it cached.
"$bin" verify --cached "$ova" > /dev/null || fail "setup verify"

# 1. The library: four instances at once.
library() {
t0=$SECONDS
OVF_RUN_SANDBOX_OVA="$ova" OVF_RUN_SANDBOX_WORK="$work" "$test_exe" --exact inner_four_instances_through_the_library \
    --ignored --nocapture > "$work/library.out" 2>&1
status=$?
grep -E 'ready|page ok|exited' "$work/library.out" | sed 's/^/SANDBOX-TEST library: /'
[ $status -eq 0 ] && grep -q LIBRARY-TEST "$work/library.out" ||
    fail "library test exited $status"
say "library ok $((SECONDS - t0)) s"
[ -z "$(left)" ] || fail "library processes left: $(left)"
}

cli() {
# 3 (in the background, while 2 runs): ready-timeout and timeout.
(
    t=$SECONDS
    "$bin" --accept-eula --no-console --cpus 1 --memory 512 --net none --name never \
        --ready-when console:SOMETHING-NEVER-PRINTED --ready-timeout 60s "$ova" \
        2> "$work/never.stderr"
    echo "$? $((SECONDS - t))" > "$work/never.result"
) &
never=$!
(
    t=$SECONDS
    "$bin" --accept-eula --no-console --cpus 1 --memory 512 --net none --name limited \
        --timeout 30s --events "$work/limited.events" "$ova" 2> "$work/limited.stderr"
    echo "$? $((SECONDS - t))" > "$work/limited.result"
) &
limited=$!

# 2. The CLI: three detached instances.
t0=$SECONDS
starts=""
for n in web1 web2 web3; do
    "$bin" -d --name "$n" --accept-eula --cpus 1 --memory 768 -p 0:80 --ready-when http:80 \
        --ready-timeout 15m "$ova" > "$work/$n.out" 2>> "$work/cli.stderr" &
    starts="$starts $!"
done
for p in $starts; do wait "$p" || fail "cli -d exited $? ($(cat "$work/cli.stderr"))"; done
for n in web1 web2 web3; do
    [ "$(cat "$work/$n.out")" = "$n" ] || fail "cli -d $n printed '$(cat "$work/$n.out")'"
done
say "cli 3 detached ready $((SECONDS - t0)) s"
"$bin" -d --name web1 --accept-eula -p 0:80 "$ova" 2> "$work/dup.stderr" &&
    fail "cli a second web1 started"
grep -q 'already running' "$work/dup.stderr" || fail "cli duplicate: $(cat "$work/dup.stderr")"
say "cli duplicate refused: $(head -n 1 "$work/dup.stderr")"
"$bin" ps --json > "$work/ps.json" || fail "cli ps --json"
ports="$(python3 -c '
import json, sys
rows = json.load(open(sys.argv[1]))
print(" ".join(sorted(p["host"] for r in rows if r["state"] == "ready" for p in r["ports"])))
' "$work/ps.json")"
count="$(echo "$ports" | tr ' ' '\n' | sort -u | grep -c .)"
[ "$count" = 3 ] || fail "cli ps --json: $(cat "$work/ps.json")"
say "cli ps 3 distinct ports: $ports"
"$bin" ps | sed 's/^/SANDBOX-TEST ps: /'
for n in web1 web2 web3; do
    addr="$("$bin" port "$n" 80)" || fail "cli port $n"
    case "$addr" in 127.0.0.1:*) ;; *) fail "cli port $n said '$addr'";; esac
    curl -s --max-time 20 "http://$addr/" | grep -q OVF-RUN-TEST-PAGE || fail "cli curl $n at $addr"
    [ "$("$bin" logs "$n" | wc -c)" -gt 100 ] || fail "cli logs $n: $("$bin" logs "$n" | tail -n 3)"
    say "cli $n port $addr curl ok logs ok"
done
for n in web1 web2 web3; do
    out="$("$bin" stop --time 60 "$n")" || fail "cli stop $n exited $?: $out"
    say "cli stop $n: $out"
done
say "cli stop ok"
[ "$("$bin" ps --json | tr -d ' \n')" = "[]" ] || fail "cli ps not empty after stop: $("$bin" ps --json)"
say "cli ps empty"

# 3, checked.
wait $never $limited
read -r code secs < "$work/never.result"
[ "$code" = 3 ] && [ "$secs" -lt 90 ] ||
    fail "ready-timeout exited $code after $secs s: $(tail -n 5 "$work/never.stderr")"
say "ready-timeout exit 3 after $secs s"
read -r code secs < "$work/limited.result"
[ "$code" = 124 ] && [ "$secs" -lt 60 ] ||
    fail "timeout exited $code after $secs s: $(tail -n 5 "$work/limited.stderr")"
grep -q '"reason":"timeout"' "$work/limited.events" || fail "timeout events: $(cat "$work/limited.events")"
say "timeout exit 124 after $secs s"
}

case "$part" in
    library) library ;;
    cli) cli ;;
    *) fail "unknown part '$part' (library or cli)" ;;
esac
sleep 1
[ -z "$(left)" ] || fail "processes left: $(left)"
[ -z "$(ls -A "$XDG_RUNTIME_DIR/ovf-run" 2>/dev/null)" ] ||
    fail "state left: $(ls -A "$XDG_RUNTIME_DIR/ovf-run")"
[ -z "$(ls -A "$XDG_CACHE_HOME/ovf-run/overlays" 2>/dev/null)" ] ||
    fail "overlays left: $(ls -A "$XDG_CACHE_HOME/ovf-run/overlays")"
say "nothing left"
say "DONE"
