//! Reading and deriving tables server-side: snapshots (DoGet of a scope
//! table), aggregations (e.g. the highest `KafkaOffset` per `KafkaPartition`)
//! and views published to the query scope (filtered, or with added columns),
//! which keep ticking with their source.

use arrow::array::RecordBatch;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::flight;
use crate::proto::backplane::compare_condition::CompareOperation;
use crate::proto::backplane::{
    agg_spec, aggregation, condition, literal, value, AggSpec, AggregateRequest, Aggregation, CaseSensitivity,
    CompareCondition, Condition, FilterTableRequest, Reference, SelectOrUpdateRequest, UnstructuredFilterTableRequest,
    Value,
};
use crate::session::TableService;
use crate::ticket::{scope_ticket, table_ref};

/// A constant in a structured [`Filter`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Literal {
    /// A string (compared case-sensitively).
    String(String),
    /// A 64-bit integer (matches int and long columns).
    Long(i64),
    /// A double.
    Double(f64),
    /// A boolean.
    Bool(bool),
}

impl From<&str> for Literal {
    fn from(value: &str) -> Self {
        Self::String(value.to_owned())
    }
}

impl From<String> for Literal {
    fn from(value: String) -> Self {
        Self::String(value)
    }
}

impl From<i64> for Literal {
    fn from(value: i64) -> Self {
        Self::Long(value)
    }
}

impl From<i32> for Literal {
    fn from(value: i32) -> Self {
        Self::Long(value.into())
    }
}

impl From<f64> for Literal {
    fn from(value: f64) -> Self {
        Self::Double(value)
    }
}

impl From<bool> for Literal {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

impl Literal {
    fn to_proto(&self) -> crate::proto::backplane::Literal {
        let value = match self {
            Self::String(s) => literal::Value::StringValue(s.clone()),
            Self::Long(n) => literal::Value::LongValue(*n),
            Self::Double(x) => literal::Value::DoubleValue(*x),
            Self::Bool(b) => literal::Value::BoolValue(*b),
        };
        crate::proto::backplane::Literal { value: Some(value) }
    }
}

/// A row filter evaluated by the server.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Filter {
    /// `column == value`, sent as a structured condition (no quoting issues).
    Equals {
        /// The column to compare.
        column: String,
        /// The value it must equal.
        value: Literal,
    },
    /// A Deephaven query-language condition, e.g. `Severity in "critical", "page"`.
    Expression(String),
}

impl Filter {
    /// `column == value`.
    pub fn equals(column: impl Into<String>, value: impl Into<Literal>) -> Self {
        Self::Equals { column: column.into(), value: value.into() }
    }

    /// A query-language condition.
    pub fn expression(condition: impl Into<String>) -> Self {
        Self::Expression(condition.into())
    }
}

/// The structured condition for `column == value`.
fn equals_condition(column: &str, value: &Literal) -> Condition {
    let compare = CompareCondition {
        operation: CompareOperation::Equals as i32,
        case_sensitivity: CaseSensitivity::MatchCase as i32,
        lhs: Some(Value { data: Some(value::Data::Reference(Reference { column_name: column.to_owned() })) }),
        rhs: Some(Value { data: Some(value::Data::Literal(value.to_proto())) }),
    };
    Condition { data: Some(condition::Data::Compare(compare)) }
}

impl Client {
    /// Reads scope table `name` (a snapshot of its current rows).
    pub async fn snapshot(&self, name: &str) -> Result<Vec<RecordBatch>> {
        let session = self.session();
        session.check_alive("snapshot")?;
        self.within("snapshot", flight::download(&session, "snapshot", &scope_ticket(name))).await
    }

    /// One row per distinct `group_by` value with the maximum of each
    /// `match_pairs` entry (`"Output=Input"` or a bare column name), e.g.
    /// `aggregate_max_by("AlertLog", &["KafkaPartition"], &["MaxOffset=KafkaOffset"])`.
    pub async fn aggregate_max_by(
        &self,
        source: &str,
        group_by: &[&str],
        match_pairs: &[&str],
    ) -> Result<Vec<RecordBatch>> {
        const OPERATION: &str = "aggregate";
        if match_pairs.is_empty() {
            return Err(Error::InvalidInput("aggregate_max_by needs at least one column".into()));
        }
        let session = self.session();
        let max = Aggregation {
            r#type: Some(aggregation::Type::Columns(aggregation::AggregationColumns {
                spec: Some(AggSpec { r#type: Some(agg_spec::Type::Max(agg_spec::AggSpecMax {})) }),
                match_pairs: match_pairs.iter().map(|s| (*s).to_owned()).collect(),
            })),
        };
        let request = AggregateRequest {
            result_id: None,
            source_id: Some(table_ref(scope_ticket(source))),
            preserve_empty: false,
            aggregations: vec![max],
            group_by_columns: group_by.iter().map(|s| (*s).to_owned()).collect(),
        };
        let aggregate = |mut tables: TableService, ticket| async move {
            tables.aggregate(AggregateRequest { result_id: Some(ticket), ..request }).await
        };
        let download = |ticket| {
            let session = &session;
            async move { self.within(OPERATION, flight::download(session, OPERATION, &ticket)).await }
        };
        session.derive_table(OPERATION, aggregate, download).await
    }

    /// Publishes as `name` the scope table `source` with the columns `formulas` add (Deephaven's `update`, e.g.
    /// `"SeenAt = now()"`). The server evaluates a formula once per row, when the row arrives, and keeps the view
    /// ticking with its source.
    pub async fn publish_updated_view(&self, source: &str, formulas: &[&str], name: &str) -> Result<()> {
        const OPERATION: &str = "update";
        let session = self.session();
        let request = SelectOrUpdateRequest {
            result_id: None,
            source_id: Some(table_ref(scope_ticket(source))),
            column_specs: formulas.iter().map(|formula| (*formula).to_owned()).collect(),
        };
        let update = |mut tables: TableService, ticket| async move {
            tables.update(SelectOrUpdateRequest { result_id: Some(ticket), ..request }).await
        };
        session.derive_table(OPERATION, update, |ticket| session.publish(ticket, name)).await?;
        tracing::info!(source, view = name, ?formulas, "updated view published");
        Ok(())
    }

    /// Publishes as `name` the rows of scope table `source` that pass
    /// `filter`. The view is computed and kept up to date by the server.
    pub async fn publish_filtered_view(&self, source: &str, filter: &Filter, name: &str) -> Result<()> {
        const OPERATION: &str = "filter";
        let session = self.session();
        let source_id = Some(table_ref(scope_ticket(source)));
        let apply = |mut tables: TableService, ticket| async move {
            let result_id = Some(ticket);
            match filter {
                Filter::Equals { column, value } => {
                    let filters = vec![equals_condition(column, value)];
                    tables.filter(FilterTableRequest { result_id, source_id, filters }).await
                }
                Filter::Expression(condition) => {
                    let filters = vec![condition.clone()];
                    tables.unstructured_filter(UnstructuredFilterTableRequest { result_id, source_id, filters }).await
                }
            }
        };
        session.derive_table(OPERATION, apply, |ticket| session.publish(ticket, name)).await?;
        tracing::info!(source, view = name, ?filter, "filtered view published");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn equals_filter_is_a_compare_condition() {
        let condition = equals_condition("Status", &Literal::from("firing"));
        let Some(condition::Data::Compare(compare)) = &condition.data else {
            panic!("not a compare: {condition:?}");
        };
        assert_eq!(compare.operation, 4, "EQUALS");
        assert_eq!(compare.case_sensitivity, 0, "MATCH_CASE");
        // Condition.compare is field 4; lhs (3) = reference (1) { column_name (1) }
        let bytes = condition.encode_to_vec();
        assert_eq!(bytes[0], 0x22);
        let decoded = Condition::decode(bytes.as_slice()).expect("round trip");
        assert_eq!(decoded, condition);
    }

    #[test]
    fn literals_convert() {
        assert_eq!(Literal::from(7_i32), Literal::Long(7));
        assert_eq!(Literal::from(true).to_proto().value, Some(literal::Value::BoolValue(true)));
        assert_eq!(
            Filter::equals("Status", "firing"),
            Filter::Equals { column: "Status".into(), value: Literal::String("firing".into()) }
        );
    }
}
