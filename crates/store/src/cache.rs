//! A node-local, read-through cache of realms and clients: they are read on every token
//! request and change only by import or admin action. The database stays the source of
//! truth: entries live `TTL`, so another node's change is seen within that time; this
//! node's own imports invalidate immediately.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use pforte_core::model::{Client, Realm};

pub const TTL: Duration = Duration::from_secs(5);

struct Entry<T> {
    at: Instant,
    value: T,
}

type Map<K, T> = RwLock<HashMap<K, Entry<T>>>;

/// One map per kind; reads take a shared lock, misses a short exclusive one.
pub struct ReadCache {
    realms: Map<String, Option<Realm>>,
    clients: Map<(String, String), Option<Client>>,
    client_lists: Map<String, Vec<Client>>,
}

fn lookup<K: std::hash::Hash + Eq, T: Clone>(map: &Map<K, T>, key: &K) -> Option<T> {
    let guard = map.read().ok()?;
    let e = guard.get(key)?;
    (e.at.elapsed() < TTL).then(|| e.value.clone())
}

fn remember<K: std::hash::Hash + Eq, T>(map: &Map<K, T>, key: K, value: T) {
    if let Ok(mut guard) = map.write() {
        // Bounded: a flood of lookups for made-up names must not grow memory for ever.
        if guard.len() > 10_000 {
            guard.retain(|_, e| e.at.elapsed() < TTL);
            if guard.len() > 10_000 {
                guard.clear();
            }
        }
        guard.insert(
            key,
            Entry {
                at: Instant::now(),
                value,
            },
        );
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

    pub fn realm(&self, name: &str) -> Option<Option<Realm>> {
        lookup(&self.realms, &name.to_owned())
    }

    pub fn put_realm(&self, name: &str, realm: Option<Realm>) {
        remember(&self.realms, name.to_owned(), realm);
    }

    pub fn client(&self, realm: &str, client_id: &str) -> Option<Option<Client>> {
        lookup(&self.clients, &(realm.to_owned(), client_id.to_owned()))
    }

    pub fn put_client(&self, realm: &str, client_id: &str, client: Option<Client>) {
        remember(
            &self.clients,
            (realm.to_owned(), client_id.to_owned()),
            client,
        );
    }

    pub fn clients(&self, realm: &str) -> Option<Vec<Client>> {
        lookup(&self.client_lists, &realm.to_owned())
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
            g.retain(|(r, _), _| r != realm);
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
        c.put_realm("a", Some(Realm::new("a")));
        c.put_realm("b", None);
        c.put_clients("a", vec![]);
        c.put_client("a", "x", None);
        assert_eq!(c.realm("a"), Some(Some(Realm::new("a"))));
        assert_eq!(c.realm("b"), Some(None), "misses are cached too");
        c.invalidate("a");
        assert_eq!(c.realm("a"), None);
        assert_eq!(c.clients("a"), None);
        assert_eq!(c.client("a", "x"), None);
        assert_eq!(c.realm("b"), Some(None));
    }
}
