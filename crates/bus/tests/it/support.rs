use std::{future::Future, time::Duration};

use async_nats::jetstream;
use phlo_bus::{Bus, BusConfig, BusError, Delivery, Outcome, Queue};
use tokio::{sync::mpsc, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

pub fn test_config() -> BusConfig {
    BusConfig {
        url: nats_url(),
        prefix: format!("t{}", uuid::Uuid::new_v4().simple()),
        ..BusConfig::default()
    }
}

/// Which implementation of the bus a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Nats,
    Memory,
}

/// Runs one `async fn(Backend)` test against each backend, as `<name>::nats` and `<name>::memory`.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident) => {
        $crate::on_both_backends!($name, "current_thread");
    };
    ($name:ident, $flavor:literal) => {
        mod $name {
            #[tokio::test(flavor = $flavor)]
            async fn nats() {
                super::$name($crate::support::Backend::Nats).await
            }

            #[tokio::test(flavor = $flavor)]
            async fn memory() {
                super::$name($crate::support::Backend::Memory).await
            }
        }
    };
}

/// A bus on a fresh stream (its own prefix), deleted on drop (even when the test panics).
pub struct TestBus {
    pub bus: Bus,
    /// Only for NATS.
    js: Option<jetstream::Context>,
}

impl TestBus {
    pub async fn on(backend: Backend) -> Self {
        Self::with_on(backend, test_config()).await
    }

    pub async fn with_ack_wait(backend: Backend, ack_wait: Duration) -> Self {
        Self::with_on(
            backend,
            BusConfig {
                ack_wait,
                ..test_config()
            },
        )
        .await
    }

    pub async fn with(config: BusConfig) -> Self {
        Self::with_on(Backend::Nats, config).await
    }

    pub async fn with_on(backend: Backend, config: BusConfig) -> Self {
        match backend {
            Backend::Nats => {
                let bus = Bus::connect(config).await.expect("connect to NATS");
                let client = async_nats::connect(nats_url()).await.expect("raw client");
                Self {
                    bus,
                    js: Some(jetstream::new(client)),
                }
            }
            Backend::Memory => Self {
                bus: Bus::in_memory(config).expect("valid config"),
                js: None,
            },
        }
    }

    pub fn js(&self) -> &jetstream::Context {
        self.js.as_ref().expect("a NATS test")
    }

    pub async fn publish(&self, queue: Queue, msg_id: &str, payload: &str) -> u64 {
        let subject = self.bus.subject(queue);
        let published = self
            .bus
            .publish(&subject, msg_id, payload.to_owned().into(), None)
            .await
            .expect("publish");
        published.sequence
    }

    /// Messages stored and not yet acked (or terminated).
    pub async fn stream_messages(&self) -> u64 {
        if let Some(held) = self.bus.held_in_memory() {
            return held;
        }
        let mut stream = self.js().get_stream(self.bus.stream_name()).await.unwrap();
        stream.info().await.unwrap().state.messages
    }

    /// Acks travel asynchronously; poll until the stream holds `count` messages (5 s bound).
    pub async fn wait_for_stream_messages(&self, count: u64) -> bool {
        for _ in 0..50 {
            if self.stream_messages().await == count {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }
}

impl Drop for TestBus {
    fn drop(&mut self) {
        if self.js.is_none() {
            return;
        }
        let stream = self.bus.stream_name();
        // Async cleanup from a sync drop: a throwaway runtime on its own thread.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(client) = async_nats::connect(nats_url()).await {
                    let _ = jetstream::new(client).delete_stream(&stream).await;
                }
            });
        })
        .join();
    }
}

/// A running `consume` loop.
pub struct Consuming {
    shutdown: CancellationToken,
    handle: JoinHandle<Result<(), BusError>>,
}

impl Consuming {
    pub fn start<H, Fut>(bus: &Bus, queue: Queue, max_in_flight: usize, handler: H) -> Self
    where
        H: Fn(Delivery) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let shutdown = CancellationToken::new();
        let bus = bus.clone();
        let token = shutdown.clone();
        let handle =
            tokio::spawn(async move { bus.consume(queue, max_in_flight, token, handler).await });
        Self { shutdown, handle }
    }

    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    pub async fn stop(self) {
        self.shutdown();
        self.join().await;
    }

    /// Waits for the loop to return (after `shutdown`).
    pub async fn join(self) {
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("consume returns after shutdown")
            .expect("consume task did not panic")
            .expect("consume ends with Ok");
    }
}

/// Receives the next item, failing the test after `within`.
pub async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>, within: Duration) -> T {
    tokio::time::timeout(within, rx.recv())
        .await
        .expect("message arrives in time")
        .expect("channel open")
}

/// True if nothing arrives for `window`.
pub async fn nothing_for<T>(rx: &mut mpsc::UnboundedReceiver<T>, window: Duration) -> bool {
    tokio::time::timeout(window, rx.recv()).await.is_err()
}
