//! The store conformance suite (`kitsulan_store::conformance_suite!`): every store test on a fresh
//! SQLite file and on a fresh PostgreSQL database, in one test binary.

kitsulan_store::conformance_suite!();
