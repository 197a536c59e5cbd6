//! How every Kafka client of the services is configured, in one order: where the brokers are and who the client
//! is, then the client's own choices, then what the operator set (`kafka.properties`: TLS, SASL, tuning), which
//! wins over both, so an operator can change anything a service chose.

use rdkafka::ClientConfig;

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

#[cfg(test)]
mod tests {
    use super::*;

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
