//! Arrow Flight transfers on the session's channel: DoPut uploads a record
//! batch into a new export ticket, DoGet reads a table (scope or export
//! ticket) back as record batches. Deephaven's Barrage `app_metadata` on the
//! returned batches is ignored by the Arrow decoder.

use arrow::array::RecordBatch;
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::FlightData;
use futures::{StreamExt as _, TryStreamExt as _};

use crate::error::{Error, Result};
use crate::proto::backplane::Ticket;
use crate::session::Session;
use crate::ticket::{export_descriptor, flight_ticket, ExportId};

/// The DoPut messages that create export `id` from `batch`: the schema with
/// the export's path descriptor, then the batch (split if very large).
pub(crate) async fn encode_upload(id: ExportId, batch: RecordBatch) -> Result<Vec<FlightData>> {
    FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(export_descriptor(id)))
        .build(futures::stream::iter([Ok(batch)]))
        .try_collect()
        .await
        .map_err(|error| Error::from_flight("encode batch", error, false))
}

/// Streams `messages` with DoPut and waits for the server to complete the
/// call: only then is the export fully populated.
pub(crate) async fn upload(session: &Session, messages: Vec<FlightData>) -> Result<()> {
    const OPERATION: &str = "upload";
    let mut acks = session
        .flight()
        .do_put(futures::stream::iter(messages))
        .await
        .map_err(|status| session.status_error(OPERATION, &status))?
        .into_inner();
    while acks.message().await.map_err(|status| session.status_error(OPERATION, &status))?.is_some() {}
    Ok(())
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
