//! Input tables: create them from an Arrow schema (append-only, keyed or blink), publish them to the query scope,
//! check an existing scope table against the expected definition (the checks are the `definition` module's), and
//! append or delete record batches. Both upload the batch (DoPut into an export ticket) and hand it to the table
//! concurrently, the server accepting the request while the upload is still streaming; the call returns once the
//! server applied it (blink tables: once it took the rows for its next update cycle) and the export is released.
//! A handle can be pinned to the table object its name stands for, so that a table created anew under the name
//! does not receive a writer's rows.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use std::sync::Arc;
use tonic::Code;

use crate::client::Client;
use crate::definition::{column_differences, definition_differences, validate_definition, InputTableKind};
use crate::error::{Error, Result};
use crate::flight;
use crate::proto::backplane::create_input_table_request::Definition;
use crate::proto::backplane::{AddTableRequest, CreateInputTableRequest, DeleteTableRequest, FetchTableRequest};
use crate::schema;
use crate::session::{check_created, Export, TableService};
use crate::ticket::{scope_ticket, table_ref};

/// An input table published in the query scope, as this client expects it. Unless pinned
/// ([`Client::pin_input_table`]) it holds no session state: it stays valid across reconnects as long as the server
/// keeps the table.
#[derive(Clone, Debug)]
pub struct InputTable {
    /// The query-scope name: what writes address unless the handle is pinned.
    name: String,
    /// The columns batches must have, in this order: an append is checked against it before anything is sent.
    schema: SchemaRef,
    /// As created or as given: writes do not consult it (the server enforces the kind).
    kind: InputTableKind,
    /// The table object the name stood for when it was pinned, held by this session: writes address it, whatever
    /// the name is given to later.
    pinned: Option<Arc<Export>>,
}

impl InputTable {
    /// A handle on scope table `name`, taken on trust: nothing is checked until a write, which the server refuses
    /// if `name` is not an input table of these columns.
    pub fn new(name: impl Into<String>, schema: SchemaRef, kind: InputTableKind) -> Self {
        Self { name: name.into(), schema, kind, pinned: None }
    }

    /// How the table treats new rows.
    pub fn kind(&self) -> &InputTableKind {
        &self.kind
    }
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains('/') || name.chars().any(char::is_whitespace) {
        return Err(Error::InvalidInput(format!("invalid query-scope name {name:?}")));
    }
    Ok(())
}

impl Client {
    /// Whether the query scope holds a table called `name`.
    pub async fn scope_table_exists(&self, name: &str) -> Result<bool> {
        Ok(self.scope_table_schema(name).await?.is_some())
    }

    /// The schema of scope table `name` as the server describes it (field metadata includes `deephaven:type` and, on
    /// input tables, `deephaven:inputtable.isKey`), or `None` if there is no such table.
    pub async fn scope_table_schema(&self, name: &str) -> Result<Option<SchemaRef>> {
        const OPERATION: &str = "fetch table";
        check_name(name)?;
        let session = self.session();
        let export = session.export(OPERATION)?;
        let request =
            FetchTableRequest { source_id: Some(table_ref(scope_ticket(name))), result_id: Some(export.ticket()) };
        let response = session.tables().fetch_table(request).await;
        export.release().await;
        let response = match response {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == Code::NotFound => return Ok(None),
            Err(status) => return Err(session.status_error(OPERATION, &status)),
        };
        check_created(OPERATION, &response)?;
        let schema = schema::decode_schema_header(&response.schema_header).map_err(|err| Error::Protocol {
            operation: OPERATION,
            message: format!("undecodable schema_header: {err}"),
        })?;
        Ok(Some(schema.into()))
    }

    /// `table`, pinned to the table object its scope name stands for now: writes through the returned handle keep
    /// going to that object even once the name is given to another table (a table created anew under the same
    /// name by another client), so they never add rows to a table its writer did not open. They then reach no
    /// reader of the name, which the writer can tell from what it reads back by name. Valid for this session only:
    /// after a reconnect, writes through it fail with [`Error::SessionLost`] and the table must be pinned again.
    pub async fn pin_input_table(&self, table: InputTable) -> Result<InputTable> {
        const OPERATION: &str = "pin input table";
        check_name(&table.name)?;
        let session = self.session();
        let export = session.export(OPERATION)?;
        let request = FetchTableRequest {
            source_id: Some(table_ref(scope_ticket(&table.name))),
            result_id: Some(export.ticket()),
        };
        let response = self.within(OPERATION, async {
            session.tables().fetch_table(request).await.map_err(|status| session.status_error(OPERATION, &status))
        });
        check_created(OPERATION, &response.await?.into_inner())?;
        Ok(InputTable { pinned: Some(Arc::new(export)), ..table })
    }

    /// Creates an input table and publishes it as `name`, replacing whatever the scope held under that name.
    pub async fn create_input_table(&self, name: &str, schema: SchemaRef, kind: InputTableKind) -> Result<InputTable> {
        const OPERATION: &str = "create input table";
        check_name(name)?;
        validate_definition(&schema, &kind)?;
        let request_schema = schema::encode_schema(&schema)?;
        let session = self.session();
        let request = CreateInputTableRequest {
            result_id: None,
            definition: Some(Definition::Schema(request_schema)),
            kind: Some(kind.to_proto()),
        };
        let create = |mut tables: TableService, ticket| async move {
            tables.create_input_table(CreateInputTableRequest { result_id: Some(ticket), ..request }).await
        };
        session.derive_table(OPERATION, create, |ticket| session.publish(ticket, name)).await?;
        tracing::info!(table = name, ?kind, "input table created and published");
        Ok(InputTable::new(name, schema, kind))
    }

    /// Returns scope table `name` if it is an input table matching `schema` and `kind`, creates and publishes it if it
    /// does not exist, and fails with [`Error::SchemaMismatch`] if it exists with other columns, types or keys.
    ///
    /// Two clients ensuring the same missing table at once may both create it; the last publish wins.
    pub async fn ensure_input_table(&self, name: &str, schema: SchemaRef, kind: InputTableKind) -> Result<InputTable> {
        validate_definition(&schema, &kind)?;
        match self.scope_table_schema(name).await? {
            None => self.create_input_table(name, schema, kind).await,
            Some(actual) => {
                let differences = definition_differences(&schema, &kind, &actual);
                if !differences.is_empty() {
                    return Err(Error::SchemaMismatch { table: name.to_owned(), differences });
                }
                tracing::debug!(table = name, "existing input table matches");
                Ok(InputTable::new(name, schema, kind))
            }
        }
    }

    /// Appends (or, on a keyed table, upserts) the rows of `batch`; returns once they are visible in the table (blink
    /// tables: once the server took them for its next update cycle). The batch's columns must match the table's
    /// names, order and Deephaven types.
    ///
    /// Not idempotent on append-only tables: after a retryable error the rows may or may not have been added.
    pub async fn append(&self, table: &InputTable, batch: RecordBatch) -> Result<()> {
        self.change(table, batch, Change::Add).await
    }

    /// Deletes from a keyed table the rows whose keys `keys` holds (a batch of the key columns only). Other kinds of
    /// table refuse it.
    pub async fn delete(&self, table: &InputTable, keys: RecordBatch) -> Result<()> {
        self.change(table, keys, Change::Delete).await
    }

    async fn change(&self, table: &InputTable, batch: RecordBatch, change: Change) -> Result<()> {
        let operation = change.operation();
        if change == Change::Add {
            let differences = column_differences(&table.schema, batch.schema_ref());
            if !differences.is_empty() {
                return Err(Error::SchemaMismatch { table: table.name.clone(), differences });
            }
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let session = self.session();
        let target = match &table.pinned {
            Some(pinned) if !pinned.belongs_to(&session) => {
                let message = format!("table {} was pinned in an earlier session", table.name);
                return Err(Error::SessionLost { operation, message });
            }
            Some(pinned) => pinned.ticket(),
            None => scope_ticket(&table.name),
        };
        let export = session.export(operation)?;
        let (input_table, rows) = (Some(target), Some(export.ticket()));
        let apply = async {
            let mut service = session.input_tables();
            let applied = match change {
                Change::Add => service
                    .add_table_to_input_table(AddTableRequest { input_table, table_to_add: rows })
                    .await
                    .map(drop),
                Change::Delete => service
                    .delete_table_from_input_table(DeleteTableRequest { input_table, table_to_remove: rows })
                    .await
                    .map(drop),
            };
            applied.map_err(|status| session.status_error(operation, &status))
        };
        let changed = self.within(operation, async {
            let (uploaded, applied) = tokio::join!(flight::upload(&session, export.id(), batch), apply);
            uploaded.and(applied)
        });
        let changed = changed.await;
        export.release().await;
        changed
    }
}

/// What a change does to an input table's rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Add,
    Delete,
}

impl Change {
    fn operation(self) -> &'static str {
        match self {
            Self::Add => "add to input table",
            Self::Delete => "delete from input table",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_names_are_checked() {
        check_name("Alerts").expect("plain name");
        for bad in ["", "a/b", "two words"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
