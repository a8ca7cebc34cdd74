//! Where the glue keeps the machine's records: the [`Store`] trait and [`MemoryStore`].
//!
//! A store holds sealed records by name (`records.rs`); it never sees a secret in the clear.
//! The PWA implements the same two operations over IndexedDB; a Rust client may use the
//! in-memory store or its own (SQLite, a file).

use std::collections::BTreeMap;

use super::Change;

/// Keeps the machine's sealed records.
pub trait Store {
    /// What can go wrong writing or reading.
    type Error;

    /// Writes every change (a sealed value, or a deletion), all or nothing where it can.
    fn apply(&mut self, changes: &[Change]) -> Result<(), Self::Error>;

    /// Every record, as (name, sealed value), for [`super::Machine::restore`].
    fn load_all(&self) -> Result<Vec<(String, String)>, Self::Error>;
}

/// Records in memory (tests, short-lived clients).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStore {
    records: BTreeMap<String, String>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The sealed value of one record.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.records.get(name).map(String::as_str)
    }

    /// Replaces one record's value as is (tests of tampering).
    pub fn put_raw(&mut self, name: &str, value: &str) {
        self.records.insert(name.to_owned(), value.to_owned());
    }

    /// The names of the records, in order.
    pub fn names(&self) -> Vec<String> {
        self.records.keys().cloned().collect()
    }
}

impl Store for MemoryStore {
    type Error = std::convert::Infallible;

    fn apply(&mut self, changes: &[Change]) -> Result<(), Self::Error> {
        for change in changes {
            match &change.value {
                Some(value) => self.records.insert(change.name.clone(), value.clone()),
                None => self.records.remove(&change.name),
            };
        }
        Ok(())
    }

    fn load_all(&self) -> Result<Vec<(String, String)>, Self::Error> {
        Ok(self.records.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}
