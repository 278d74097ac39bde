//! Read-through cache of realm keys. The store is the source of truth; a node re-reads it
//! at most every `TTL` seconds, so a rotation done by another node or by
//! `pforte keys rotate` is picked up within that time. Retired keys stay published far
//! longer than that, so tokens signed by a node that has not caught up still verify.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use pforte_core::keys::{self, KeyError, RealmKeys};
use pforte_core::model::Realm;
use pforte_core::{Store, Timestamp};
use pforte_jose::seal::MasterKey;
use pforte_store::AnyStore;

use crate::state::Clock;

const TTL: i64 = 10;

#[derive(Clone)]
pub struct KeyCache {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<AnyStore>,
    master: MasterKey,
    clock: Arc<dyn Clock>,
    entries: RwLock<HashMap<String, (Timestamp, Arc<RealmKeys>)>>,
}

impl KeyCache {
    pub fn new(store: Arc<AnyStore>, master: MasterKey, clock: Arc<dyn Clock>) -> Self {
        KeyCache {
            inner: Arc::new(Inner {
                store,
                master,
                clock,
                entries: RwLock::new(HashMap::new()),
            }),
        }
    }

    pub async fn get(&self, realm: &Realm) -> Result<Arc<RealmKeys>, KeyError> {
        let now = self.inner.clock.now();
        if let Ok(entries) = self.inner.entries.read()
            && let Some((loaded, keys)) = entries.get(&realm.name)
            && now - loaded < TTL
        {
            return Ok(keys.clone());
        }
        let clients = self.inner.store.list_clients(&realm.name).await?;
        let retention = keys::key_retention(realm, &clients);
        let loaded = Arc::new(
            keys::load_or_create(
                &*self.inner.store,
                realm,
                retention,
                &self.inner.master,
                now,
            )
            .await?,
        );
        if let Ok(mut entries) = self.inner.entries.write() {
            entries.insert(realm.name.clone(), (now, loaded.clone()));
        }
        Ok(loaded)
    }
}
