//! Compiled PHLO revisions. Revisions are immutable, so a compiled one never goes stale: templates are
//! parsed once per process and revision, not once per step.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use phlo_flow::Phlo;
use phlo_store::Conn;
use uuid::Uuid;

use crate::RuntimeError;

/// Bound on cached revisions; past it the cache starts over (cheap: a miss is one query and a compile).
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub(crate) struct PhloCache {
    map: Mutex<HashMap<(Uuid, i32), Arc<Phlo>>>,
    /// The revision each PHLO had when this process last started a run of it: a guess, which the next
    /// start's insert checks (see `phlo_store::runs::start`), so that it needs no read before.
    current: Mutex<HashMap<Uuid, i32>>,
}

impl PhloCache {
    pub fn get(&self, phlo_id: Uuid, revision: i32) -> Option<Arc<Phlo>> {
        self.map.lock().ok()?.get(&(phlo_id, revision)).cloned()
    }

    pub fn insert(&self, phlo_id: Uuid, revision: i32, phlo: Arc<Phlo>) {
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert((phlo_id, revision), phlo);
        }
    }

    pub fn current(&self, phlo_id: Uuid) -> Option<i32> {
        self.current.lock().ok()?.get(&phlo_id).copied()
    }

    pub fn set_current(&self, phlo_id: Uuid, revision: i32) {
        if let Ok(mut map) = self.current.lock() {
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(phlo_id, revision);
        }
    }
}

impl crate::Runtime {
    /// The compiled revision, from the cache or the database.
    pub async fn phlo(
        &self,
        phlo_id: Uuid,
        revision: i32,
    ) -> Result<Option<Arc<Phlo>>, RuntimeError> {
        if let Some(p) = self.inner.phlos.get(phlo_id, revision) {
            return Ok(Some(p));
        }
        let mut conn = self.inner.pool.acquire().await?;
        self.phlo_in(&mut conn, phlo_id, revision).await
    }

    /// Like [`Self::phlo`], reading through the caller's connection: a step that holds a transaction
    /// must not wait for a second connection, or a burst of cache misses could exhaust the pool.
    pub(crate) async fn phlo_in(
        &self,
        conn: &mut Conn,
        phlo_id: Uuid,
        revision: i32,
    ) -> Result<Option<Arc<Phlo>>, RuntimeError> {
        if let Some(p) = self.inner.phlos.get(phlo_id, revision) {
            return Ok(Some(p));
        }
        let Some(row) = phlo_store::phlos::revision(conn, phlo_id, revision).await? else {
            return Ok(None);
        };
        let phlo = match phlo_flow::compile(&row.definition.0) {
            Ok((phlo, _)) => Arc::new(phlo),
            Err(problems) => {
                let problems = problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                return Err(RuntimeError::Definition {
                    phlo_id,
                    revision,
                    problems,
                });
            }
        };
        self.inner.phlos.insert(phlo_id, revision, phlo.clone());
        Ok(Some(phlo))
    }
}
