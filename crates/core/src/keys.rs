//! The lifecycle of a realm's signing keys: create on first use, rotate on demand or when
//! the realm's algorithm changes, publish retired keys until no token signed with them can
//! still be valid.

use pforte_jose::seal::MasterKey;
use pforte_jose::{Alg, Jwk, SigningKey, VerifyingKey};

use crate::model::{Client, Realm, StoredKey, Timestamp};
use crate::store::{Store, StoreError};

/// Tolerance for clocks of relying parties that run behind ours.
pub const CLOCK_SKEW_SECONDS: i64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("key {kid} of realm {realm}: {reason}")]
    Key {
        realm: String,
        kid: String,
        reason: String,
    },
    #[error("cannot generate a {alg} key: {reason}")]
    Generate { alg: Alg, reason: String },
}

/// A realm's keys in the form a node uses them.
#[derive(Clone, Debug)]
pub struct RealmKeys {
    pub realm: String,
    /// Signs new tokens.
    pub active: SigningKey,
    /// Active and still-published retired keys, for verifying our own tokens.
    pub verifying: Vec<VerifyingKey>,
    /// The JWKS content, active key first.
    pub published: Vec<Jwk>,
}

/// How long a retired key stays published (and trusted): the longest lifetime of any token
/// the realm signs, plus clock skew. Refresh tokens are opaque (not signed), so they do
/// not count. An ID token stays useful after it expires, as the `id_token_hint` of a logout
/// or an authorization (which accept expired hints), for as long as its SSO session may
/// live: a key must outlast that too, or a user logging out after a rotation gets an error
/// page instead of a logout.
pub fn key_retention(realm: &Realm, clients: &[Client]) -> i64 {
    let client_max = clients
        .iter()
        .filter_map(|c| c.attributes.get("access.token.lifespan"))
        .filter_map(|v| v.parse::<i64>().ok())
        .max()
        .unwrap_or(0);
    realm
        .access_token_lifespan
        .max(client_max)
        .max(realm.sso_session_max_lifespan)
        + CLOCK_SKEW_SECONDS
}

/// Additional authenticated data binding a sealed private key to its realm and kid, so that
/// a sealed blob copied onto another row does not open.
fn aad(realm: &str, kid: &str) -> Vec<u8> {
    format!("pforte-signing-key:{realm}:{kid}").into_bytes()
}

/// Where new signing keys are made. Generating a key is the one slow step of loading a
/// realm's keys (tens of milliseconds of CPU for RSA); the server passes a generator that
/// runs it off the threads that serve requests.
pub trait KeyGenerator: Sync {
    fn generate(&self, alg: Alg) -> impl Future<Output = Result<SigningKey, KeyError>> + Send;
}

/// Generates on the calling thread: for the CLI and tests, where nothing else waits.
pub struct InPlace;

impl KeyGenerator for InPlace {
    fn generate(&self, alg: Alg) -> impl Future<Output = Result<SigningKey, KeyError>> + Send {
        std::future::ready(generate_key(alg))
    }
}

/// A new key pair, synchronously.
pub fn generate_key(alg: Alg) -> Result<SigningKey, KeyError> {
    SigningKey::generate(alg).map_err(|e| KeyError::Generate {
        alg,
        reason: e.to_string(),
    })
}

async fn new_stored_key(
    realm: &Realm,
    master: &MasterKey,
    now: Timestamp,
    generator: &impl KeyGenerator,
) -> Result<StoredKey, KeyError> {
    let alg = realm.signature_alg;
    let key = generator.generate(alg).await?;
    if key.alg() != alg {
        return Err(KeyError::Generate {
            alg,
            reason: format!("the generator made a {} key", key.alg()),
        });
    }
    seal_new_key(realm, master, key, now)
}

/// The stored form of a newly made key: its private half sealed with the master key.
fn seal_new_key(
    realm: &Realm,
    master: &MasterKey,
    key: SigningKey,
    now: Timestamp,
) -> Result<StoredKey, KeyError> {
    let alg = key.alg();
    let kid = key.kid().to_owned();
    let sealed_private = master
        .seal(&key.to_pkcs8(), &aad(&realm.name, &kid))
        .map_err(|e| KeyError::Key {
            realm: realm.name.clone(),
            kid: kid.clone(),
            reason: e.to_string(),
        })?;
    let public_jwk = serde_json::to_string(&key.public_jwk()).map_err(|e| KeyError::Key {
        realm: realm.name.clone(),
        kid: kid.clone(),
        reason: e.to_string(),
    })?;
    Ok(StoredKey {
        realm: realm.name.clone(),
        kid,
        alg,
        public_jwk,
        sealed_private,
        created_at: now,
        retired_at: None,
    })
}

/// Loads the realm's keys, creating the first key (or rotating, when the realm's configured
/// algorithm differs from its active key's) as needed.
pub async fn load_or_create<S: Store>(
    store: &S,
    realm: &Realm,
    retention: i64,
    master: &MasterKey,
    now: Timestamp,
) -> Result<RealmKeys, KeyError> {
    load_or_create_with(store, realm, retention, master, now, &InPlace).await
}

/// [`load_or_create`], with new keys made by `generator`.
pub async fn load_or_create_with<S: Store>(
    store: &S,
    realm: &Realm,
    retention: i64,
    master: &MasterKey,
    now: Timestamp,
    generator: &impl KeyGenerator,
) -> Result<RealmKeys, KeyError> {
    let mut stored = store.list_keys(&realm.name).await?;
    let active_alg = stored
        .iter()
        .find(|k| k.retired_at.is_none())
        .map(|k| k.alg);
    match active_alg {
        None => {
            let key = new_stored_key(realm, master, now, generator).await?;
            // Another node may have won the race; either way one active key exists now.
            store.insert_first_key(&key).await?;
            stored = store.list_keys(&realm.name).await?;
        }
        Some(alg) if alg != realm.signature_alg => {
            // Only a node whose master key opens the realm's keys may replace them: one
            // started with another key would seal the new key so that no other node can
            // open it, and retire the key they all can.
            realm_keys(&realm.name, &stored, retention, master, now)?;
            match store
                .rotate_key(&new_stored_key(realm, master, now, generator).await?, now)
                .await
            {
                // Another node rotated at the same moment (its new key is the one active
                // key now): use that one.
                Ok(()) | Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
            stored = store.list_keys(&realm.name).await?;
        }
        Some(_) => {}
    }
    realm_keys(&realm.name, &stored, retention, master, now)
}

/// Adds a new active key and retires the current one; returns the new kid.
pub async fn rotate<S: Store>(
    store: &S,
    realm: &Realm,
    retention: i64,
    master: &MasterKey,
    now: Timestamp,
) -> Result<String, KeyError> {
    // As in `load_or_create`: prove the master key opens the current keys first.
    let stored = store.list_keys(&realm.name).await?;
    if stored.iter().any(|k| k.retired_at.is_none()) {
        realm_keys(&realm.name, &stored, retention, master, now)?;
    }
    let key = new_stored_key(realm, master, now, &InPlace).await?;
    store.rotate_key(&key, now).await?;
    store
        .delete_retired_keys(&realm.name, now - retention)
        .await?;
    Ok(key.kid)
}

/// Builds the in-memory form from stored rows: keeps retired keys only while tokens they
/// signed may still be valid, and takes every key it publishes or trusts from the key's
/// sealed private half, never from the stored public JWK alone. The seal is authenticated
/// (bound to realm and kid, under the master key), the JWK column is not: someone who can
/// write to the database but lacks the master key must not be able to slip in a public key
/// of their own — relying parties would accept whatever tokens it signs. A row whose stored
/// JWK differs from its sealed key is an error, not silently repaired: the keys table was
/// changed outside pforte.
pub fn realm_keys(
    realm: &str,
    stored: &[StoredKey],
    retention: i64,
    master: &MasterKey,
    now: Timestamp,
) -> Result<RealmKeys, KeyError> {
    let Some(active_row) = stored
        .iter()
        .filter(|k| k.retired_at.is_none())
        .max_by_key(|k| k.created_at)
    else {
        return Err(KeyError::Key {
            realm: realm.to_owned(),
            kid: "-".into(),
            reason: "the realm has no active signing key".into(),
        });
    };
    let active = open_key(realm, active_row, master)?;

    let mut published = vec![active.public_jwk()];
    let mut verifying = vec![active.verifying_key().clone()];
    let others = stored
        .iter()
        .filter(|k| k.kid != active_row.kid && k.retired_at.is_none_or(|at| at + retention > now));
    for row in others {
        let key = open_key(realm, row, master)?;
        verifying.push(key.verifying_key().clone());
        published.push(key.public_jwk());
    }
    Ok(RealmKeys {
        realm: realm.to_owned(),
        active,
        verifying,
        published,
    })
}

/// Opens a stored key's sealed private half and checks that the row's kid and public JWK
/// are those of that key.
fn open_key(realm: &str, row: &StoredKey, master: &MasterKey) -> Result<SigningKey, KeyError> {
    let err = |reason: String| KeyError::Key {
        realm: realm.to_owned(),
        kid: row.kid.clone(),
        reason,
    };
    let der = master
        .open(&row.sealed_private, &aad(realm, &row.kid))
        .map_err(|e| {
            err(format!(
                "cannot decrypt the private key ({e}); is PFORTE_MASTER_KEY the key it was sealed with?"
            ))
        })?;
    let key = SigningKey::from_pkcs8(row.alg, &der).map_err(|e| err(e.to_string()))?;
    let tampered = |what: &str| {
        err(format!(
            "the stored {what} does not match the sealed private key: the keys table was changed outside pforte; restore it from a backup, or delete the row if the key is retired"
        ))
    };
    if key.kid() != row.kid {
        return Err(tampered("kid"));
    }
    let jwk: Jwk = serde_json::from_str(&row.public_jwk)
        .map_err(|e| err(format!("stored JWK is not valid JSON: {e}")))?;
    // The key material decides (RFC 7638 thumbprints), not cosmetic members such as `use`;
    // what is published is the sealed key's own JWK either way.
    if jwk.thumbprint().ok().as_deref() != Some(key.kid()) {
        return Err(tampered("public JWK"));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = 1_800_000_000;

    fn row(
        realm: &Realm,
        master: &MasterKey,
        created: Timestamp,
        retired: Option<Timestamp>,
    ) -> StoredKey {
        let key = generate_key(realm.signature_alg).unwrap();
        let mut k = seal_new_key(realm, master, key, created).unwrap();
        k.retired_at = retired;
        k
    }

    #[test]
    fn retired_keys_are_published_only_while_their_tokens_may_live() {
        let realm = Realm::new("r");
        let master = MasterKey::generate().unwrap();
        let retention = key_retention(&realm, &[]);
        // The SSO session's maximum lifespan (10 h) outlasts every token lifespan.
        assert_eq!(retention, 36_000 + CLOCK_SKEW_SECONDS);
        let active = row(&realm, &master, NOW - 10, None);
        let recent = row(&realm, &master, NOW - 1000, Some(NOW - retention + 1));
        let old = row(&realm, &master, NOW - 5000, Some(NOW - retention - 1));
        let keys = realm_keys(
            "r",
            &[active.clone(), recent.clone(), old.clone()],
            retention,
            &master,
            NOW,
        )
        .unwrap();
        assert_eq!(keys.active.kid(), active.kid);
        let kids: Vec<_> = keys
            .published
            .iter()
            .filter_map(|j| j.kid.clone())
            .collect();
        assert_eq!(kids, vec![active.kid.clone(), recent.kid.clone()]);
        assert_eq!(keys.verifying.len(), 2);
    }

    #[test]
    fn a_client_with_longer_tokens_extends_retention() {
        let realm = Realm::new("r");
        let mut attrs = std::collections::BTreeMap::new();
        attrs.insert("access.token.lifespan".to_owned(), "40000".to_owned());
        let client = Client {
            attributes: attrs,
            ..Client::test_public()
        };
        assert_eq!(
            key_retention(&realm, &[client]),
            40_000 + CLOCK_SKEW_SECONDS
        );
        let short_sessions = Realm {
            sso_session_max_lifespan: 600,
            ..Realm::new("r")
        };
        assert_eq!(
            key_retention(&short_sessions, &[]),
            600 + CLOCK_SKEW_SECONDS,
            "retention follows the longest of the token and session lifetimes"
        );
    }

    #[test]
    fn discovery_lists_the_signing_algorithm_first_then_those_still_published() {
        let es = Realm::new("r");
        let ed = Realm {
            signature_alg: Alg::EdDSA,
            ..Realm::new("r")
        };
        let master = MasterKey::generate().unwrap();
        let retired_es = row(&es, &master, NOW - 100, Some(NOW - 10));
        let active_ed = row(&ed, &master, NOW - 10, None);
        let keys = realm_keys("r", &[active_ed, retired_es], 600, &master, NOW).unwrap();
        let doc = crate::discovery::openid_configuration("https://id.example/realms/r", &keys);
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            serde_json::json!(["EdDSA", "ES256"])
        );
        // Once the old key is no longer published, only the current algorithm is listed.
        let retired_long_ago = row(&es, &master, NOW - 10_000, Some(NOW - 5_000));
        let active_ed = row(&ed, &master, NOW - 10, None);
        let keys = realm_keys("r", &[active_ed, retired_long_ago], 600, &master, NOW).unwrap();
        let doc = crate::discovery::openid_configuration("https://id.example/realms/r", &keys);
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            serde_json::json!(["EdDSA"])
        );
    }

    #[test]
    fn a_wrong_master_key_is_an_error_that_says_so() {
        let realm = Realm::new("r");
        let master = MasterKey::generate().unwrap();
        let other = MasterKey::generate().unwrap();
        let active = row(&realm, &master, NOW, None);
        let err = realm_keys("r", &[active], 360, &other, NOW)
            .unwrap_err()
            .to_string();
        assert!(err.contains("PFORTE_MASTER_KEY"), "{err}");
    }

    /// Someone who can write to the database but has no master key replaces a key's public
    /// JWK with one of their own: pforte must neither publish nor trust it.
    #[test]
    fn a_public_key_swapped_in_the_database_is_neither_published_nor_trusted() {
        let realm = Realm::new("r");
        let master = MasterKey::generate().unwrap();
        let attacker = generate_key(Alg::ES256).unwrap();
        let mut forged_jwk = attacker.public_jwk();
        let active = row(&realm, &master, NOW, None);
        let retired = row(&realm, &master, NOW - 100, Some(NOW - 10));
        let good = realm_keys("r", &[active.clone(), retired.clone()], 600, &master, NOW)
            .expect("untouched rows load");
        assert_eq!(good.published.len(), 2);

        for victim in [&active, &retired] {
            // The forged JWK keeps the victim's kid, so a token naming that kid would pick it.
            forged_jwk.kid = Some(victim.kid.clone());
            let forged = StoredKey {
                public_jwk: serde_json::to_string(&forged_jwk).unwrap(),
                ..victim.clone()
            };
            let rows = if victim.kid == active.kid {
                [forged, retired.clone()]
            } else {
                [active.clone(), forged]
            };
            let err = realm_keys("r", &rows, 600, &master, NOW)
                .expect_err("a forged public key must not load")
                .to_string();
            assert!(
                err.contains("public JWK") && err.contains(&victim.kid),
                "{err}"
            );
        }

        // A row that names another kid for its sealed key (the seal is bound to the kid, so
        // only a kid that is not the key's thumbprint could get this far) is refused too.
        let renamed = StoredKey {
            kid: "not-the-thumbprint".into(),
            sealed_private: master
                .seal(&attacker.to_pkcs8(), &aad("r", "not-the-thumbprint"))
                .unwrap(),
            public_jwk: serde_json::to_string(&attacker.public_jwk()).unwrap(),
            ..retired.clone()
        };
        // Sealing needs the master key, which the attacker lacks; this checks the kid rule.
        let err = realm_keys("r", &[active.clone(), renamed], 600, &master, NOW)
            .expect_err("a kid that is not the key's thumbprint must not load")
            .to_string();
        assert!(err.contains("kid"), "{err}");
    }

    #[test]
    fn a_sealed_key_does_not_open_under_another_kid() {
        let realm = Realm::new("r");
        let master = MasterKey::generate().unwrap();
        let a = row(&realm, &master, NOW, None);
        let b = row(&realm, &master, NOW, None);
        let swapped = StoredKey {
            sealed_private: b.sealed_private.clone(),
            ..a
        };
        assert!(realm_keys("r", &[swapped], 360, &master, NOW).is_err());
    }
}
