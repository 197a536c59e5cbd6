//! Connections that stop making progress are shut down, so that none holds a connection slot for long; connections
//! that keep making progress are not.

use crate::helpers::*;
use std::time::Duration;
use test_kit::metrics::sample;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Far above what the shortened request timeout and the keep-alive time allow a silent connection (about 6 s), far
/// below forever.
const SHUT_DOWN_WITHIN: Duration = Duration::from_secs(30);

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.address.trim_start_matches("http://")).await.expect("connecting to ingest")
}

/// Reads everything ingest sends until it closes the connection (end of stream or a reset), and returns it; `None`
/// if the connection is still open after [`SHUT_DOWN_WITHIN`].
async fn read_until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut received = Vec::new();
    let reading = async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => received.extend_from_slice(&buffer[..read]),
            }
        }
    };
    tokio::time::timeout(SHUT_DOWN_WITHIN, reading).await.ok()?;
    Some(String::from_utf8_lossy(&received).into_owned())
}

/// Reads one answer (its head, then as many body bytes as it declares) and returns its status line.
async fn read_answer(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.expect("an answer"));
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let length = head
        .lines()
        .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
        .and_then(|length| length.trim().parse::<usize>().ok())
        .expect("a declared length");
    stream.read_exact(&mut vec![0u8; length]).await.expect("the answer's body");
    head.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_that_stop_sending_are_shut_down() {
    let app = spawn_app(1, |settings| settings.server.request_timeout = Duration::from_secs(1)).await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let chunked = |content_type: &str| {
        format!("POST /alerts HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n")
    };
    // Answered before its body was read (actix then drains a chunked body, with no timer of its own).
    let mut answered_early = connect(&app).await;
    answered_early.write_all(chunked("text/plain").as_bytes()).await.unwrap();
    // Answered when the body did not come within the request timeout; the body still does not come.
    let mut body_never_sent = connect(&app).await;
    body_never_sent.write_all(chunked("application/json").as_bytes()).await.unwrap();
    // A first request answered, then one byte of the next head (actix times only a connection's first head).
    let mut second_head_trickled = connect(&app).await;
    second_head_trickled.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes()).await.unwrap();
    assert_eq!(read_answer(&mut second_head_trickled).await, "HTTP/1.1 200 OK");
    second_head_trickled.write_all(b"G").await.unwrap();

    for (name, stream, answer) in [
        ("answered early", &mut answered_early, "HTTP/1.1 415"),
        ("body never sent", &mut body_never_sent, "HTTP/1.1 503"),
        ("second head trickled", &mut second_head_trickled, ""),
    ] {
        let received = read_until_closed(stream).await.unwrap_or_else(|| panic!("{name}: still open"));
        assert!(received.starts_with(answer), "{name}: {received:?}");
    }
    assert_eq!(sample(&app.metrics().await, "ingest_connections_timed_out_total"), 3.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_that_keeps_making_requests_stays_open_past_the_deadline() {
    let app = spawn_app(1, |settings| settings.server.request_timeout = Duration::from_secs(1)).await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let mut stream = connect(&app).await;
    // A request a second (the pace of a client, not a wait for anything) for twice the time a silent connection
    // is allowed (request timeout + keep-alive), all on the one connection.
    for request in 0..12 {
        stream.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes()).await.unwrap();
        assert_eq!(read_answer(&mut stream).await, "HTTP/1.1 200 OK", "request {request}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert_eq!(sample(&app.metrics().await, "ingest_connections_timed_out_total"), 0.0);
}
