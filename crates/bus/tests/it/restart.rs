//! NATS restarting under a running publisher and consumer. Uses a private nats-server (started
//! and killed by the test) so the shared one is never disturbed.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use phlo_bus::{Bus, BusConfig, Delivery, Outcome, Queue};
use tokio::sync::mpsc;

use crate::support::{Consuming, recv, test_config};

struct Server {
    binary: PathBuf,
    port: u16,
    store: PathBuf,
    child: Option<Child>,
}

impl Server {
    fn find() -> Option<Self> {
        let binary = std::env::var_os("NATS_SERVER_BIN")
            .map(PathBuf::from)
            .or_else(|| Some(PathBuf::from("/usr/sbin/nats-server")).filter(|p| p.exists()))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let store = std::env::temp_dir().join(format!("phlo-bus-{}", uuid::Uuid::new_v4()));
        Some(Self {
            binary,
            port,
            store,
            child: None,
        })
    }

    async fn start(&mut self) {
        let child = Command::new(&self.binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nats-server did not start");
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

#[tokio::test]
async fn publish_and_consume_survive_a_nats_restart() {
    let Some(mut server) = Server::find() else {
        eprintln!("skipped: no nats-server binary (set NATS_SERVER_BIN)");
        return;
    };
    server.start().await;
    let bus = Bus::connect(BusConfig {
        url: format!("nats://127.0.0.1:{}", server.port),
        ..test_config()
    })
    .await
    .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let consuming = Consuming::start(&bus, Queue::Step, 4, move |d: Delivery| {
        let tx = tx.clone();
        async move {
            tx.send(d.payload).unwrap();
            Outcome::Ack
        }
    });
    let subject = bus.subject(Queue::Step);
    bus.publish(&subject, "before", "before".into(), None)
        .await
        .unwrap();
    assert_eq!(&recv(&mut rx, Duration::from_secs(5)).await[..], b"before");

    server.kill();
    // Publish while NATS is down; the retry loop carries it over the restart.
    let publishing = {
        let (bus, subject) = (bus.clone(), subject.clone());
        tokio::spawn(async move { bus.publish(&subject, "after", "after".into(), None).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!bus.healthy(), "the bus notices NATS is gone");
    server.start().await;

    publishing
        .await
        .unwrap()
        .expect("publish retried until NATS was back");
    // "before" may come again: its ack can die with the server (at-least-once). The budget is
    // generous because the consumer may first meet a server still loading its streams (error,
    // pause, open the consumer again) on a loaded CI machine; only "never" is a failure.
    while &recv(&mut rx, Duration::from_secs(30)).await[..] != b"after" {}
    assert!(bus.healthy());
    consuming.stop().await;
    bus.drain().await.unwrap();
}
