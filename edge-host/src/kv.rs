//! Spin's key-value store (`spin:key-value/key-value@3.0.0`), the way Spin's
//! local default store behaves: labels the component lists in
//! `key_value_stores`, at most 1,024 keys per store and 1 MB per value, kept in
//! memory or in a JSON file (values in base64) that survives restarts.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use wasmtime::component::{Accessor, FutureReader, HasData, Resource, ResourceTable, StreamReader};

use crate::runtime::bindings::spin::key_value::key_value::{self as wit, Error};

/// Most keys one store holds.
pub const MAX_KEYS: usize = 1024;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1024 * 1024;

/// The stores of one application, shared by all its instances.
#[derive(Default)]
pub struct KeyValue {
    stores: HashMap<String, Arc<Bucket>>,
}

/// A store a component opened: the resource behind `spin:key-value`'s `store`.
pub type OpenStore = Arc<Bucket>;

/// One labelled store.
pub struct Bucket {
    entries: Mutex<BTreeMap<String, Vec<u8>>>,
    /// Where the entries are saved after every change, if anywhere.
    file: Option<PathBuf>,
}

impl KeyValue {
    /// Opens the stores named `labels`; with `dir`, each is kept in
    /// `dir/{label}.json` (created if missing) rather than only in memory.
    pub fn open(labels: &[String], dir: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let mut stores = HashMap::new();
        for label in labels {
            let file = dir.map(|d| d.join(format!("{label}.json")));
            let entries = match &file {
                Some(path) if path.exists() => {
                    let text = std::fs::read_to_string(path)?;
                    let saved: BTreeMap<String, String> = serde_json::from_str(&text)
                        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                    saved
                        .into_iter()
                        .map(|(k, v)| Ok((k, BASE64.decode(v)?)))
                        .collect::<anyhow::Result<_>>()?
                }
                _ => BTreeMap::new(),
            };
            stores.insert(
                label.clone(),
                Arc::new(Bucket {
                    entries: Mutex::new(entries),
                    file,
                }),
            );
        }
        Ok(Self { stores })
    }
}

impl Bucket {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.entries.lock().expect("kv poisoned").get(key).cloned()
    }

    fn set(&self, key: String, value: Vec<u8>) -> Result<(), Error> {
        if value.len() > MAX_VALUE_BYTES {
            return Err(Error::Other(format!(
                "value of {} bytes is over the {MAX_VALUE_BYTES}-byte limit",
                value.len()
            )));
        }
        let mut entries = self.entries.lock().expect("kv poisoned");
        if !entries.contains_key(&key) && entries.len() >= MAX_KEYS {
            return Err(Error::Other(format!("store is full ({MAX_KEYS} keys)")));
        }
        entries.insert(key, value);
        self.save(&entries)
    }

    fn delete(&self, key: &str) -> Result<(), Error> {
        let mut entries = self.entries.lock().expect("kv poisoned");
        if entries.remove(key).is_some() {
            self.save(&entries)?;
        }
        Ok(())
    }

    fn keys(&self) -> Vec<String> {
        self.entries
            .lock()
            .expect("kv poisoned")
            .keys()
            .cloned()
            .collect()
    }

    /// Writes the whole store to a temporary file and renames it over the old
    /// one, so a crash leaves either version, never half of one.
    fn save(&self, entries: &BTreeMap<String, Vec<u8>>) -> Result<(), Error> {
        let Some(path) = &self.file else {
            return Ok(());
        };
        let saved: BTreeMap<&String, String> =
            entries.iter().map(|(k, v)| (k, BASE64.encode(v))).collect();
        let text = serde_json::to_string(&saved).expect("strings serialise");
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| Error::Other(format!("cannot save {}: {e}", path.display())))
    }
}

/// What one instance sees: the application's stores and its own resource table.
pub struct KvView<'a> {
    pub table: &'a mut ResourceTable,
    pub kv: &'a KeyValue,
}

/// `HasData` for the key-value interface.
pub struct KvHost;

impl HasData for KvHost {
    type Data<'a> = KvView<'a>;
}

impl wit::Host for KvView<'_> {}

impl wit::HostStore for KvView<'_> {
    fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

fn bucket<U>(
    accessor: &Accessor<U, KvHost>,
    store: &Resource<OpenStore>,
) -> Result<Arc<Bucket>, Error> {
    accessor.with(|mut access| {
        access
            .get()
            .table
            .get(store)
            .cloned()
            .map_err(|e| Error::Other(e.to_string()))
    })
}

impl<U> wit::HostStoreWithStore<U> for KvHost {
    async fn open(
        accessor: &Accessor<U, Self>,
        label: String,
    ) -> Result<Resource<OpenStore>, Error> {
        accessor.with(|mut access| {
            let view = access.get();
            // Spin: a label the component may not use is access-denied.
            let Some(bucket) = view.kv.stores.get(&label).cloned() else {
                return Err(Error::AccessDenied);
            };
            view.table.push(bucket).map_err(|_| Error::StoreTableFull)
        })
    }

    async fn get(
        accessor: &Accessor<U, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> Result<Option<Vec<u8>>, Error> {
        bucket(accessor, &store).map(|b| b.get(&key))
    }

    async fn set(
        accessor: &Accessor<U, Self>,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), Error> {
        bucket(accessor, &store).and_then(|b| b.set(key, value))
    }

    async fn delete(
        accessor: &Accessor<U, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> Result<(), Error> {
        bucket(accessor, &store).and_then(|b| b.delete(&key))
    }

    async fn exists(
        accessor: &Accessor<U, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> Result<bool, Error> {
        bucket(accessor, &store).map(|b| b.get(&key).is_some())
    }

    async fn get_keys(
        accessor: &Accessor<U, Self>,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), Error>>)> {
        let keys = bucket(accessor, &store);
        accessor.with(|mut access| {
            let (keys, result) = match keys {
                Ok(b) => (b.keys(), Ok(())),
                Err(e) => (Vec::new(), Err(e)),
            };
            Ok((
                StreamReader::new(&mut access, keys.into_boxed_slice())?,
                FutureReader::new(&mut access, async move { wasmtime::error::Ok(result) })?,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_persistence() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let kv = KeyValue::open(&["default".into()], Some(&dir)).unwrap();
        let bucket = &kv.stores["default"];
        bucket.set("a".into(), vec![1, 2, 255]).unwrap();
        assert!(
            bucket
                .set("big".into(), vec![0; MAX_VALUE_BYTES + 1])
                .is_err()
        );
        for i in 1..MAX_KEYS {
            bucket.set(format!("k{i}"), vec![]).unwrap();
        }
        assert!(bucket.set("one-too-many".into(), vec![]).is_err());
        bucket.set("a".into(), vec![7]).unwrap();
        bucket.delete("k1").unwrap();

        let reopened = KeyValue::open(&["default".into()], Some(&dir)).unwrap();
        let bucket = &reopened.stores["default"];
        assert_eq!(bucket.get("a"), Some(vec![7]));
        assert_eq!(bucket.get("k1"), None);
        assert_eq!(bucket.keys().len(), MAX_KEYS - 1);
        assert!(
            KeyValue::open(&["other".into()], Some(&dir))
                .unwrap()
                .stores["other"]
                .keys()
                .is_empty()
        );
    }
}
