//! How every Kafka client of the services is configured, in one order: where the brokers are and who the client
//! is, then the client's own choices, then what the operator set (`kafka.properties`: TLS, SASL, tuning), which
//! wins over both, so an operator can change anything a service chose. Clients are made with [`create`] and
//! [`create_with_context`], whose errors never carry a property's value; [`refused_credentials`] asks the brokers
//! whether they take a configuration's credentials before a service puts it in place of one that works.

use rdkafka::config::{FromClientConfig, FromClientConfigAndContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The configuration of a client of `brokers` named `client_id`: `own` sets the client's choices, then each of
/// `operator`'s properties is laid over them.
pub fn client_config<'a>(
    brokers: &str,
    client_id: &str,
    own: impl FnOnce(&mut ClientConfig),
    operator: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers).set("client.id", client_id);
    own(&mut config);
    for (name, value) in operator {
        config.set(name, value);
    }
    config
}

/// Makes the client `config` describes.
pub fn create<T: FromClientConfig>(config: &ClientConfig) -> KafkaResult<T> {
    config.create().map_err(without_the_value)
}

/// Makes the client `config` describes, with `context`.
pub fn create_with_context<C: ClientContext, T: FromClientConfigAndContext<C>>(
    config: &ClientConfig,
    context: C,
) -> KafkaResult<T> {
    config.create_with_context(context).map_err(without_the_value)
}

/// Why the brokers refuse the credentials `config` carries, if they do: a throwaway client asks for metadata for up
/// to `timeout`, and a TLS or authentication failure that librdkafka reports meanwhile is the reason. `None` when
/// a broker answered, and also when none could be reached: an unreachable broker says nothing about the
/// credentials, and must not hold back a rotation. Blocking.
pub fn refused_credentials(config: &ClientConfig, timeout: Duration) -> KafkaResult<Option<String>> {
    let client: BaseProducer<Refusals> = create_with_context(config, Refusals::default())?;
    let deadline = Instant::now() + timeout;
    loop {
        let answered = client.client().fetch_metadata(None, REFUSAL_POLL).is_ok();
        // Serves the error events queued meanwhile (a refused handshake or login among them).
        client.poll(Duration::ZERO);
        let refused = client.context().reason.lock().expect("lock poisoned").take();
        if answered || refused.is_some() || Instant::now() >= deadline {
            return Ok(refused.filter(|_| !answered));
        }
    }
}

/// How long each metadata request of [`refused_credentials`] waits before the errors are looked at.
const REFUSAL_POLL: Duration = Duration::from_millis(250);

/// The first TLS or authentication failure a client reported.
#[derive(Default)]
struct Refusals {
    reason: Mutex<Option<String>>,
}

impl ClientContext for Refusals {
    fn error(&self, error: KafkaError, reason: &str) {
        let refusal = match error.rdkafka_error_code() {
            Some(
                RDKafkaErrorCode::SSL | RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed,
            ) => true,
            // A TLS 1.3 server refuses a client certificate after the handshake, so librdkafka reports the server's
            // alert (OpenSSL's "SSL alert number …") as a transport failure, not as a TLS error.
            Some(RDKafkaErrorCode::BrokerTransportFailure) => reason.contains("SSL alert"),
            _ => false,
        };
        if refusal {
            self.reason.lock().expect("lock poisoned").get_or_insert_with(|| format!("{error}: {reason}"));
        }
    }
}

/// Nothing is produced: delivery reports need no handling.
impl ProducerContext for Refusals {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &rdkafka::message::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

/// librdkafka refuses a property by name, and rdkafka's message then prints the value too: a password set under a
/// misspelt or unsupported name (`sasl.pasword`, Java's `sasl.jaas.config`) would reach the log. The name and
/// librdkafka's reason are enough to find the mistake.
fn without_the_value(error: KafkaError) -> KafkaError {
    match error {
        KafkaError::ClientConfig(code, reason, name, _value) => {
            KafkaError::ClientConfig(code, reason, name, "(value not shown)".to_owned())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::producer::BaseProducer;

    #[test]
    fn a_refused_property_is_named_and_its_value_never_shown() {
        for name in ["sasl.pasword", "sasl.jaas.config"] {
            let config = client_config("b:9092", "svc", |_| {}, [(name, "hunter2")]);
            let error = create::<BaseProducer>(&config).err().expect("librdkafka has no such property").to_string();
            assert!(error.contains(name) && !error.contains("hunter2"), "{error}");
            let error = create_with_context::<_, BaseProducer>(&config, rdkafka::producer::DefaultProducerContext)
                .err()
                .expect("librdkafka has no such property")
                .to_string();
            assert!(error.contains(name) && !error.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn the_operator_s_properties_win_over_the_client_s_own_choices() {
        let config = client_config(
            "b:9092",
            "svc",
            |config| {
                config.set("linger.ms", "5").set("acks", "all");
            },
            [("linger.ms", "20")],
        );
        assert_eq!(config.get("bootstrap.servers"), Some("b:9092"));
        assert_eq!(config.get("client.id"), Some("svc"));
        assert_eq!(config.get("linger.ms"), Some("20"));
        assert_eq!(config.get("acks"), Some("all"));
    }
}
