//! Read-through cache of realm keys. The store is the source of truth; a node re-reads it
//! at most every `TTL` seconds, so a rotation done by another node or by
//! `pforte keys rotate` is picked up within that time. Retired keys stay published far
//! longer than that, so tokens signed by a node that has not caught up still verify; and a
//! token signed with a key this node has not read yet makes it re-read the keys at once
//! (`get_for_token`), so a node that has caught up is not refused by one that has not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use pforte_core::keys::{self, KeyError, RealmKeys};
use pforte_core::model::Realm;
use pforte_core::{Store, Timestamp};
use pforte_jose::Alg;
use pforte_jose::seal::MasterKey;
use pforte_store::AnyStore;

use crate::state::Clock;

/// Makes a realm's new key on tokio's blocking threads: keys are made in the request that
/// first needs them, and an RSA key would otherwise hold every connection of that request's
/// worker for tens of milliseconds.
struct OffWorker;

impl keys::KeyGenerator for OffWorker {
    async fn generate(&self, alg: Alg) -> Result<pforte_jose::SigningKey, KeyError> {
        tokio::task::spawn_blocking(move || keys::generate_key(alg))
            .await
            .map_err(|e| KeyError::Generate {
                alg,
                reason: format!("the thread generating it failed: {e}"),
            })?
    }
}

const TTL: i64 = 10;
/// Unknown kids re-read the keys at most this often per realm.
const FORCED_RELOAD_INTERVAL: Duration = Duration::from_secs(1);
/// Bounds the map of forced reloads (realm names come from the store, but stay safe).
const MAX_REALMS: usize = 10_000;

#[derive(Clone)]
pub struct KeyCache {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<AnyStore>,
    master: MasterKey,
    clock: Arc<dyn Clock>,
    entries: RwLock<HashMap<String, (Timestamp, Arc<RealmKeys>)>>,
    /// When an unknown kid last made a realm's keys be re-read.
    forced: Mutex<HashMap<String, Instant>>,
}

impl KeyCache {
    pub fn new(store: Arc<AnyStore>, master: MasterKey, clock: Arc<dyn Clock>) -> Self {
        KeyCache {
            inner: Arc::new(Inner {
                store,
                master,
                clock,
                entries: RwLock::new(HashMap::new()),
                forced: Mutex::new(HashMap::new()),
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
        self.load(realm, now).await
    }

    /// The realm's keys for verifying `token`. When it names a key the cached set lacks,
    /// another node (or `pforte keys rotate`) has rotated since this node last read the
    /// keys: re-read them at once instead of refusing a valid token until the cache expires.
    /// At most once a second per realm, so that made-up kids cannot hammer the store.
    pub async fn get_for_token(
        &self,
        realm: &Realm,
        token: &str,
    ) -> Result<Arc<RealmKeys>, KeyError> {
        let keys = self.get(realm).await?;
        // A token too long to be verified at all names no key worth a reload.
        let Some(kid) = Some(token)
            .filter(|t| t.len() <= pforte_jose::MAX_TOKEN_LEN)
            .and_then(|t| pforte_jose::decode_unverified_header(t).ok())
            .and_then(|h| h.kid)
        else {
            return Ok(keys);
        };
        if keys.verifying.iter().any(|k| k.kid() == Some(kid.as_str())) {
            return Ok(keys);
        }
        {
            let Ok(mut forced) = self.inner.forced.lock() else {
                return Ok(keys);
            };
            let now = Instant::now();
            if forced
                .get(&realm.name)
                .is_some_and(|last| now.duration_since(*last) < FORCED_RELOAD_INTERVAL)
            {
                return Ok(keys);
            }
            if forced.len() >= MAX_REALMS {
                forced.clear();
            }
            forced.insert(realm.name.clone(), now);
        }
        self.load(realm, self.inner.clock.now()).await
    }

    async fn load(&self, realm: &Realm, now: Timestamp) -> Result<Arc<RealmKeys>, KeyError> {
        let clients = self.inner.store.list_clients(&realm.name).await?;
        let retention = keys::key_retention(realm, &clients);
        let loaded = Arc::new(
            keys::load_or_create_with(
                &*self.inner.store,
                realm,
                retention,
                &self.inner.master,
                now,
                &OffWorker,
            )
            .await?,
        );
        if let Ok(mut entries) = self.inner.entries.write() {
            entries.insert(realm.name.clone(), (now, loaded.clone()));
        }
        Ok(loaded)
    }
}
