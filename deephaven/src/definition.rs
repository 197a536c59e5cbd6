//! What an input table is, its columns (an Arrow schema) and its [`InputTableKind`], and the checks against it: a
//! definition is validated before any call, and an existing scope table (as the server describes it: `deephaven:type`
//! and the input-table key flags in its field metadata) or a batch about to be written is compared with it, so that
//! a mismatch comes back as [`Error::SchemaMismatch`] differences instead of being written. It uses `schema`'s type
//! mapping and is used by `input_table`: the dependency runs one way, `input_table` → `definition` → `schema`.

use std::collections::HashSet;

use arrow::datatypes::{Field, Schema};

use crate::error::{Error, Result};
use crate::proto::backplane::create_input_table_request::{input_table_kind, InputTableKind as KindProto};
use crate::schema::deephaven_type;

/// Field metadata key: the column's Java type on the server.
const TYPE_KEY: &str = "deephaven:type";
/// Field metadata key on input tables: `"true"` on key columns.
const IS_KEY: &str = "deephaven:inputtable.isKey";
/// Field metadata key on input tables: `"true"` on value (non-key) columns.
const IS_VALUE: &str = "deephaven:inputtable.isValue";

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

    /// The key columns (empty unless keyed).
    pub(crate) fn key_columns(&self) -> &[String] {
        match self {
            Self::AppendOnly | Self::Blink => &[],
            Self::Keyed { key_columns } => key_columns,
        }
    }

    /// The kind as `CreateInputTable` takes it.
    pub(crate) fn to_proto(&self) -> KindProto {
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

/// Checks that `schema` can define an input table of `kind`.
pub(crate) fn validate_definition(schema: &Schema, kind: &InputTableKind) -> Result<()> {
    if schema.fields().is_empty() {
        return Err(Error::InvalidInput("an input table needs at least one column".into()));
    }
    let mut names = HashSet::new();
    for field in schema.fields() {
        if !names.insert(field.name().as_str()) {
            return Err(Error::InvalidInput(format!("duplicate column `{}`", field.name())));
        }
        deephaven_type(field.data_type()).map_err(|reason| Error::UnsupportedType {
            column: field.name().clone(),
            data_type: field.data_type().clone(),
            reason,
        })?;
    }
    if let InputTableKind::Keyed { key_columns } = kind {
        if key_columns.is_empty() {
            return Err(Error::InvalidInput("a keyed input table needs key columns".into()));
        }
        let mut keys = HashSet::new();
        for key in key_columns {
            if !names.contains(key.as_str()) {
                return Err(Error::InvalidInput(format!("key column `{key}` is not in the schema")));
            }
            if !keys.insert(key.as_str()) {
                return Err(Error::InvalidInput(format!("key column `{key}` listed twice")));
            }
        }
    }
    Ok(())
}

/// The Java type of a column: the server's `deephaven:type` metadata when present, else the mapping of its Arrow
/// type.
fn column_type(field: &Field) -> String {
    if let Some(java) = field.metadata().get(TYPE_KEY) {
        return java.clone();
    }
    match deephaven_type(field.data_type()) {
        Ok(java) => java.to_owned(),
        Err(_) => format!("arrow {}", field.data_type()),
    }
}

/// Differences between the expected and actual columns: names, order and Deephaven types (nullability and Arrow time
/// units do not matter).
pub(crate) fn column_differences(expected: &Schema, actual: &Schema) -> Vec<String> {
    let expected_names: Vec<&str> = expected.fields().iter().map(|f| f.name().as_str()).collect();
    let actual_names: Vec<&str> = actual.fields().iter().map(|f| f.name().as_str()).collect();
    if expected_names != actual_names {
        return vec![format!("columns: expected {expected_names:?}, found {actual_names:?}")];
    }
    expected
        .fields()
        .iter()
        .zip(actual.fields())
        .filter_map(|(want, have)| {
            let (want_type, have_type) = (column_type(want), column_type(have));
            (want_type != have_type)
                .then(|| format!("column `{}`: expected {want_type}, found {have_type}", want.name()))
        })
        .collect()
}

/// Differences between an expected input-table definition and the schema of an existing table (as returned by
/// `FetchTable`).
pub(crate) fn definition_differences(expected: &Schema, kind: &InputTableKind, actual: &Schema) -> Vec<String> {
    let mut differences = column_differences(expected, actual);
    let is_input_table =
        actual.fields().iter().any(|f| f.metadata().contains_key(IS_KEY) || f.metadata().contains_key(IS_VALUE));
    if !is_input_table {
        differences.push("it is not an input table".to_owned());
        return differences;
    }
    let mut found: Vec<&str> = actual
        .fields()
        .iter()
        .filter(|f| f.metadata().get(IS_KEY).is_some_and(|v| v.eq_ignore_ascii_case("true")))
        .map(|f| f.name().as_str())
        .collect();
    let mut wanted: Vec<&str> = kind.key_columns().iter().map(String::as_str).collect();
    found.sort_unstable();
    wanted.sort_unstable();
    if found != wanted {
        differences.push(format!("key columns: expected {wanted:?}, found {found:?}"));
    }
    differences
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use arrow::datatypes::{DataType, TimeUnit};
    use prost::Message as _;

    use super::*;
    use crate::proto::backplane::CreateInputTableRequest;
    use crate::schema::tests::alerts_schema;

    fn server_view(schema: &Schema, keys: &[&str]) -> Schema {
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|f| {
                let java = deephaven_type(f.data_type()).expect("supported");
                // As Deephaven 42.7 describes input tables: isKey on keys, isValue on the rest.
                let flag = if keys.contains(&f.name().as_str()) { IS_KEY } else { IS_VALUE };
                Field::new(f.name(), f.data_type().clone(), true).with_metadata(HashMap::from([
                    (TYPE_KEY.to_owned(), java.to_owned()),
                    (flag.to_owned(), "true".to_owned()),
                ]))
            })
            .collect();
        Schema::new(fields)
    }

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
    fn definitions_are_validated_before_any_call() {
        let schema = alerts_schema();
        validate_definition(&schema, &InputTableKind::AppendOnly).expect("valid");
        validate_definition(&schema, &InputTableKind::keyed(["Fingerprint"])).expect("valid keyed");
        let missing = validate_definition(&schema, &InputTableKind::keyed(["Nope"]));
        assert!(matches!(missing, Err(Error::InvalidInput(_))), "{missing:?}");
        let no_keys = validate_definition(&schema, &InputTableKind::keyed(Vec::<String>::new()));
        assert!(matches!(no_keys, Err(Error::InvalidInput(_))), "{no_keys:?}");
        let large = Schema::new(vec![Field::new("S", DataType::LargeUtf8, true)]);
        let refused = validate_definition(&large, &InputTableKind::AppendOnly);
        assert!(matches!(refused, Err(Error::UnsupportedType { .. })), "{refused:?}");
        let dup = Schema::new(vec![Field::new("A", DataType::Int32, true), Field::new("A", DataType::Int64, true)]);
        assert!(validate_definition(&dup, &InputTableKind::AppendOnly).is_err());
    }

    #[test]
    fn matching_definition_has_no_differences() {
        let schema = alerts_schema();
        let kind = InputTableKind::keyed(["Fingerprint"]);
        let actual = server_view(&schema, &["Fingerprint"]);
        assert_eq!(definition_differences(&schema, &kind, &actual), Vec::<String>::new());
        let append = server_view(&schema, &[]);
        assert!(definition_differences(&schema, &InputTableKind::AppendOnly, &append).is_empty());
    }

    #[test]
    fn mismatches_are_reported() {
        let schema = alerts_schema();
        let keyed = InputTableKind::keyed(["Fingerprint"]);

        let wrong_keys = server_view(&schema, &["Status"]);
        let diffs = definition_differences(&schema, &keyed, &wrong_keys);
        assert_eq!(diffs.len(), 1, "{diffs:?}");
        assert!(diffs[0].contains("key columns"), "{diffs:?}");

        let append = server_view(&schema, &[]);
        assert_eq!(definition_differences(&schema, &keyed, &append).len(), 1);

        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields[3] = Field::new("KafkaOffset", DataType::Int32, true);
        let retyped = server_view(&Schema::new(fields.clone()), &["Fingerprint"]);
        let diffs = definition_differences(&schema, &keyed, &retyped);
        assert_eq!(diffs, vec!["column `KafkaOffset`: expected long, found int".to_owned()]);

        fields.swap(0, 1);
        let reordered = server_view(&Schema::new(fields), &["Fingerprint"]);
        assert!(definition_differences(&schema, &keyed, &reordered)[0].starts_with("columns:"));

        let plain = Schema::new(schema.fields().clone());
        let diffs = definition_differences(&schema, &InputTableKind::AppendOnly, &plain);
        assert_eq!(diffs, vec!["it is not an input table".to_owned()]);
    }

    #[test]
    fn batch_columns_compare_by_deephaven_type() {
        let table = alerts_schema();
        let mut fields: Vec<Field> = table.fields().iter().map(|f| f.as_ref().clone()).collect();
        // A different time unit and nullability still make the same Instant column.
        fields[2] = Field::new("StartsAt", DataType::Timestamp(TimeUnit::Millisecond, Some(Arc::from("UTC"))), false);
        assert!(column_differences(&table, &Schema::new(fields.clone())).is_empty());
        fields[1] = Field::new("Status", DataType::LargeUtf8, true);
        let diffs = column_differences(&table, &Schema::new(fields));
        assert_eq!(diffs.len(), 1, "{diffs:?}");
        assert!(diffs[0].contains("arrow LargeUtf8"), "{diffs:?}");
    }
}
