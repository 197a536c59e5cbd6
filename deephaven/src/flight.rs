//! Arrow Flight transfers on the session's channel: DoPut uploads a record batch into a new export ticket, DoGet reads
//! a table (scope or export ticket) back as record batches. Deephaven's Barrage `app_metadata` on the returned batches
//! is ignored by the Arrow decoder.

use arrow::array::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::FlightData;
use futures::{StreamExt as _, TryStreamExt as _};
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::proto::backplane::Ticket;
use crate::session::Session;
use crate::ticket::{export_descriptor, flight_ticket, ExportId};

/// Uploads `batch` with DoPut into export `id` (the schema with the export's path descriptor, then the batch, split
/// into messages of the encoder's default size) and waits for the server to complete the call: only then is the export
/// fully populated. The messages are encoded while they are sent, so a batch is never held twice, as rows and as a
/// whole encoded copy.
pub(crate) async fn upload(session: &Session, id: ExportId, batch: RecordBatch) -> Result<()> {
    const OPERATION: &str = "upload";
    let (encoding_failed, failure) = oneshot::channel();
    let messages = encoded(id, futures::stream::iter([Ok(batch)]), encoding_failed);
    let call = async {
        let mut acks = session
            .flight()
            .do_put(messages)
            .await
            .map_err(|status| session.status_error(OPERATION, &status))?
            .into_inner();
        while acks.message().await.map_err(|status| session.status_error(OPERATION, &status))?.is_some() {}
        Ok(())
    };
    tokio::select! {
        done = call => done,
        // Dropping the call cancels it, so the server never completes an export from the messages before the failure.
        Ok(error) = failure => Err(Error::from_flight("encode batch", error, false)),
    }
}

/// The DoPut messages of `batches`, ending only when every batch was encoded whole: an error goes to `failed` and the
/// stream then stays open, because a stream that ended would upload what came before the error as if it were all of it.
fn encoded(
    id: ExportId,
    batches: impl futures::Stream<Item = std::result::Result<RecordBatch, FlightError>> + Send + 'static,
    failed: oneshot::Sender<FlightError>,
) -> impl futures::Stream<Item = FlightData> + Send + 'static {
    let mut failed = Some(failed);
    FlightDataEncoderBuilder::new().with_flight_descriptor(Some(export_descriptor(id))).build(batches).flat_map(
        move |message| match message {
            Ok(message) => futures::stream::iter(Some(message)).left_stream(),
            Err(error) => {
                if let Some(failed) = failed.take() {
                    let _ = failed.send(error);
                }
                futures::stream::pending().right_stream()
            }
        },
    )
}

/// Reads the table behind `ticket` with DoGet.
pub(crate) async fn download(session: &Session, operation: &'static str, ticket: &Ticket) -> Result<Vec<RecordBatch>> {
    let stream = session
        .flight()
        .do_get(flight_ticket(ticket))
        .await
        .map_err(|status| session.status_error(operation, &status))?
        .into_inner();
    FlightRecordBatchStream::new_from_flight_data(stream.map(|item| item.map_err(FlightError::from)))
        .try_collect()
        .await
        .map_err(|error| session.flight_error(operation, error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use futures::FutureExt as _;
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        RecordBatch::try_from_iter([("Count", Arc::new(Int64Array::from(vec![1, 2])) as _)]).expect("batch")
    }

    #[tokio::test]
    async fn an_upload_stream_ends_once_every_batch_is_encoded() {
        let (failed, failure) = oneshot::channel();
        let messages: Vec<FlightData> =
            encoded(1, futures::stream::iter([Ok(batch()), Ok(batch())]), failed).collect().await;
        assert_eq!(messages.len(), 3, "the schema, then each batch");
        assert!(failure.await.is_err(), "no failure reported");
    }

    #[tokio::test]
    async fn an_encoding_failure_is_reported_and_never_ends_the_upload() {
        let (failed, failure) = oneshot::channel();
        let batches = futures::stream::iter([Ok(batch()), Err(FlightError::protocol("cannot encode"))]);
        let mut messages = Box::pin(encoded(1, batches, failed));
        assert!(messages.next().await.is_some(), "the schema");
        assert!(messages.next().await.is_some(), "the first batch");
        assert!(messages.next().now_or_never().is_none(), "the stream neither ends nor yields after the failure");
        assert!(failure.await.expect("a failure").to_string().contains("cannot encode"));
    }
}
