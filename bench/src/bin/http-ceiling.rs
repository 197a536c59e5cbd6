//! `http-ceiling`: the HTTP framework's limit on this machine, for `scripts/bench.sh` to drive beside ingest.
//!
//! An actix-web server (the framework ingest is built on, with as many workers as ingest starts: one per core)
//! whose `POST /alerts` reads the whole body and answers 200 without parsing it or touching Kafka. The same load
//! against it and against ingest shows what parsing, validating and producing cost on top of HTTP.

use actix_web::{web, App, HttpResponse, HttpServer};
use clap::Parser;

/// The HTTP framework's limit: answers 200 to every POST /alerts without parsing it.
#[derive(Parser)]
struct Options {
    /// Port to listen on (127.0.0.1).
    #[arg(long, default_value_t = 28090)]
    port: u16,
}

async fn accept(body: web::Bytes) -> HttpResponse {
    std::hint::black_box(body);
    HttpResponse::Ok().finish()
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let port = Options::parse().port;
    HttpServer::new(|| {
        App::new()
            // Ingest's own body limit (server.max_body_bytes), so the largest bodies are read here too.
            .app_data(web::PayloadConfig::new(4 * 1024 * 1024))
            .route("/alerts", web::post().to(accept))
    })
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
