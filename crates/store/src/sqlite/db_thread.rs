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
//! Callers are answered only after COMMIT: a reply means the write is in the WAL (and, with
//! `synchronous=NORMAL`, survives a crash of pforte; an OS crash may lose the last commits)
//! and visible to everyone.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
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
        // A panic in an operation (a bug) fails that operation, not the thread and with it
        // every later one.
        let guarded = |work: F, conn: &Connection| {
            catch_unwind(AssertUnwindSafe(|| work(conn))).unwrap_or_else(|_| {
                Err(StoreError::Backend(format!(
                    "{what}: the operation panicked"
                )))
            })
        };
        if !self.writes {
            self.outcome = Some(guarded(work, conn));
            return;
        }
        let outcome = (|| {
            control(conn, "SAVEPOINT job").map_err(|e| map_err(what, e))?;
            let released =
                guarded(work, conn).and_then(|value| match control(conn, "RELEASE job") {
                    Ok(()) => Ok(value),
                    Err(e) => Err(map_err(what, e)),
                });
            if released.is_err() {
                // Undo only this job. When SQLite has already rolled back the whole
                // transaction there is no savepoint left and these fail: nothing to undo.
                let _ = control(conn, "ROLLBACK TO job");
                let _ = control(conn, "RELEASE job");
            }
            released
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

/// Runs a transaction-control statement (`BEGIN`, `COMMIT`, `SAVEPOINT`, ...) from the
/// statement cache: these run several times per batch, and `execute_batch` would parse them
/// every time (measured: a few percent of a refresh grant's CPU).
fn control(conn: &Connection, sql: &'static str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
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

/// Runs a group in one transaction: `BEGIN IMMEDIATE` when anything in it writes. When the
/// write lock cannot be had (another process holds it past the busy timeout), only the
/// writes fail: the reads still run, in a read transaction.
fn commit_batch(conn: &mut Connection, batch: Vec<Box<dyn Job>>) {
    let queue: VecDeque<_> = batch.into();
    if !queue.iter().any(|job| job.writes()) {
        return run_in_transaction(conn, "BEGIN", queue, false);
    }
    if let Err(e) = control(conn, "BEGIN IMMEDIATE") {
        let e = map_err("begin", e);
        let (writes, reads): (VecDeque<_>, VecDeque<_>) =
            queue.into_iter().partition(|job| job.writes());
        for job in writes {
            job.finish(Err(&e));
        }
        if !reads.is_empty() {
            run_in_transaction(conn, "BEGIN", reads, false);
        }
        return;
    }
    run_in_transaction(conn, "BEGIN IMMEDIATE", queue, true);
}

/// Runs `queue` in transactions opened with `begin` (the first one already open when
/// `begun`), committing after the last job.
fn run_in_transaction(
    conn: &mut Connection,
    begin: &'static str,
    mut queue: VecDeque<Box<dyn Job>>,
    mut begun: bool,
) {
    while !queue.is_empty() {
        if !begun && let Err(e) = control(conn, begin) {
            let e = map_err("begin", e);
            for job in queue {
                job.finish(Err(&e));
            }
            return;
        }
        begun = false;
        let mut done = Vec::new();
        let mut rolled_back = false;
        while let Some(mut job) = queue.pop_front() {
            job.run(conn);
            done.push(job);
            // Some errors (disk full, I/O, out of memory) make SQLite roll back the whole
            // transaction, not just the savepoint. Then what ran so far is gone, and the
            // jobs still queued must not run outside a transaction: they get a new one.
            if conn.is_autocommit() {
                rolled_back = true;
                break;
            }
        }
        let outcome = if rolled_back {
            Err(StoreError::Backend(
                "SQLite rolled back the transaction".into(),
            ))
        } else {
            control(conn, "COMMIT").map_err(|e| {
                // A failed COMMIT may leave the transaction open: end it.
                let _ = control(conn, "ROLLBACK");
                map_err("commit", e)
            })
        };
        for job in done {
            job.finish(outcome.as_ref().map(|_| ()));
        }
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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

    /// Holds the thread for a moment so that the jobs sent meanwhile form one group.
    async fn hold(w: &DbThread) -> tokio::task::JoinHandle<StoreResult<()>> {
        let w = w.clone();
        let held = tokio::spawn(async move {
            w.read("hold", |_| {
                std::thread::sleep(std::time::Duration::from_millis(100));
                Ok(())
            })
            .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        held
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_transaction_rolled_back_under_the_group_fails_what_ran_and_retries_the_rest() {
        let w = thread();
        let held = hold(&w).await;
        let (first, rogue, last) = tokio::join!(
            w.write("first", insert("a", 1)),
            // Ends the group's whole transaction, as SQLite does on disk full or I/O errors.
            w.write("rogue", |c| c
                .execute_batch("ROLLBACK")
                .map_err(|e| map_err("rogue", e))),
            w.write("last", insert("b", 2)),
        );
        held.await.unwrap().unwrap();
        assert!(first.is_err(), "its insert was rolled back: {first:?}");
        assert!(rogue.is_err(), "{rogue:?}");
        last.unwrap();
        let keys = w
            .read("keys", |c| {
                c.query_row("SELECT group_concat(k) FROM t", [], |r| {
                    r.get::<_, String>(0)
                })
                .map_err(|e| map_err("keys", e))
            })
            .await
            .unwrap();
        assert_eq!(keys, "b", "only the job after the rollback is stored");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_job_fails_alone() {
        let w = thread();
        let held = hold(&w).await;
        let (before, bad, after) = tokio::join!(
            w.write("before", insert("a", 1)),
            w.write("bad", |_| -> StoreResult<()> { panic!("a bug") }),
            w.write("after", insert("b", 2)),
        );
        held.await.unwrap().unwrap();
        before.unwrap();
        let bad = bad.unwrap_err();
        assert!(bad.to_string().contains("panicked"), "{bad}");
        after.unwrap();
        assert_eq!(w.read("count", count).await.unwrap(), 2);
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
