# Sourced first by the scripts that run passt in the KVM test host.
#
# Debian bookworm's passt sandboxes itself in a new user namespace, which the
# kernel refuses to a chrooted process ("Couldn't create user namespace:
# Operation not permitted"), and the test host runs jobs chrooted into this
# machine's root. So the calling script runs again in a mount namespace
# whose root *is* that root (rbind + pivot_root), which is not a chroot.
# Natively (no chroot) this changes nothing visible.
if [ -z "${OVF_RUN_UNCHROOTED:-}" ]; then
    export OVF_RUN_UNCHROOTED=1
    exec unshare -m -- bash -c 'mount --make-rprivate / && mount --rbind / /mnt && cd /mnt &&
        pivot_root . mnt && umount -l /mnt && cd "$1" && shift && exec "$@"' \
        unchroot "$PWD" bash "$0" "$@"
fi
