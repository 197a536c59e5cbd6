//! Reading and deriving tables server-side: snapshots (DoGet of a scope table) and chains of table [`Operation`]s
//! (filters, views, joins, aggregations such as the newest row per key) whose result is published to the query scope,
//! where the server keeps it ticking with its sources, or downloaded once.

use arrow::array::RecordBatch;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::flight;
use crate::proto::backplane::compare_condition::CompareOperation;
use crate::proto::backplane::sort_descriptor::SortDirection;
use crate::proto::backplane::{
    self as proto, agg_spec, aggregation, condition, literal, time_table_request, value, AggSpec, AggregateAllRequest,
    AggregateRequest, CaseSensitivity, CompareCondition, Condition, ExportedTableCreationResponse, FilterTableRequest,
    HeadOrTailRequest, MergeTablesRequest, NaturalJoinTablesRequest, Reference, SelectOrUpdateRequest, SortDescriptor,
    SortTableRequest, TableReference, Ticket, TimeTableRequest, UnstructuredFilterTableRequest, Value,
};
use crate::session::{check_created, Export, Session, TableService};
use crate::ticket::{scope_ticket, table_ref};
use std::sync::Arc;
use std::time::Duration;

/// A row filter evaluated by the server.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Filter {
    /// `column == value` for a string column, compared case-sensitively; sent as a structured condition (no quoting
    /// issues).
    Equals {
        /// The column to compare.
        column: String,
        /// The value it must equal.
        value: String,
    },
    /// A Deephaven query-language condition, e.g. `Severity in "critical", "page"`.
    Expression(String),
}

impl Filter {
    /// `column == value`.
    pub fn equals(column: impl Into<String>, value: impl Into<String>) -> Self {
        Self::Equals { column: column.into(), value: value.into() }
    }

    /// A query-language condition.
    pub fn expression(condition: impl Into<String>) -> Self {
        Self::Expression(condition.into())
    }
}

/// The structured condition for `column == value`.
fn equals_condition(column: &str, value: &str) -> Condition {
    let literal = proto::Literal { value: Some(literal::Value::StringValue(value.to_owned())) };
    let compare = CompareCondition {
        operation: CompareOperation::Equals as i32,
        case_sensitivity: CaseSensitivity::MatchCase as i32,
        lhs: Some(Value { data: Some(value::Data::Reference(Reference { column_name: column.to_owned() })) }),
        rhs: Some(Value { data: Some(value::Data::Literal(literal)) }),
    };
    Condition { data: Some(condition::Data::Compare(compare)) }
}

/// How an aggregation combines the rows of one group.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Aggregate {
    /// The mean of the values (numeric columns).
    Avg,
    /// The greatest value.
    Max,
    /// The middle value; for an even-sized group of numbers, the mean of the two middle ones.
    Median,
    /// The value at this fraction (0 to 1) of the sorted values.
    Percentile(f64),
    /// The row that sorts first by these columns (ascending; ties: the row added first).
    SortedFirst(Vec<String>),
    /// The row that sorts last by these columns (ascending; ties: the row added last).
    SortedLast(Vec<String>),
}

impl Aggregate {
    /// [`Aggregate::SortedFirst`] by these columns.
    pub fn sorted_first<I: IntoIterator<Item = S>, S: Into<String>>(columns: I) -> Self {
        Self::SortedFirst(columns.into_iter().map(Into::into).collect())
    }

    /// [`Aggregate::SortedLast`] by these columns.
    pub fn sorted_last<I: IntoIterator<Item = S>, S: Into<String>>(columns: I) -> Self {
        Self::SortedLast(columns.into_iter().map(Into::into).collect())
    }

    fn to_proto(&self) -> AggSpec {
        let sorted = |columns: &[String]| agg_spec::AggSpecSorted {
            columns: columns
                .iter()
                .map(|column| agg_spec::AggSpecSortedColumn { column_name: column.clone() })
                .collect(),
        };
        let spec = match self {
            Self::Avg => agg_spec::Type::Avg(agg_spec::AggSpecAvg {}),
            Self::Max => agg_spec::Type::Max(agg_spec::AggSpecMax {}),
            Self::Median => agg_spec::Type::Median(agg_spec::AggSpecMedian { average_evenly_divided: true }),
            Self::Percentile(percentile) => agg_spec::Type::Percentile(agg_spec::AggSpecPercentile {
                percentile: *percentile,
                average_evenly_divided: false,
            }),
            Self::SortedFirst(columns) => agg_spec::Type::SortedFirst(sorted(columns)),
            Self::SortedLast(columns) => agg_spec::Type::SortedLast(sorted(columns)),
        };
        AggSpec { r#type: Some(spec) }
    }
}

/// One server-side table operation, applied to the result of the one before it. Column lists and formulas are
/// Deephaven query language: build them from constants, never from data.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Operation {
    /// The rows that pass the filter.
    Filter(Filter),
    /// Exactly these columns, in this order (Deephaven's `view`: computed when read, nothing stored).
    View(Vec<String>),
    /// All columns plus these formulas, each evaluated once per row as it arrives (Deephaven's `update`).
    Update(Vec<String>),
    /// All columns plus these formulas, evaluated whenever read (Deephaven's `update_view`: nothing stored).
    UpdateView(Vec<String>),
    /// One row per distinct `group_by` value, every other column aggregated by `aggregate`.
    AggregateAll {
        /// How each group's rows combine.
        aggregate: Aggregate,
        /// The key columns of the result.
        group_by: Vec<String>,
    },
    /// One row per distinct `group_by` value with the columns each of `aggregations` makes; a value no row has any
    /// more leaves the result.
    Aggregate {
        /// What the result holds for each group, in order.
        aggregations: Vec<Aggregation>,
        /// The key columns of the result.
        group_by: Vec<String>,
    },
    /// The last rows, at most this many (Deephaven's `tail`).
    Tail(i64),
    /// The rows in this order, by the first key, then the next (Deephaven's `sort`).
    Sort(Vec<SortKey>),
    /// Every row, with the `add` columns (`"Output=Input"` or a bare name) of the row of scope table `right` whose
    /// `on` columns equal its own (null where none does); with no `on` columns, of `right`'s only row (Deephaven's
    /// `natural_join`). A change of that row changes the joined column of every row.
    NaturalJoin {
        /// The scope table joined in.
        right: String,
        /// The columns to match (`"Left=Right"` or a bare name common to both).
        on: Vec<String>,
        /// The columns added from `right`.
        add: Vec<String>,
    },
}

/// One column of an [`Operation::Sort`] and its direction.
#[derive(Clone, Debug, PartialEq)]
pub struct SortKey {
    /// The column sorted by.
    pub column: String,
    /// Largest first.
    pub descending: bool,
}

impl SortKey {
    /// Largest first.
    pub fn descending(column: impl Into<String>) -> Self {
        Self { column: column.into(), descending: true }
    }

    fn to_proto(&self) -> SortDescriptor {
        let direction = if self.descending { SortDirection::Descending } else { SortDirection::Ascending };
        SortDescriptor { column_name: self.column.clone(), is_absolute: false, direction: direction.into() }
    }
}

/// Columns an [`Operation::Aggregate`] makes from each group's rows.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Aggregation {
    /// The number of rows in the group, into this column (Deephaven's `count_by`).
    Count(String),
    /// These columns (`"Output=Input"` or a bare name), each combined by the aggregate.
    Columns(Aggregate, Vec<String>),
}

impl Aggregation {
    /// [`Aggregation::Columns`] of these columns.
    pub fn columns<I: IntoIterator<Item = S>, S: Into<String>>(aggregate: Aggregate, columns: I) -> Self {
        Self::Columns(aggregate, columns.into_iter().map(Into::into).collect())
    }

    fn to_proto(&self) -> proto::Aggregation {
        let aggregation = match self {
            Self::Count(column) => {
                aggregation::Type::Count(aggregation::AggregationCount { column_name: column.clone() })
            }
            Self::Columns(aggregate, columns) => aggregation::Type::Columns(aggregation::AggregationColumns {
                spec: Some(aggregate.to_proto()),
                match_pairs: columns.clone(),
            }),
        };
        proto::Aggregation { r#type: Some(aggregation) }
    }
}

impl Operation {
    /// [`Operation::View`] of these columns.
    pub fn view<I: IntoIterator<Item = S>, S: Into<String>>(columns: I) -> Self {
        Self::View(columns.into_iter().map(Into::into).collect())
    }

    /// [`Operation::AggregateAll`] grouped by these columns.
    pub fn aggregate_all<I: IntoIterator<Item = S>, S: Into<String>>(aggregate: Aggregate, group_by: I) -> Self {
        Self::AggregateAll { aggregate, group_by: group_by.into_iter().map(Into::into).collect() }
    }

    /// [`Operation::Aggregate`] of these aggregations, grouped by these columns.
    pub fn aggregate<I: IntoIterator<Item = S>, S: Into<String>>(aggregations: Vec<Aggregation>, group_by: I) -> Self {
        Self::Aggregate { aggregations, group_by: group_by.into_iter().map(Into::into).collect() }
    }

    /// The number of rows per distinct `group_by` value, into `column` (Deephaven's `count_by`).
    pub fn count<I: IntoIterator<Item = S>, S: Into<String>>(column: impl Into<String>, group_by: I) -> Self {
        Self::aggregate(vec![Aggregation::Count(column.into())], group_by)
    }

    /// [`Operation::NaturalJoin`] with `right`'s only row: its `add` columns on every row.
    pub fn join_single_row<I: IntoIterator<Item = S>, S: Into<String>>(right: impl Into<String>, add: I) -> Self {
        Self::NaturalJoin { right: right.into(), on: Vec::new(), add: add.into_iter().map(Into::into).collect() }
    }

    /// Sends the operation: its result goes to export `result`.
    async fn send(
        &self,
        mut tables: TableService,
        source: TableReference,
        result: Ticket,
    ) -> std::result::Result<tonic::Response<ExportedTableCreationResponse>, tonic::Status> {
        let (result_id, source_id) = (Some(result), Some(source));
        let strings = |items: &[String]| items.to_vec();
        match self {
            Self::Filter(Filter::Equals { column, value }) => {
                let filters = vec![equals_condition(column, value)];
                tables.filter(FilterTableRequest { result_id, source_id, filters }).await
            }
            Self::Filter(Filter::Expression(condition)) => {
                let filters = vec![condition.clone()];
                tables.unstructured_filter(UnstructuredFilterTableRequest { result_id, source_id, filters }).await
            }
            Self::View(columns) => {
                tables.view(SelectOrUpdateRequest { result_id, source_id, column_specs: strings(columns) }).await
            }
            Self::Update(formulas) => {
                tables.update(SelectOrUpdateRequest { result_id, source_id, column_specs: strings(formulas) }).await
            }
            Self::UpdateView(formulas) => {
                let request = SelectOrUpdateRequest { result_id, source_id, column_specs: strings(formulas) };
                tables.update_view(request).await
            }
            Self::AggregateAll { aggregate, group_by } => {
                let spec = Some(aggregate.to_proto());
                let request = AggregateAllRequest { result_id, source_id, spec, group_by_columns: strings(group_by) };
                tables.aggregate_all(request).await
            }
            Self::Aggregate { aggregations, group_by } => {
                let request = AggregateRequest {
                    result_id,
                    source_id,
                    preserve_empty: false,
                    aggregations: aggregations.iter().map(Aggregation::to_proto).collect(),
                    group_by_columns: strings(group_by),
                };
                tables.aggregate(request).await
            }
            Self::Tail(rows) => tables.tail(HeadOrTailRequest { result_id, source_id, num_rows: *rows }).await,
            Self::Sort(keys) => {
                let sorts = keys.iter().map(SortKey::to_proto).collect();
                tables.sort(SortTableRequest { result_id, source_id, sorts }).await
            }
            Self::NaturalJoin { right, on, add } => {
                let request = NaturalJoinTablesRequest {
                    result_id,
                    left_id: source_id,
                    right_id: Some(table_ref(scope_ticket(right))),
                    columns_to_match: strings(on),
                    columns_to_add: strings(add),
                };
                tables.natural_join_tables(request).await
            }
        }
    }
}

/// The exports of a chain of operations, released together once its result was published or downloaded (a
/// published result keeps what it derives from alive on the server).
struct Chain {
    exports: Vec<Export>,
}

impl Chain {
    /// Applies `operations` to `source`, in order; the last export holds the result.
    async fn run(
        session: &Arc<Session>,
        operation: &'static str,
        source: TableReference,
        operations: &[Operation],
    ) -> Result<Self> {
        if operations.is_empty() {
            return Err(Error::InvalidInput("a derived table needs at least one operation".into()));
        }
        let mut chain = Chain { exports: Vec::with_capacity(operations.len()) };
        let mut input = source;
        for step in operations {
            let export = session.export(operation)?;
            let ticket = export.ticket();
            chain.exports.push(export);
            let response = match step.send(session.tables(), input, ticket.clone()).await {
                Ok(response) => response.into_inner(),
                Err(status) => {
                    chain.release().await;
                    return Err(session.status_error(operation, &status));
                }
            };
            if let Err(err) = check_created(operation, &response) {
                chain.release().await;
                return Err(err);
            }
            input = table_ref(ticket);
        }
        Ok(chain)
    }

    fn result(&self) -> Ticket {
        self.exports.last().expect("a chain has at least one operation").ticket()
    }

    async fn release(self) {
        for export in self.exports {
            export.release().await;
        }
    }
}

impl Client {
    /// Reads scope table `name` (a snapshot of its current rows).
    pub async fn snapshot(&self, name: &str) -> Result<Vec<RecordBatch>> {
        let session = self.session();
        session.check_alive("snapshot")?;
        self.within("snapshot", flight::download(&session, "snapshot", &scope_ticket(name))).await
    }

    /// Publishes as `name` the result of `operations` applied to scope table `source`. The server keeps it up to
    /// date as `source` changes; it is not an input table, so nobody can add or delete its rows.
    pub async fn publish_derived(&self, source: &str, operations: &[Operation], name: &str) -> Result<()> {
        const OPERATION: &str = "derive table";
        let session = self.session();
        let chain = Chain::run(&session, OPERATION, table_ref(scope_ticket(source)), operations).await?;
        let published = session.publish(chain.result(), name).await;
        chain.release().await;
        published?;
        tracing::info!(source, table = name, ?operations, "derived table published");
        Ok(())
    }

    /// Publishes as `name` the result of `operations` applied to the rows of every scope table in `sources`, one
    /// after the other (their columns must agree). The server keeps it up to date as any source changes; which
    /// sources it merges is fixed when it is published.
    pub async fn publish_merged(&self, sources: &[&str], operations: &[Operation], name: &str) -> Result<()> {
        const OPERATION: &str = "merge tables";
        if sources.is_empty() {
            return Err(Error::InvalidInput("a merge needs at least one source table".into()));
        }
        let session = self.session();
        let merged = session.export(OPERATION)?;
        let request = MergeTablesRequest {
            result_id: Some(merged.ticket()),
            source_ids: sources.iter().map(|source| table_ref(scope_ticket(source))).collect(),
        };
        let published = async {
            let response = session.tables().merge_tables(request).await;
            check_created(
                OPERATION,
                &response.map_err(|status| session.status_error(OPERATION, &status))?.into_inner(),
            )?;
            let chain = Chain::run(&session, OPERATION, table_ref(merged.ticket()), operations).await?;
            let published = session.publish(chain.result(), name).await;
            chain.release().await;
            published
        }
        .await;
        merged.release().await;
        published?;
        tracing::info!(?sources, table = name, ?operations, "merged table published");
        Ok(())
    }

    /// Publishes as `name` a one-row table whose `Now` column holds the server's time, moved on every `period`. A
    /// derived table that joins it ([`Operation::join_single_row`]) sees `Now` change on every row each `period`,
    /// so its filters on time windows are evaluated again and rows leave a window as time passes. Its rows cost
    /// nothing: the time column is computed from the row number.
    pub async fn publish_clock(&self, name: &str, period: Duration) -> Result<()> {
        const OPERATION: &str = "publish clock";
        let period_nanos = i64::try_from(period.as_nanos()).ok().filter(|nanos| *nanos > 0).ok_or_else(|| {
            Error::InvalidInput(format!("a clock's period must be positive and below 292 years, not {period:?}"))
        })?;
        let session = self.session();
        let ticks = session.export(OPERATION)?;
        let request = TimeTableRequest {
            result_id: Some(ticks.ticket()),
            // The server's "no start time": the first tick now, not one per period since the epoch.
            start_time: Some(time_table_request::StartTime::StartTimeNanos(i64::MIN)),
            period: Some(time_table_request::Period::PeriodNanos(period_nanos)),
        };
        let published = async {
            let response = session.tables().time_table(request).await;
            check_created(
                OPERATION,
                &response.map_err(|status| session.status_error(OPERATION, &status))?.into_inner(),
            )?;
            let now = [Operation::Tail(1), Operation::view(["Now=Timestamp"])];
            let chain = Chain::run(&session, OPERATION, table_ref(ticks.ticket()), &now).await?;
            let published = session.publish(chain.result(), name).await;
            chain.release().await;
            published
        }
        .await;
        ticks.release().await;
        published?;
        tracing::info!(table = name, ?period, "clock published");
        Ok(())
    }

    /// The current rows of `operations` applied to scope table `source`, computed by the server and downloaded
    /// once (nothing is published).
    pub async fn derived_snapshot(&self, source: &str, operations: &[Operation]) -> Result<Vec<RecordBatch>> {
        const OPERATION: &str = "derived snapshot";
        let session = self.session();
        let chain = Chain::run(&session, OPERATION, table_ref(scope_ticket(source)), operations).await?;
        let downloaded = self.within(OPERATION, flight::download(&session, OPERATION, &chain.result())).await;
        chain.release().await;
        downloaded
    }

    /// Publishes as `name` the scope table `source` with the columns `formulas` add (Deephaven's `update`, e.g.
    /// `"SeenAt = now()"`). The server evaluates a formula once per row, when the row arrives, and keeps the view
    /// ticking with its source.
    pub async fn publish_updated_view(&self, source: &str, formulas: &[&str], name: &str) -> Result<()> {
        let update = Operation::Update(formulas.iter().map(|formula| (*formula).to_owned()).collect());
        self.publish_derived(source, &[update], name).await
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn equals_filter_is_a_compare_condition() {
        let condition = equals_condition("Status", "firing");
        let Some(condition::Data::Compare(compare)) = &condition.data else {
            panic!("not a compare: {condition:?}");
        };
        assert_eq!(compare.operation, 4, "EQUALS");
        assert_eq!(compare.case_sensitivity, 0, "MATCH_CASE");
        let literal = proto::Literal { value: Some(literal::Value::StringValue("firing".into())) };
        assert_eq!(compare.rhs, Some(Value { data: Some(value::Data::Literal(literal)) }));
        // Condition.compare is field 4; lhs (3) = reference (1) { column_name (1) }
        let bytes = condition.encode_to_vec();
        assert_eq!(bytes[0], 0x22);
        let decoded = Condition::decode(bytes.as_slice()).expect("round trip");
        assert_eq!(decoded, condition);
    }

    #[test]
    fn sorted_aggregations_name_their_columns() {
        // AggSpec.sorted_last (16) { columns (1) { column_name (1) "A" } }
        let bytes = Aggregate::sorted_last(["A"]).to_proto().encode_to_vec();
        assert_eq!(bytes, [0x82, 0x01, 5, 0x0a, 3, 0x0a, 1, b'A']);
        let first = Aggregate::sorted_first(["A"]).to_proto().encode_to_vec();
        assert_eq!(first[..2], [0x7a, 5], "sorted_first is field 15");
    }

    #[test]
    fn sort_keys_carry_the_servers_direction_numbers() {
        // SortDescriptor { column_name (1) "A", direction (3) }: DESCENDING is -1 (an enum varint of ten bytes).
        let descending = SortKey::descending("A").to_proto();
        assert_eq!(descending.direction, -1);
        assert_eq!(SortKey { column: "A".into(), descending: false }.to_proto().direction, 1);
        let bytes = descending.encode_to_vec();
        assert_eq!(bytes[..3], [0x0a, 1, b'A']);
        assert_eq!(bytes[3], 0x18, "direction is field 3");
        assert_eq!(SortDescriptor::decode(bytes.as_slice()).expect("round trip"), descending);
    }
}
