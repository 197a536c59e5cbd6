//! The rejection corpus: every way a body can be wrong gets the right kind of error naming the right path.

use schemas::{parse, AlertRecord, Limits, SchemaError, SchemaErrorKind, Timestamp};
use serde_json::{json, Value};

/// A real one-alert body (fixture 002) to mutate.
fn base() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../test-kit/fixtures/alertmanager-0.25/002.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn with(mutate: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut body = base();
    mutate(&mut body);
    serde_json::to_vec(&body).unwrap()
}

fn rejected(body: &[u8]) -> SchemaError {
    match parse(body, &Limits::default()) {
        Ok(webhook) => panic!("accepted a bad body: {webhook:?}"),
        Err(err) => err,
    }
}

#[track_caller]
fn assert_rejected(body: &[u8], kind: SchemaErrorKind, path: &str, message_part: &str) {
    let err = rejected(body);
    assert_eq!((err.kind, err.path.as_str()), (kind, path), "{err}");
    assert!(err.message.contains(message_part), "{err:?} should say {message_part:?}");
    assert!(err.to_string().starts_with(path), "the display names the path: {err}");
}

#[test]
fn the_base_body_is_valid() {
    parse(&with(|_| {}), &Limits::default()).unwrap();
}

#[test]
fn malformed_json_is_a_syntax_error() {
    let body = with(|_| {});
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", b"".to_vec()),
        ("not json", b"hello".to_vec()),
        ("truncated", body[..body.len() / 2].to_vec()),
        ("trailing garbage", [body.as_slice(), b"}"].concat()),
        ("single quotes", b"{'version':'4'}".to_vec()),
    ];
    for (name, body) in cases {
        let err = rejected(&body);
        assert_eq!(err.kind, SchemaErrorKind::Syntax, "{name}: {err}");
        assert!(!err.path.is_empty(), "{name}");
    }
}

#[test]
fn invalid_utf8_is_a_syntax_error() {
    let body = String::from_utf8(with(|_| {})).unwrap().replace("AlwaysFiring", "Always\u{1}Firing");
    let mut bytes = body.into_bytes();
    let at = bytes.iter().position(|&b| b == 1).unwrap();
    bytes[at] = 0xff;
    let err = rejected(&bytes);
    assert_eq!(err.kind, SchemaErrorKind::Syntax, "{err}");
    assert!(err.path.starts_with("alerts[0].labels"), "{err}");
}

#[test]
fn deep_nesting_is_refused_without_exhausting_the_stack() {
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let in_alerts =
        String::from_utf8(with(|_| {})).unwrap().replacen("\"alerts\":[", &format!("\"alerts\":[{nested},"), 1);
    let err = rejected(in_alerts.as_bytes());
    assert!(err.path.starts_with("alerts[0]"), "{err}");
    let nested_objects = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
    let in_labels = with(|b| b["groupLabels"] = json!({}));
    let in_labels = String::from_utf8(in_labels)
        .unwrap()
        .replace("\"groupLabels\":{}", &format!("\"groupLabels\":{nested_objects}"));
    assert_rejected(in_labels.as_bytes(), SchemaErrorKind::Invalid, "groupLabels.a", "expected a string");
}

#[test]
fn deep_nesting_in_an_unknown_field_is_skipped_without_recursion() {
    // Unknown fields are tolerated; serde_json skips them iteratively, so depth costs no stack. The body size
    // limit in ingest bounds the work.
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let body = String::from_utf8(with(|_| {})).unwrap().replacen('{', &format!("{{\"future\":{nested},"), 1);
    parse(body.as_bytes(), &Limits::default()).unwrap();
}

#[test]
fn wrong_shapes_and_types_name_their_path() {
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (b"[]".to_vec(), "$", "expected struct Webhook"),
        (b"{}".to_vec(), "$", "missing field"),
        (with(|b| b["version"] = json!("3")), "version", "expected version \"4\""),
        (with(|b| b["version"] = json!(4)), "version", "expected a string"),
        (with(|b| drop(b.as_object_mut().unwrap().remove("version"))), "$", "missing field `version`"),
        (with(|b| b["status"] = json!("pending")), "status", "unknown variant"),
        (with(|b| b["truncatedAlerts"] = json!(-1)), "truncatedAlerts", "invalid value"),
        (with(|b| b["groupLabels"] = json!(null)), "groupLabels", "invalid type"),
        (with(|b| b["alerts"] = json!({})), "alerts", "expected a sequence"),
        (with(|b| b["alerts"][0]["status"] = json!("unknown")), "alerts[0].status", "unknown variant"),
        (with(|b| b["alerts"][0]["labels"] = json!({"a": 1})), "alerts[0].labels.a", "expected a string"),
        (with(|b| b["alerts"][0]["labels"] = json!({"a": {"b": "c"}})), "alerts[0].labels.a", "expected a string"),
        (with(|b| b["alerts"][0]["annotations"] = json!(["x"])), "alerts[0].annotations", "expected an object"),
        (with(|b| b["alerts"][0]["fingerprint"] = json!("XYZ")), "alerts[0].fingerprint", "16 lowercase hex"),
        (with(|b| b["alerts"][0]["fingerprint"] = json!(12)), "alerts[0].fingerprint", "expected a string"),
        (with(|b| b["alerts"][0]["generatorURL"] = json!(null)), "alerts[0].generatorURL", "expected a string"),
        (
            with(|b| drop(b["alerts"][0].as_object_mut().unwrap().remove("startsAt"))),
            "alerts[0]",
            "missing field `startsAt`",
        ),
    ];
    for (body, path, message) in cases {
        assert_rejected(&body, SchemaErrorKind::Invalid, path, message);
    }
}

#[test]
fn bad_timestamps_name_their_path() {
    for bad in ["yesterday", "2026-11-23T18:41:46", "2026-11-23", "2026-02-30T00:00:00Z", "2026-11-23T25:00:00Z", ""] {
        let body = with(|b| b["alerts"][0]["startsAt"] = json!(bad));
        assert_rejected(&body, SchemaErrorKind::Invalid, "alerts[0].startsAt", "RFC 3339");
    }
    let body = with(|b| b["alerts"][0]["endsAt"] = json!(12345));
    assert_rejected(&body, SchemaErrorKind::Invalid, "alerts[0].endsAt", "expected a string");
    let body = with(|b| b["alerts"][0]["startsAt"] = json!("0001-01-01T00:00:00Z"));
    assert_rejected(&body, SchemaErrorKind::Invalid, "alerts[0].startsAt", "between 1677");
}

#[test]
fn semantic_rules_name_their_path() {
    let cases: Vec<(Vec<u8>, &str, &str)> = vec![
        (with(|b| b["alerts"] = json!([])), "alerts", "at least one alert"),
        (with(|b| b["alerts"][0]["labels"] = json!({})), "alerts[0].labels", "at least one label"),
        (with(|b| b["alerts"][0]["status"] = json!("resolved")), "alerts[0].endsAt", "resolved"),
    ];
    for (body, path, message) in cases {
        assert_rejected(&body, SchemaErrorKind::Invalid, path, message);
    }
    let repeated = String::from_utf8(with(|_| {})).unwrap().replace("\"team\":", "\"team\":\"x\",\"team\":");
    assert_rejected(repeated.as_bytes(), SchemaErrorKind::Invalid, "alerts[0].labels", "appears twice");
}

#[test]
fn limits_are_enforced_with_their_path() {
    let limits = Limits::default();
    let huge = "x".repeat(limits.max_value_bytes + 1);
    let many_labels: serde_json::Map<String, Value> =
        (0..=limits.max_labels_per_alert).map(|i| (format!("l{i}"), json!("v"))).collect();
    // A name is shown cut after 256 bytes, so that it cannot make the answer or the log line as long as itself.
    let huge_name_path = format!("alerts[0].labels.{}…", &huge[..256]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (with(|b| b["alerts"][0]["labels"]["alertname"] = json!(huge)), "alerts[0].labels.alertname"),
        (with(|b| b["alerts"][0]["annotations"]["summary"] = json!(huge)), "alerts[0].annotations.summary"),
        (with(|b| b["alerts"][0]["labels"][huge.as_str()] = json!("v")), &huge_name_path),
        (with(|b| b["alerts"][0]["generatorURL"] = json!(huge)), "alerts[0].generatorURL"),
        (with(|b| b["groupKey"] = json!(huge)), "groupKey"),
        (with(|b| b["commonLabels"]["x"] = json!(huge)), "commonLabels.x"),
        (with(|b| b["alerts"][0]["labels"] = Value::Object(many_labels.clone())), "alerts[0].labels"),
        (
            with(|b| {
                let alert = b["alerts"][0].clone();
                b["alerts"] = Value::Array(vec![alert; limits.max_alerts_per_body + 1]);
            }),
            "alerts",
        ),
    ];
    for (body, path) in cases {
        assert_rejected(&body, SchemaErrorKind::LimitExceeded, path, "exceed the limit");
    }
}

#[test]
fn count_limits_stop_the_decoding_at_the_first_element_past_them() {
    // What lies past a count limit is skipped, not built: an alert or a label there that would not decode is not
    // what the body is refused for.
    let alerts_past = with(|b| {
        let alert = b["alerts"][0].clone();
        let mut broken = alert.clone();
        broken["startsAt"] = json!("not a time");
        b["alerts"] = json!([alert.clone(), alert, broken]);
    });
    let mut labels: serde_json::Map<String, Value> = (0..8).map(|i| (format!("l{i}"), json!("v"))).collect();
    labels.insert("z".to_owned(), json!(3));
    let labels_past = with(|b| b["alerts"][0]["labels"] = Value::Object(labels));
    for (body, limits, path, message) in [
        (
            alerts_past,
            Limits { max_alerts_per_body: 2, ..Limits::default() },
            "alerts",
            "3 alerts exceed the limit of 2",
        ),
        (
            labels_past,
            Limits { max_labels_per_alert: 8, ..Limits::default() },
            "alerts[0].labels",
            "9 entries exceed the limit of 8",
        ),
    ] {
        let err = parse(&body, &limits).unwrap_err();
        assert_eq!((err.kind, err.path.as_str()), (SchemaErrorKind::LimitExceeded, path), "{err}");
        assert!(err.message.starts_with(message), "{err}");
    }
}

#[test]
fn limits_are_configurable() {
    let two_alerts = with(|b| {
        let alert = b["alerts"][0].clone();
        b["alerts"] = json!([alert.clone(), alert]);
    });
    parse(&two_alerts, &Limits::default()).unwrap();
    let strict = Limits { max_alerts_per_body: 1, ..Limits::default() };
    assert_eq!(parse(&two_alerts, &strict).unwrap_err().kind, SchemaErrorKind::LimitExceeded);
}

#[test]
fn fields_of_newer_alertmanagers_are_accepted() {
    let body = with(|b| {
        b["notification_reason"] = json!("new_alerts");
        b["routeLabels"] = json!({"team": "storage"});
        b["somethingFromTheFuture"] = json!({"nested": [1, 2, 3]});
        b["alerts"][0]["somethingElse"] = json!(true);
    });
    let webhook = parse(&body, &Limits::default()).unwrap();
    assert_eq!(webhook.notification_reason.as_deref(), Some("new_alerts"));
    assert_eq!(webhook.route_labels.unwrap().get("team"), Some("storage"));
}

#[test]
fn an_empty_label_name_is_refused_naming_its_set() {
    for (mutate, path) in [
        (&(|b: &mut Value| b["alerts"][0]["labels"][""] = json!("v")) as &dyn Fn(&mut Value), "alerts[0].labels[\"\"]"),
        (&|b: &mut Value| b["alerts"][0]["annotations"][""] = json!("v"), "alerts[0].annotations[\"\"]"),
        (&|b: &mut Value| b["groupLabels"][""] = json!("v"), "groupLabels[\"\"]"),
    ] {
        assert_rejected(&with(mutate), SchemaErrorKind::Invalid, path, "non-empty name");
    }
}

#[test]
fn a_name_that_is_not_an_identifier_is_quoted_in_the_path_so_it_cannot_forge_a_log_line() {
    let utf8 = "température du disque";
    parse(&with(|b| b["alerts"][0]["labels"][utf8] = json!("v")), &Limits::default()).expect("UTF-8 names are valid");
    let forged = "x\nlevel=error msg=forged";
    let body = with(|b| b["alerts"][0]["labels"][forged] = json!("v".repeat(Limits::default().max_value_bytes + 1)));
    let err = rejected(&body);
    assert_eq!(err.path, r#"alerts[0].labels["x\nlevel=error msg=forged"]"#);
    assert!(!err.to_string().contains('\n'), "{err}");
}

#[test]
fn input_that_serde_repeats_in_its_errors_cannot_forge_a_log_line_or_make_a_long_one() {
    let forged = "x\nlevel=error msg=forged";
    // An unknown variant (serde's message repeats it) and a map key whose value has the wrong type (the path does).
    let status = rejected(&with(|b| b["alerts"][0]["status"] = json!(forged)));
    assert_eq!(status.path, "alerts[0].status");
    let key = rejected(&with(|b| b["alerts"][0]["labels"][forged] = json!(1)));
    for err in [&status, &key] {
        assert!(!err.to_string().contains('\n'), "{err}");
        assert!(err.to_string().contains(r"x\nlevel=error"), "escaped, not dropped: {err}");
    }
    let long = "k".repeat(1 << 20);
    let err = rejected(&with(|b| b["alerts"][0]["labels"][long.as_str()] = json!(1)));
    assert_eq!(err.kind, SchemaErrorKind::Invalid);
    assert!(err.to_string().len() < 1_024, "an error of {} bytes", err.to_string().len());
}

#[test]
fn a_quoted_name_over_the_limit_is_cut_at_a_character_boundary() {
    // One ASCII byte, then two-byte characters: the 256th byte falls inside one.
    let name = format!("k{}", "é".repeat(1 << 19));
    let err = rejected(&with(|b| b["alerts"][0]["labels"][name.as_str()] = json!("v")));
    assert_eq!(err.kind, SchemaErrorKind::LimitExceeded);
    assert_eq!(err.path, format!("alerts[0].labels[\"k{}\"…]", "é".repeat(127)));
}

/// A body of `alerts` copies of the base alert whose group labels hold `group_label_bytes` in all.
fn amplifying_body(alerts: usize, group_label_bytes: usize) -> Vec<u8> {
    with(|b| {
        let alert = b["alerts"][0].clone();
        b["alerts"] = Value::Array(vec![alert; alerts]);
        b["groupLabels"]["big"] = json!("g".repeat(group_label_bytes));
    })
}

#[test]
fn records_of_one_body_share_its_notification_in_memory() {
    let webhook = parse(&amplifying_body(3, 10_000), &Limits::default()).unwrap();
    let records = AlertRecord::from_webhook(webhook, Timestamp::now());
    assert!(std::sync::Arc::ptr_eq(&records[0].notification, &records[2].notification));
}

#[test]
fn records_larger_together_than_the_body_budget_refuse_the_body() {
    // Each record repeats the 10 kB group label: ten alerts are ~100 kB of records from an ~11 kB body.
    let limits = Limits { max_record_bytes_per_body: 50_000, ..Limits::default() };
    let records = AlertRecord::from_webhook(parse(&amplifying_body(10, 10_000), &limits).unwrap(), Timestamp::now());
    let error = AlertRecord::encode_all(&records, &limits).expect_err("over the per-body budget");
    assert_eq!((error.kind, error.path.as_str()), (SchemaErrorKind::LimitExceeded, "alerts"), "{error}");
    assert!(error.message.contains("alerts[0..=4]"), "the refusal stops at the record that crossed: {error}");

    let fitting = AlertRecord::from_webhook(parse(&amplifying_body(4, 10_000), &limits).unwrap(), Timestamp::now());
    let values = AlertRecord::encode_all(&fitting, &limits).expect("four records fit");
    assert!(values.iter().map(Vec::len).sum::<usize>() <= 50_000);
}

#[test]
fn a_record_larger_than_its_limit_refuses_the_body_naming_the_alert() {
    let limits = Limits { max_record_bytes: 5_000, ..Limits::default() };
    let body = with(|b| {
        let alert = b["alerts"][0].clone();
        let mut large = alert.clone();
        large["annotations"]["note"] = json!("n".repeat(6_000));
        b["alerts"] = json!([alert, large]);
    });
    let records = AlertRecord::from_webhook(parse(&body, &limits).unwrap(), Timestamp::now());
    let error = AlertRecord::encode_all(&records, &limits).expect_err("the second record is too large");
    assert_eq!((error.kind, error.path.as_str()), (SchemaErrorKind::LimitExceeded, "alerts[1]"), "{error}");
}
