//! A node-local, read-through cache of realms and clients: they are read on every token
//! request and change only by import or admin action. The database stays the source of
//! truth: entries live `TTL`, so another node's change is seen within that time; this
//! node's own imports invalidate immediately.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use pforte_core::model::{Client, Realm};

pub const TTL: Duration = Duration::from_secs(5);

/// Bound per kind: a flood of lookups for made-up names must not grow memory for ever.
const MAX_ENTRIES: usize = 10_000;
/// Longer names are looked up but not remembered, so the bound above also bounds bytes.
const MAX_KEY_LEN: usize = 255;

struct Entry<T> {
    at: Instant,
    value: T,
}

type Map<K, T> = RwLock<HashMap<K, Entry<T>>>;
/// Clients by realm, then by client id.
type ClientsByRealm = HashMap<String, HashMap<String, Entry<Option<Arc<Client>>>>>;

/// One map per kind; reads take a shared lock, misses a short exclusive one. Realms and
/// clients are shared (`Arc`): a hit costs no copy of a client's mappers and URIs, and a
/// lookup allocates nothing (clients are keyed by realm, then by client id).
pub struct ReadCache {
    realms: Map<String, Option<Arc<Realm>>>,
    clients: RwLock<ClientsByRealm>,
    client_lists: Map<String, Vec<Client>>,
}

impl<T> Entry<T> {
    fn new(value: T) -> Self {
        Entry {
            at: Instant::now(),
            value,
        }
    }

    fn is_fresh(&self) -> bool {
        self.at.elapsed() < TTL
    }
}

fn fresh<T: Clone>(e: &Entry<T>) -> Option<T> {
    e.is_fresh().then(|| e.value.clone())
}

fn client_count(by_realm: &ClientsByRealm) -> usize {
    by_realm.values().map(HashMap::len).sum()
}

fn lookup<K, Q, T>(map: &Map<K, T>, key: &Q) -> Option<T>
where
    K: Borrow<Q> + Hash + Eq,
    Q: Hash + Eq + ?Sized,
    T: Clone,
{
    fresh(map.read().ok()?.get(key)?)
}

fn insert_bounded<K: Hash + Eq, T>(map: &mut HashMap<K, Entry<T>>, key: K, value: T) {
    if map.len() >= MAX_ENTRIES {
        map.retain(|_, e| e.is_fresh());
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
    }
    map.insert(key, Entry::new(value));
}

fn remember<K: Hash + Eq, T>(map: &Map<K, T>, key: K, value: T) {
    if let Ok(mut guard) = map.write() {
        insert_bounded(&mut guard, key, value);
    }
}

impl ReadCache {
    pub fn new() -> Self {
        ReadCache {
            realms: RwLock::new(HashMap::new()),
            clients: RwLock::new(HashMap::new()),
            client_lists: RwLock::new(HashMap::new()),
        }
    }

    pub fn realm(&self, name: &str) -> Option<Option<Arc<Realm>>> {
        lookup(&self.realms, name)
    }

    pub fn put_realm(&self, name: &str, realm: Option<Arc<Realm>>) {
        if name.len() <= MAX_KEY_LEN {
            remember(&self.realms, name.to_owned(), realm);
        }
    }

    pub fn client(&self, realm: &str, client_id: &str) -> Option<Option<Arc<Client>>> {
        fresh(self.clients.read().ok()?.get(realm)?.get(client_id)?)
    }

    pub fn put_client(&self, realm: &str, client_id: &str, client: Option<Arc<Client>>) {
        if realm.len() > MAX_KEY_LEN || client_id.len() > MAX_KEY_LEN {
            return;
        }
        if let Ok(mut guard) = self.clients.write() {
            // One bound over all realms together.
            if client_count(&guard) >= MAX_ENTRIES {
                for of_realm in guard.values_mut() {
                    of_realm.retain(|_, e| e.is_fresh());
                }
                guard.retain(|_, of_realm| !of_realm.is_empty());
                if client_count(&guard) >= MAX_ENTRIES {
                    guard.clear();
                }
            }
            guard
                .entry(realm.to_owned())
                .or_default()
                .insert(client_id.to_owned(), Entry::new(client));
        }
    }

    #[cfg(test)]
    fn client_entries(&self) -> usize {
        self.clients.read().map(|g| client_count(&g)).unwrap_or(0)
    }

    pub fn clients(&self, realm: &str) -> Option<Vec<Client>> {
        lookup(&self.client_lists, realm)
    }

    pub fn put_clients(&self, realm: &str, clients: Vec<Client>) {
        remember(&self.client_lists, realm.to_owned(), clients);
    }

    /// Forgets everything about `realm` (after this node wrote to it).
    pub fn invalidate(&self, realm: &str) {
        if let Ok(mut g) = self.realms.write() {
            g.remove(realm);
        }
        if let Ok(mut g) = self.clients.write() {
            g.remove(realm);
        }
        if let Ok(mut g) = self.client_lists.write() {
            g.remove(realm);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidate_forgets_only_that_realm() {
        let c = ReadCache::new();
        c.put_realm("a", Some(Arc::new(Realm::new("a"))));
        c.put_realm("b", None);
        c.put_clients("a", vec![]);
        c.put_client("a", "x", None);
        c.put_client("b", "x", None);
        assert_eq!(c.realm("a"), Some(Some(Arc::new(Realm::new("a")))));
        assert_eq!(c.realm("b"), Some(None), "misses are cached too");
        c.invalidate("a");
        assert_eq!(c.realm("a"), None);
        assert_eq!(c.clients("a"), None);
        assert_eq!(c.client("a", "x"), None);
        assert_eq!(c.realm("b"), Some(None));
        assert_eq!(c.client("b", "x"), Some(None), "other realms' clients stay");
    }

    #[test]
    fn made_up_client_ids_stay_bounded() {
        let c = ReadCache::new();
        for i in 0..(MAX_ENTRIES + 10) {
            c.put_client(["a", "b", "c"][i % 3], &format!("made-up-{i}"), None);
            assert!(
                c.client_entries() <= MAX_ENTRIES,
                "{} entries",
                c.client_entries()
            );
        }
        assert!(
            c.client_entries() < 20,
            "fresh entries are dropped when full"
        );
        let long = "x".repeat(MAX_KEY_LEN + 1);
        c.put_client("a", &long, None);
        assert_eq!(
            c.client("a", &long),
            None,
            "an over-long id is not remembered"
        );
        c.put_realm(&long, None);
        assert_eq!(c.realm(&long), None);
        c.put_client("a", "web", None);
        assert_eq!(c.client("a", "web"), Some(None));
    }
}
