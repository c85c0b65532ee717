//! Every call the simulator knows, by call UUID and by the request UUID the Call API returned,
//! bounded: beyond the cap the oldest call is forgotten (its task, if still live, runs on).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::calls::Call;

/// Every call the simulator knows, oldest dropped beyond the cap.
#[derive(Debug)]
pub struct Calls {
    inner: Mutex<CallMap>,
    cap: usize,
}

#[derive(Debug, Default)]
struct CallMap {
    by_uuid: HashMap<String, Arc<Call>>,
    by_request: HashMap<String, String>,
    order: VecDeque<String>,
}

impl Calls {
    pub fn new(cap: usize) -> Self {
        Self {
            inner: Mutex::new(CallMap::default()),
            cap,
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, CallMap> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, call: Arc<Call>) {
        let mut map = self.map();
        while map.order.len() >= self.cap {
            let Some(old) = map.order.pop_front() else {
                break;
            };
            if let Some(c) = map.by_uuid.remove(&old)
                && let Some(r) = &c.info.request_uuid
            {
                map.by_request.remove(r);
            }
        }
        if let Some(r) = &call.info.request_uuid {
            map.by_request.insert(r.clone(), call.info.uuid.clone());
        }
        map.order.push_back(call.info.uuid.clone());
        map.by_uuid.insert(call.info.uuid.clone(), call);
    }

    /// A call by its call UUID or by the request UUID the Call API returned for it.
    pub fn get(&self, id: &str) -> Option<Arc<Call>> {
        let map = self.map();
        let uuid = map.by_request.get(id).map_or(id, String::as_str);
        map.by_uuid.get(uuid).cloned()
    }

    pub fn list(&self) -> Vec<Arc<Call>> {
        let map = self.map();
        map.order
            .iter()
            .filter_map(|u| map.by_uuid.get(u).cloned())
            .collect()
    }

    /// Forgets every call and returns them, so the caller can hang up the live ones.
    pub fn clear(&self) -> Vec<Arc<Call>> {
        let mut map = self.map();
        map.by_request.clear();
        map.order.clear();
        map.by_uuid.drain().map(|(_, c)| c).collect()
    }
}
