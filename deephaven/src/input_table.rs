//! Input tables: create them from an Arrow schema (append-only, keyed or
//! blink), publish them to the query scope, check an existing scope table
//! against the expected definition, and append or delete record batches. Both
//! upload the batch (DoPut into an export ticket) and hand it to the table
//! concurrently, the server accepting the request while the upload is still
//! streaming; the call returns once the server applied it (blink tables: once
//! it took the rows for its next update cycle) and the export is released.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use tonic::Code;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::flight;
use crate::proto::backplane::create_input_table_request::{input_table_kind, Definition, InputTableKind as KindProto};
use crate::proto::backplane::{AddTableRequest, CreateInputTableRequest, DeleteTableRequest, FetchTableRequest};
use crate::schema;
use crate::session::{check_created, TableService};
use crate::ticket::{scope_ticket, table_ref};

/// How an input table treats new rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputTableKind {
    /// Every row is appended.
    AppendOnly,
    /// A row whose key columns match an existing row replaces it; new keys append.
    Keyed {
        /// The key columns, all present in the schema.
        key_columns: Vec<String>,
    },
    /// Rows are seen by the tables derived from it for one update cycle, then dropped: the table itself keeps
    /// nothing. Added rows appear at the server's next periodic update cycle, which an append does not request.
    Blink,
}

impl InputTableKind {
    /// A keyed table on these columns.
    pub fn keyed<I, S>(key_columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::Keyed { key_columns: key_columns.into_iter().map(Into::into).collect() }
    }

    /// The key columns (empty for append-only tables).
    pub fn key_columns(&self) -> &[String] {
        match self {
            Self::AppendOnly | Self::Blink => &[],
            Self::Keyed { key_columns } => key_columns,
        }
    }

    fn to_proto(&self) -> KindProto {
        let kind = match self {
            Self::AppendOnly => input_table_kind::Kind::InMemoryAppendOnly(input_table_kind::InMemoryAppendOnly {}),
            Self::Keyed { key_columns } => {
                input_table_kind::Kind::InMemoryKeyBacked(input_table_kind::InMemoryKeyBacked {
                    key_columns: key_columns.clone(),
                })
            }
            Self::Blink => input_table_kind::Kind::Blink(input_table_kind::Blink {}),
        };
        KindProto { kind: Some(kind) }
    }
}

/// An input table published in the query scope, as this client expects it.
/// It holds no session state: it stays valid across reconnects as long as the
/// server keeps the table.
#[derive(Clone, Debug)]
pub struct InputTable {
    name: String,
    schema: SchemaRef,
    kind: InputTableKind,
}

impl InputTable {
    /// A handle on scope table `name`, taken on trust: nothing is checked until a write, which the server refuses
    /// if `name` is not an input table of these columns.
    pub fn new(name: impl Into<String>, schema: SchemaRef, kind: InputTableKind) -> Self {
        Self { name: name.into(), schema, kind }
    }

    /// The query-scope name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The columns batches must have, in this order.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Append-only or keyed.
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

/// A table-creating call succeeded at the gRPC level; check its own verdict.
impl Client {
    /// Whether the query scope holds a table called `name`.
    pub async fn scope_table_exists(&self, name: &str) -> Result<bool> {
        Ok(self.scope_table_schema(name).await?.is_some())
    }

    /// The schema of scope table `name` as the server describes it (field
    /// metadata includes `deephaven:type` and, on input tables,
    /// `deephaven:inputtable.isKey`), or `None` if there is no such table.
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

    /// Creates an input table and publishes it as `name`, replacing whatever
    /// the scope held under that name.
    pub async fn create_input_table(&self, name: &str, schema: SchemaRef, kind: InputTableKind) -> Result<InputTable> {
        const OPERATION: &str = "create input table";
        check_name(name)?;
        schema::validate_definition(&schema, &kind)?;
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
        Ok(InputTable { name: name.to_owned(), schema, kind })
    }

    /// Returns scope table `name` if it is an input table matching `schema` and
    /// `kind`, creates and publishes it if it does not exist, and fails with
    /// [`Error::SchemaMismatch`] if it exists with other columns, types or keys.
    ///
    /// Two clients ensuring the same missing table at once may both create it;
    /// the last publish wins.
    pub async fn ensure_input_table(&self, name: &str, schema: SchemaRef, kind: InputTableKind) -> Result<InputTable> {
        schema::validate_definition(&schema, &kind)?;
        match self.scope_table_schema(name).await? {
            None => self.create_input_table(name, schema, kind).await,
            Some(actual) => {
                let differences = schema::definition_differences(&schema, &kind, &actual);
                if !differences.is_empty() {
                    return Err(Error::SchemaMismatch { table: name.to_owned(), differences });
                }
                tracing::debug!(table = name, "existing input table matches");
                Ok(InputTable { name: name.to_owned(), schema, kind })
            }
        }
    }

    /// Appends (or, on a keyed table, upserts) the rows of `batch`; returns once
    /// they are visible in the table (blink tables: once the server took them for
    /// its next update cycle). The batch's columns must match the table's names,
    /// order and Deephaven types.
    ///
    /// Not idempotent on append-only tables: after a retryable error the rows
    /// may or may not have been added.
    pub async fn append(&self, table: &InputTable, batch: RecordBatch) -> Result<()> {
        self.change(table, batch, Change::Add).await
    }

    /// Deletes from a keyed table the rows whose keys `keys` holds (a batch of the
    /// key columns only). Other kinds of table refuse it.
    pub async fn delete(&self, table: &InputTable, keys: RecordBatch) -> Result<()> {
        self.change(table, keys, Change::Delete).await
    }

    async fn change(&self, table: &InputTable, batch: RecordBatch, change: Change) -> Result<()> {
        let operation = change.operation();
        if change == Change::Add {
            let differences = schema::column_differences(table.schema(), batch.schema_ref());
            if !differences.is_empty() {
                return Err(Error::SchemaMismatch { table: table.name.clone(), differences });
            }
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let session = self.session();
        let export = session.export(operation)?;
        let (input_table, rows) = (Some(scope_ticket(&table.name)), Some(export.ticket()));
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
    use prost::Message as _;

    use super::*;

    #[test]
    fn append_only_kind_sends_its_empty_message() {
        // CreateInputTableRequest.kind (field 4) = InputTableKind { in_memory_append_only (1) {} }
        let request = CreateInputTableRequest {
            result_id: None,
            definition: None,
            kind: Some(InputTableKind::AppendOnly.to_proto()),
        };
        assert_eq!(request.encode_to_vec(), vec![0x22, 0x02, 0x0a, 0x00]);
    }

    #[test]
    fn keyed_kind_lists_its_keys() {
        let kind = InputTableKind::keyed(["Fingerprint"]);
        assert_eq!(kind.key_columns(), ["Fingerprint".to_owned()]);
        let bytes = kind.to_proto().encode_to_vec();
        // field 2 (in_memory_key_backed) { field 1 (key_columns) "Fingerprint" }
        let mut expected = vec![0x12, 13, 0x0a, 11];
        expected.extend_from_slice(b"Fingerprint");
        assert_eq!(bytes, expected);
        assert!(InputTableKind::AppendOnly.key_columns().is_empty());
    }

    #[test]
    fn blink_kind_sends_its_empty_message() {
        // InputTableKind { blink (3) {} }
        assert_eq!(InputTableKind::Blink.to_proto().encode_to_vec(), vec![0x1a, 0x00]);
        assert!(InputTableKind::Blink.key_columns().is_empty());
    }

    #[test]
    fn scope_names_are_checked() {
        check_name("Alerts").expect("plain name");
        for bad in ["", "a/b", "two words"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
