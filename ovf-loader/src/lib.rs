//! OVF/OVA packages: tar index, OVF model, manifest and certificate checks.
