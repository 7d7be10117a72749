# Sourced first by the scripts that run passt in the KVM test host.
#
# Debian bookworm's passt sandboxes itself in a new user namespace, which the
# kernel refuses to a chrooted process ("Couldn't create user namespace:
# Operation not permitted"; create_user_ns -> current_chrooted), and the test
# host runs jobs chrooted into this machine's root. So, when root cannot make
# a user namespace here, this root is stacked on the mount namespace's root
# (PID 1's, reached through /proc/1/root: a bind of / mounted there), and the
# calling script runs again with that stacked mount as its root, which is
# what the kernel sees as "the namespace root": not a chroot. The test host
# lives for one job, so nothing else sees the extra mount.
# Natively (not chrooted) nothing is done.
if [ -z "${OVF_RUN_UNCHROOTED:-}" ]; then
    export OVF_RUN_UNCHROOTED=1
    if ! unshare -U true 2>/dev/null; then
        # --no-canonicalize: the target is PID 1's root, not what its link reads.
        mount --no-canonicalize --rbind / /proc/1/root ||
            { echo "unchroot: cannot stack / on the namespace root" >&2; exit 1; }
        # "..": from PID 1's root the walk steps onto the mount stacked there.
        exec chroot /proc/1/root/.. /bin/bash -c 'cd "$1" && shift && exec "$@"' \
            unchroot "$PWD" /bin/bash "$0" "$@"
    fi
fi
if ! unshare -U true 2>/dev/null; then
    echo "unchroot: still no user namespaces here; passt cannot sandbox itself" >&2
    exit 1
fi
