//! The publisher's health: what `/readyz` answers and the health gauges of `/metrics` show.
//!
//! The pipeline and the Kafka client's callbacks record here what they find (brokers up, Deephaven usable, the
//! dead-letter topic writable, a permanent failure); nothing reads it back to decide what to do, so the state that
//! is reported cannot drift from a copy that is acted on.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;

/// What `/readyz` reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub kafka: bool,
    pub deephaven: bool,
    pub dead_letters: bool,
    /// Why the publisher stopped for good, if it did (a permanent failure needs a person).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub halted: Option<String>,
}

#[derive(Debug)]
pub struct Health {
    kafka_brokers_up: AtomicI64,
    /// False while an assigned partition could not be moved to where it must be read from: reading stops until it
    /// can, so the publisher is not ready although the brokers are up.
    positioned: AtomicBool,
    deephaven: AtomicBool,
    dead_letters: AtomicBool,
    halted: Mutex<Option<String>>,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            kafka_brokers_up: AtomicI64::new(0),
            positioned: AtomicBool::new(true),
            deephaven: AtomicBool::new(false),
            dead_letters: AtomicBool::new(true),
            halted: Mutex::new(None),
        }
    }
}

impl Health {
    /// How many brokers the consumer is connected to (from librdkafka's statistics; 0 when all are down).
    pub fn set_kafka_brokers_up(&self, up: i64) {
        self.kafka_brokers_up.store(up, Ordering::Release);
    }

    pub fn kafka_brokers_up(&self) -> i64 {
        self.kafka_brokers_up.load(Ordering::Acquire)
    }

    /// Whether every assigned partition could be moved where it is to be read from (set by every such move).
    pub fn set_positioned(&self, positioned: bool) {
        self.positioned.store(positioned, Ordering::Release);
    }

    /// Whether a Deephaven session with the tables in place is usable (set by every write and check).
    pub fn set_deephaven(&self, usable: bool) {
        self.deephaven.store(usable, Ordering::Release);
    }

    pub fn deephaven(&self) -> bool {
        self.deephaven.load(Ordering::Acquire)
    }

    /// Whether the last dead letters could be sent (a batch with dead letters waits until they are).
    pub fn set_dead_letters(&self, writable: bool) {
        self.dead_letters.store(writable, Ordering::Release);
    }

    /// The publisher stopped for good: retrying cannot help (refused credentials, a table it cannot use).
    pub fn halt(&self, reason: String) {
        *self.halted.lock().expect("the health lock was poisoned") = Some(reason);
    }

    /// The cause of a halt was removed (a rotated secret), and the pipeline starts again.
    pub fn resume(&self) {
        *self.halted.lock().expect("the health lock was poisoned") = None;
    }

    pub fn halted(&self) -> Option<String> {
        self.halted.lock().expect("the health lock was poisoned").clone()
    }

    /// Ready means records can be read from Kafka (brokers up, partitions where they are to be read from), written
    /// to Deephaven, and set aside if they cannot be decoded.
    pub fn readiness(&self) -> Readiness {
        let halted = self.halted();
        let kafka = self.kafka_brokers_up() > 0 && self.positioned.load(Ordering::Acquire);
        let (deephaven, dead_letters) = (self.deephaven(), self.dead_letters.load(Ordering::Acquire));
        Readiness {
            ready: kafka && deephaven && dead_letters && halted.is_none(),
            kafka,
            deephaven,
            dead_letters,
            halted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_with_every_end_usable_and_not_halted() {
        let health = Health::default();
        assert!(!health.readiness().ready, "no broker yet");
        health.set_kafka_brokers_up(1);
        health.set_deephaven(true);
        assert!(health.readiness().ready);
        health.set_dead_letters(false);
        assert!(!health.readiness().ready, "dead letters cannot be sent");
        health.set_dead_letters(true);
        health.set_positioned(false);
        let readiness = health.readiness();
        assert!(!readiness.ready && !readiness.kafka, "a partition cannot be moved to where it is read from");
        assert!(readiness.deephaven, "and Deephaven is not blamed for it");
        health.set_positioned(true);
        assert!(health.readiness().ready);
        health.halt("login refused".to_owned());
        let readiness = health.readiness();
        assert!(!readiness.ready);
        assert_eq!(readiness.halted.as_deref(), Some("login refused"));
    }
}
