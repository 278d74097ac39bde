//! The one connection: a thread that owns it and runs every operation, in groups.
//!
//! Callers hand whole operations (closures) to this thread; it takes everything waiting at
//! that moment and runs it in one transaction (`BEGIN IMMEDIATE` when anything in the group
//! writes, a plain read transaction otherwise), each writing operation in its own savepoint,
//! and answers every caller after the commit. So a caller costs one hand-off however many
//! statements its operation has, a failing operation rolls back only its own savepoint, and
//! a burst of writes shares one commit (one WAL append) instead of one transaction each.
//!
//! Why one connection for reads too: measured (refresh grant, `bench/`), reads on separate
//! connections were slower than reads queued here. Every commit invalidates the page cache
//! of every other connection, so under write load their reads went back to the file (and
//! took the WAL-index locks) each time; this connection's cache stays warm.
//!
//! Callers are answered only after COMMIT: a reply means the write is durable in the WAL
//! and visible to everyone.

use std::sync::mpsc;

use pforte_core::store::{StoreError, StoreResult};
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::map_err;

/// Operations per transaction: bounds how long the first caller of a burst waits.
const MAX_BATCH: usize = 64;

/// One operation on the connection, with its reply channel.
trait Job: Send {
    /// Whether the operation may write (then the group takes the write lock).
    fn writes(&self) -> bool;
    /// Runs the operation in the open transaction (in its own savepoint if it writes).
    fn run(&mut self, conn: &mut Connection);
    /// Answers the caller; `commit` is the outcome of the transaction it ran in.
    fn finish(self: Box<Self>, commit: Result<(), &StoreError>);
}

struct Pending<T, F> {
    what: &'static str,
    writes: bool,
    work: Option<F>,
    outcome: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> StoreResult<T> + Send,
{
    fn writes(&self) -> bool {
        self.writes
    }

    fn run(&mut self, conn: &mut Connection) {
        let Some(work) = self.work.take() else { return };
        let what = self.what;
        if !self.writes {
            self.outcome = Some(work(conn));
            return;
        }
        let outcome = (|| {
            // Dropping the savepoint without `commit` rolls it back.
            let savepoint = conn.savepoint().map_err(|e| map_err(what, e))?;
            let value = work(&savepoint)?;
            savepoint.commit().map_err(|e| map_err(what, e))?;
            Ok(value)
        })();
        self.outcome = Some(outcome);
    }

    fn finish(self: Box<Self>, commit: Result<(), &StoreError>) {
        let answer = match (self.outcome, commit) {
            (Some(Ok(_)), Err(e)) => Err(StoreError::Backend(format!("{}: {e}", self.what))),
            (Some(outcome), _) => outcome,
            (None, Err(e)) => Err(StoreError::Backend(format!("{}: {e}", self.what))),
            (None, Ok(())) => Err(StoreError::Backend(format!("{}: not run", self.what))),
        };
        // The caller may have gone away (request cancelled): nothing to answer then.
        let _ = self.reply.send(answer);
    }
}

enum Message {
    Job(Box<dyn Job>),
    /// Stop after the jobs queued before this one.
    Close(oneshot::Sender<()>),
}

/// Handle to the connection's thread; cheap to clone.
#[derive(Clone, Debug)]
pub(super) struct DbThread {
    tx: mpsc::Sender<Message>,
}

fn stopped() -> StoreError {
    StoreError::Backend("the SQLite store is closed".into())
}

impl DbThread {
    /// Starts the thread that owns `conn`.
    pub fn spawn(conn: Connection) -> StoreResult<DbThread> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("pforte-sqlite".into())
            .spawn(move || run(conn, rx))
            .map_err(|e| StoreError::Backend(format!("cannot start the SQLite thread: {e}")))?;
        Ok(DbThread { tx })
    }

    /// Runs `work`, which only reads, and waits for its outcome.
    pub async fn read<T, F>(&self, what: &'static str, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(what, false, work).await
    }

    /// Runs `work` (in a transaction) and waits for its committed outcome.
    pub async fn write<T, F>(&self, what: &'static str, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.submit(what, true, work).await
    }

    async fn submit<T, F>(&self, what: &'static str, writes: bool, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Pending {
            what,
            writes,
            work: Some(work),
            outcome: None,
            reply,
        };
        self.tx
            .send(Message::Job(Box::new(job)))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Lets the queued jobs finish, then stops the thread (closing the connection).
    pub async fn close(&self) {
        let (done, finished) = oneshot::channel();
        if self.tx.send(Message::Close(done)).is_ok() {
            let _ = finished.await;
        }
    }
}

fn run(mut conn: Connection, rx: mpsc::Receiver<Message>) {
    let mut closing = None;
    while closing.is_none() {
        let mut batch: Vec<Box<dyn Job>> = Vec::new();
        match rx.recv() {
            Ok(Message::Job(job)) => batch.push(job),
            Ok(Message::Close(done)) => closing = Some(done),
            Err(_) => return,
        }
        while closing.is_none() && !batch.is_empty() && batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Message::Job(job)) => batch.push(job),
                Ok(Message::Close(done)) => closing = Some(done),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            commit_batch(&mut conn, batch);
        }
    }
    drop(conn);
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

fn commit_batch(conn: &mut Connection, mut batch: Vec<Box<dyn Job>>) {
    let begin = if batch.iter().any(|job| job.writes()) {
        "BEGIN IMMEDIATE"
    } else {
        "BEGIN"
    };
    let outcome = match conn.execute_batch(begin) {
        Err(e) => Err(map_err("begin", e)),
        Ok(()) => {
            for job in &mut batch {
                job.run(conn);
            }
            conn.execute_batch("COMMIT").map_err(|e| {
                // A failed COMMIT may leave the transaction open: end it.
                let _ = conn.execute_batch("ROLLBACK");
                map_err("commit", e)
            })
        }
    };
    for job in batch {
        job.finish(outcome.as_ref().map(|_| ()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread() -> DbThread {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
            .unwrap();
        DbThread::spawn(conn).unwrap()
    }

    fn insert(k: &'static str, v: i64) -> impl FnOnce(&Connection) -> StoreResult<()> {
        move |c| {
            c.execute("INSERT INTO t (k, v) VALUES (?1, ?2)", (k, v))
                .map(|_| ())
                .map_err(|e| map_err("insert", e))
        }
    }

    fn count(c: &Connection) -> StoreResult<i64> {
        c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .map_err(|e| map_err("count", e))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_job_rolls_back_only_itself() {
        let w = thread();
        w.write("a", insert("a", 1)).await.unwrap();
        // Many at once so that they share transactions; the duplicates fail alone.
        let mut tasks = Vec::new();
        for i in 0..100 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                let key: &'static str = if i % 2 == 0 { "a" } else { "b" };
                w.write("dup", move |c| {
                    // Two statements: the first must vanish when the second fails.
                    c.execute("UPDATE t SET v = v + 1000", [])
                        .map_err(|e| map_err("bump", e))?;
                    insert(key, i)(c)
                })
                .await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => ok += 1,
                Err(e) => assert!(matches!(e, StoreError::Conflict(_)), "{e}"),
            }
        }
        assert_eq!(ok, 1, "exactly one insert of 'b' succeeds");
        assert_eq!(w.read("count", count).await.unwrap(), 2);
        let bumped = w
            .read("sum", |c| {
                c.query_row("SELECT v FROM t WHERE k = 'a'", [], |r| r.get::<_, i64>(0))
                    .map_err(|e| map_err("sum", e))
            })
            .await
            .unwrap();
        assert_eq!(bumped, 1001, "only the successful job's bump remains");
    }

    #[tokio::test]
    async fn reads_do_not_take_the_write_lock() {
        let path = std::env::temp_dir().join(format!(
            "pforte-db-thread-{}-{}.db",
            std::process::id(),
            crate::conformance::unique("t")
        ));
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)",
        )
        .unwrap();
        // No waiting: a lock conflict fails at once instead of after a timeout.
        conn.busy_timeout(std::time::Duration::ZERO).unwrap();
        let w = DbThread::spawn(conn).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        assert_eq!(
            w.read("count", count).await.unwrap(),
            0,
            "read beside a writer"
        );
        let blocked = w.write("insert", insert("a", 1)).await.unwrap_err();
        assert!(blocked.to_string().contains("locked"), "{blocked}");
        other.execute_batch("COMMIT").unwrap();
        w.write("insert", insert("a", 1)).await.unwrap();
        w.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    #[tokio::test]
    async fn closed_thread_refuses_work() {
        let w = thread();
        w.write("a", insert("a", 1)).await.unwrap();
        w.close().await;
        let err = w.write("b", insert("b", 2)).await.unwrap_err();
        assert!(err.to_string().contains("closed"), "{err}");
    }
}
