//! Refresh-token rotation in batches. Every refresh ends in one conditional UPDATE of its
//! family's row; on SQLite all writes go through one connection, so concurrent refreshes
//! would queue there one statement each. The batcher gathers the rotations waiting at that
//! moment into ONE statement (`UPDATE … CASE family … RETURNING family`): each family's
//! compare-and-swap still holds on its own, and the rows returned say which ones swapped.

use std::collections::{HashSet, VecDeque};
use std::future::Future;

use pforte_core::model::{RefreshToken, Rotation};
use pforte_core::store::{StoreError, StoreResult};
use tokio::sync::{mpsc, oneshot};

/// Rotations per statement: 6 bind parameters each, well below SQLite's limit.
pub(crate) const MAX_BATCH: usize = 64;

pub(crate) struct Request {
    pub old_hash: String,
    pub new: RefreshToken,
    reply: oneshot::Sender<StoreResult<Rotation>>,
}

/// The statement for `n` rotations. Parameters per rotation `i` (base `6i`): family,
/// old hash, new hash, scope, created_at, expires_at.
pub(crate) fn batch_sql(n: usize) -> String {
    let mut sql = String::from("UPDATE refresh_tokens SET ");
    for (column, offset) in [
        ("token_hash", 3),
        ("scope", 4),
        ("created_at", 5),
        ("expires_at", 6),
    ] {
        if offset != 3 {
            sql.push_str(", ");
        }
        sql.push_str(column);
        sql.push_str(" = CASE family");
        for i in 0..n {
            let b = i * 6;
            sql.push_str(&format!(" WHEN ${} THEN ${}", b + 1, b + offset));
        }
        sql.push_str(" END");
    }
    sql.push_str(" WHERE ");
    for i in 0..n {
        let b = i * 6;
        if i > 0 {
            sql.push_str(" OR ");
        }
        sql.push_str(&format!(
            "(family = ${} AND token_hash = ${})",
            b + 1,
            b + 2
        ));
    }
    sql.push_str(" RETURNING family");
    sql
}

/// Binds the parameters of [`batch_sql`] and runs it; evaluates to the set of families
/// that were rotated.
macro_rules! exec_rotations {
    ($pool:expr, $items:expr) => {{
        let items: &[(String, pforte_core::model::RefreshToken)] = $items;
        // Built from parameter numbers only; every value is bound.
        let sql = sqlx::AssertSqlSafe($crate::rotation::batch_sql(items.len()));
        let mut q = sqlx::query_scalar::<_, String>(sql);
        for (old_hash, new) in items {
            q = q
                .bind(new.family.clone())
                .bind(old_hash.clone())
                .bind(new.token_hash.clone())
                .bind(new.scope.clone())
                .bind(new.created_at)
                .bind(new.expires_at);
        }
        q.fetch_all($pool)
            .await
            .map(|rows| {
                rows.into_iter()
                    .collect::<std::collections::HashSet<String>>()
            })
            .map_err($crate::common::err("rotate_refresh"))
    }};
}

/// Handle to the batching task.
#[derive(Clone, Debug)]
pub(crate) struct Batcher {
    tx: mpsc::UnboundedSender<Request>,
}

impl Batcher {
    /// Starts the task; `exec` runs one statement for the rotations given.
    pub fn spawn<F, Fut>(exec: F) -> Batcher
    where
        F: Fn(Vec<(String, RefreshToken)>) -> Fut + Send + 'static,
        Fut: Future<Output = StoreResult<HashSet<String>>> + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx, exec));
        Batcher { tx }
    }

    pub async fn rotate(&self, old_hash: &str, new: &RefreshToken) -> StoreResult<Rotation> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            old_hash: old_hash.to_owned(),
            new: new.clone(),
            reply,
        };
        self.tx
            .send(request)
            .map_err(|_| StoreError::Backend("the rotation task has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Backend("the rotation task dropped a request".into()))?
    }
}

async fn run<F, Fut>(mut rx: mpsc::UnboundedReceiver<Request>, exec: F)
where
    F: Fn(Vec<(String, RefreshToken)>) -> Fut,
    Fut: Future<Output = StoreResult<HashSet<String>>>,
{
    let mut deferred: VecDeque<Request> = VecDeque::new();
    loop {
        let first = match deferred.pop_front() {
            Some(r) => r,
            None => match rx.recv().await {
                Some(r) => r,
                None => return,
            },
        };
        let mut batch = vec![first];
        let mut families: HashSet<String> = HashSet::from([batch[0].new.family.clone()]);
        // A family appears once per statement (its CASE arm would otherwise be ambiguous);
        // a second rotation of the same family waits for the next statement, where it
        // finds the hash already replaced and is answered `Stale`.
        let mut later = VecDeque::new();
        while batch.len() < MAX_BATCH {
            let next = match deferred.pop_front() {
                Some(r) => r,
                None => match rx.try_recv() {
                    Ok(r) => r,
                    Err(_) => break,
                },
            };
            if families.insert(next.new.family.clone()) {
                batch.push(next);
            } else {
                later.push_back(next);
            }
        }
        later.extend(deferred.drain(..));
        deferred = later;

        let items: Vec<(String, RefreshToken)> = batch
            .iter()
            .map(|r| (r.old_hash.clone(), r.new.clone()))
            .collect();
        match exec(items).await {
            Ok(rotated) => {
                for r in batch {
                    let outcome = if rotated.contains(&r.new.family) {
                        Rotation::Rotated
                    } else {
                        Rotation::Stale
                    };
                    let _ = r.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for r in batch {
                    let _ = r.reply.send(Err(StoreError::Backend(message.clone())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_for_two_rotations() {
        let sql = batch_sql(2);
        assert!(sql.starts_with("UPDATE refresh_tokens SET token_hash = CASE family WHEN $1 THEN $3 WHEN $7 THEN $9 END, scope"));
        assert!(sql.ends_with("WHERE (family = $1 AND token_hash = $2) OR (family = $7 AND token_hash = $8) RETURNING family"));
    }
}
