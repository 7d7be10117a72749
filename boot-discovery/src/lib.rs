//! Boot discovery inside guest disks.
