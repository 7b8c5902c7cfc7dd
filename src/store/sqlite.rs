//! Records in one SQLite file (WAL): a committed write survives the process being killed at any moment, and
//! readers never wait for the writer. The connection lives on a thread of its own; callers queue their
//! statements to it and await the answer, so no async worker ever blocks on the file, and writes happen in the
//! order they were queued.

use std::{path::Path, sync::mpsc};

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use tokio::sync::oneshot;

use super::{Store, StoreError};

/// Bumped when the table layout changes; an older file is migrated, a newer one refused.
const SCHEMA_VERSION: i64 = 1;

/// A statement for the store's thread.
type Job = Box<dyn FnOnce(&Connection) + Send>;

pub struct SqliteStore {
    /// The store's thread takes jobs from here; it ends when this is dropped.
    jobs: std::sync::Mutex<mpsc::Sender<Job>>,
}

fn err(context: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("{context}: {e}"))
}

impl SqliteStore {
    /// Opens (or creates) the file and its table. Its directory must exist: a path into a missing one is more
    /// likely a mistake (a typo, an unmounted volume) than a wish for new directories.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
            return Err(StoreError(format!(
                "the directory {} of {} does not exist: create it, or set store.path elsewhere",
                shown.display(),
                path.display()
            )));
        }
        let conn =
            Connection::open(path).map_err(|e| err(&format!("open {}", path.display()), e))?;
        // WAL + NORMAL: a commit is durable against a process crash (the case that matters here); only an OS
        // crash can lose the last commits, and then no acknowledged answer had left the machine long before.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS records (
                 kind TEXT NOT NULL,
                 id TEXT NOT NULL,
                 body TEXT NOT NULL,
                 updated_at INTEGER NOT NULL,
                 PRIMARY KEY (kind, id)
             );
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )
        .map_err(|e| err(&format!("prepare {}", path.display()), e))?;
        let version: Option<i64> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| err("read schema version", e))?;
        match version {
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', ?1)",
                    params![SCHEMA_VERSION],
                )
                .map_err(|e| err("write schema version", e))?;
            }
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError(format!(
                "{} was written by a newer Tessera (schema {v}, this one knows {SCHEMA_VERSION})",
                path.display()
            )))
            }
            Some(_) => {}
        }
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("tessera-store".into())
            .spawn(move || {
                for job in rx {
                    job(&conn);
                }
            })
            .map_err(|e| err("start the store thread", e))?;
        Ok(Self {
            jobs: std::sync::Mutex::new(tx),
        })
    }

    /// Runs `f` on the store's thread and waits (asynchronously) for its answer.
    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        self.jobs
            .lock()
            .unwrap()
            .send(job)
            .map_err(|_| StoreError("the store is closed".into()))?;
        rx.await
            .map_err(|_| StoreError("the store thread ended".into()))?
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn put(&self, kind: &str, id: &str, record: Value) -> Result<(), StoreError> {
        let (kind, id) = (kind.to_string(), id.to_string());
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO records (kind, id, body, updated_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at",
                params![kind, id, record.to_string(), crate::clock::unix_now()],
            )
            .map_err(|e| err(&format!("write {kind} {id}"), e))?;
            Ok(())
        })
        .await
    }

    async fn delete(&self, kind: &str, id: &str) -> Result<(), StoreError> {
        let (kind, id) = (kind.to_string(), id.to_string());
        self.call(move |conn| {
            conn.execute(
                "DELETE FROM records WHERE kind = ?1 AND id = ?2",
                params![kind, id],
            )
            .map_err(|e| err(&format!("delete {kind} {id}"), e))?;
            Ok(())
        })
        .await
    }

    async fn get(&self, kind: &str, id: &str) -> Result<Option<Value>, StoreError> {
        let (kind, id) = (kind.to_string(), id.to_string());
        self.call(move |conn| {
            let body: Option<String> = conn
                .query_row(
                    "SELECT body FROM records WHERE kind = ?1 AND id = ?2",
                    params![kind, id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| err("read a record", e))?;
            Ok(body.and_then(|b| match serde_json::from_str(&b) {
                Ok(v) => Some(v),
                Err(e) => {
                    tracing::error!(%kind, %id, error = %e, "unreadable record skipped");
                    None
                }
            }))
        })
        .await
    }

    async fn load(&self, kind: &str) -> Result<Vec<(String, Value)>, StoreError> {
        let kind = kind.to_string();
        self.call(move |conn| {
            let mut stmt = conn
                .prepare("SELECT id, body FROM records WHERE kind = ?1 ORDER BY id")
                .map_err(|e| err("read records", e))?;
            let rows = stmt
                .query_map(params![kind], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(|e| err("read records", e))?;
            let mut out = Vec::new();
            for row in rows {
                let (id, body) = row.map_err(|e| err("read records", e))?;
                match serde_json::from_str(&body) {
                    Ok(v) => out.push((id, v)),
                    // One damaged record must not keep every other task from coming back.
                    Err(e) => tracing::error!(%kind, %id, error = %e, "unreadable record skipped"),
                }
            }
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let s = SqliteStore::open(&path).unwrap();
            s.put("mix", "b", json!({"n": 1})).await.unwrap();
            s.put("mix", "a", json!({"n": 2})).await.unwrap();
            s.put("mix", "a", json!({"n": 3})).await.unwrap();
            s.put("relay", "r", json!({})).await.unwrap();
            s.put("mix", "gone", json!({})).await.unwrap();
            s.delete("mix", "gone").await.unwrap();
            s.delete("mix", "never").await.unwrap();
        }
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(
            s.load("mix").await.unwrap(),
            vec![("a".into(), json!({"n": 3})), ("b".into(), json!({"n": 1}))]
        );
        assert_eq!(s.load("relay").await.unwrap().len(), 1);
        assert!(s.load("other").await.unwrap().is_empty());
    }

    /// A store path in a directory that does not exist is a mistake to report, not directories to create.
    #[test]
    fn a_missing_directory_is_refused_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/state.db");
        let e = SqliteStore::open(&path).err().map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e
                .contains(&dir.path().join("missing").display().to_string())
                && e.contains("does not exist")),
            "{e:?}"
        );
        assert!(!dir.path().join("missing").exists());
    }

    #[test]
    fn a_file_from_a_newer_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        drop(SqliteStore::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute("UPDATE meta SET value = 99 WHERE key = 'schema'", [])
            .unwrap();
        let e = SqliteStore::open(&path).err().unwrap().to_string();
        assert!(e.contains("newer"), "{e}");
    }

    #[tokio::test]
    async fn a_damaged_record_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let s = SqliteStore::open(&path).unwrap();
        s.put("mix", "good", json!(1)).await.unwrap();
        s.call(|conn| {
            conn.execute(
                "INSERT INTO records VALUES ('mix', 'bad', '{not json', 0)",
                [],
            )
            .map_err(|e| err("test", e))
        })
        .await
        .unwrap();
        assert_eq!(s.get("mix", "bad").await.unwrap(), None);
        assert_eq!(s.get("mix", "good").await.unwrap(), Some(json!(1)));
        assert_eq!(
            s.load("mix").await.unwrap(),
            vec![("good".into(), json!(1))]
        );
    }
}
