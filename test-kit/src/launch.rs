//! How the tests run the services as processes: one description per service of what it is given (where it
//! connects, what it is called, the settings that keep a test quick), turned into the `INGEST_*` / `PUBLISHER_*`
//! environment variables its binary reads. A test that needs more adds settings by their variable's name.

use crate::process::Service;
use std::path::Path;

/// An ingest instance: it listens on `port` (webhooks and its operations endpoint share it) and writes to `topic`.
#[derive(Debug, Clone)]
pub struct IngestLaunch {
    pub port: u16,
    pub brokers: String,
    pub topic: String,
    /// Settings on top of these, as (variable, value).
    pub settings: Vec<(String, String)>,
}

impl IngestLaunch {
    pub fn new(port: u16, brokers: &str, topic: &str) -> IngestLaunch {
        IngestLaunch { port, brokers: brokers.to_owned(), topic: topic.to_owned(), settings: Vec::new() }
    }

    /// The binary's environment.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = owned(&[
            ("INGEST_SERVER__PORT", self.port.to_string()),
            ("INGEST_KAFKA__BROKERS", self.brokers.clone()),
            ("INGEST_KAFKA__TOPIC", self.topic.clone()),
            ("INGEST_LOG__FILTER", "warn".to_owned()),
        ]);
        with_settings(&mut env, &self.settings);
        env
    }

    /// Starts `binary` with [`IngestLaunch::env`]; its output goes to the test's.
    pub fn spawn(&self, binary: &Path) -> Service {
        Service::spawn(binary, &[], &self.env(), self.port)
    }
}

/// A publisher: its operations endpoint on `port`, following `topic` into the tables named with `table_prefix`.
#[derive(Debug, Clone)]
pub struct PublisherLaunch {
    pub port: u16,
    pub brokers: String,
    pub topic: String,
    pub dlq_topic: String,
    pub group_id: String,
    pub deephaven_url: String,
    pub table_prefix: String,
    /// Settings on top of these, as (variable, value).
    pub settings: Vec<(String, String)>,
}

impl PublisherLaunch {
    /// The binary's environment. Recovery and the table checks run on short periods, so that a test of a fault
    /// sees the publisher recover within its deadline.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = owned(&[
            ("PUBLISHER_SERVER__PORT", self.port.to_string()),
            ("PUBLISHER_KAFKA__BROKERS", self.brokers.clone()),
            ("PUBLISHER_KAFKA__TOPIC", self.topic.clone()),
            ("PUBLISHER_KAFKA__DLQ_TOPIC", self.dlq_topic.clone()),
            ("PUBLISHER_KAFKA__GROUP_ID", self.group_id.clone()),
            ("PUBLISHER_DEEPHAVEN__URL", self.deephaven_url.clone()),
            ("PUBLISHER_DEEPHAVEN__TABLE_PREFIX", self.table_prefix.clone()),
            ("PUBLISHER_DEEPHAVEN__MAX_BACKOFF", "2s".to_owned()),
            ("PUBLISHER_DEEPHAVEN__CHECK_INTERVAL", "1s".to_owned()),
            ("PUBLISHER_LOG__FILTER", "warn,publisher=info".to_owned()),
        ]);
        with_settings(&mut env, &self.settings);
        env
    }

    /// Starts `binary` with `args` (e.g. `["replay"]`) and [`PublisherLaunch::env`]; its output goes to the test's.
    pub fn spawn(&self, binary: &Path, args: &[&str]) -> Service {
        Service::spawn(binary, args, &self.env(), self.port)
    }
}

fn owned(env: &[(&str, String)]) -> Vec<(String, String)> {
    env.iter().map(|(name, value)| ((*name).to_owned(), value.clone())).collect()
}

/// Lays `settings` over `env`: a variable set in both takes the setting's value, so `env` names each once.
fn with_settings(env: &mut Vec<(String, String)>, settings: &[(String, String)]) {
    for (name, value) in settings {
        match env.iter_mut().find(|(set, _)| set == name) {
            Some(entry) => entry.1 = value.clone(),
            None => env.push((name.clone(), value.clone())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_s_settings_replace_the_launch_s_own_and_add_the_rest() {
        let mut ingest = IngestLaunch::new(1, "b:9092", "t");
        ingest.settings.push(("INGEST_LOG__FILTER".to_owned(), "debug".to_owned()));
        ingest.settings.push(("INGEST_SERVER__WORKERS".to_owned(), "1".to_owned()));
        let env = ingest.env();
        let values = |wanted: &str| {
            env.iter().filter(|(name, _)| name == wanted).map(|(_, v)| v.clone()).collect::<Vec<String>>()
        };
        assert_eq!(values("INGEST_LOG__FILTER"), vec!["debug".to_owned()]);
        assert_eq!(values("INGEST_SERVER__WORKERS"), vec!["1".to_owned()]);
        assert_eq!(values("INGEST_KAFKA__TOPIC"), vec!["t".to_owned()]);
    }
}
