//! Unit tests of the environment document: structure, collections and
//! hostile values read back with quick-xml. (Schema validation with
//! xmllint: tests/environment_schema.rs.)
