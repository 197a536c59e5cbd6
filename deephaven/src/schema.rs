//! Arrow schemas as Deephaven sees them: which Arrow types an input table
//! accepts (and the Java type each becomes), the encapsulated IPC bytes that
//! `CreateInputTable` expects, decoding the `schema_header` of a fetched table,
//! and comparing an existing table or an outgoing batch against the expected
//! definition so that a mismatch is reported instead of written.

use std::collections::HashSet;

use arrow::datatypes::{DataType, Schema};
use arrow::error::ArrowError;
use arrow::ipc::writer::{write_message, DictionaryTracker, IpcDataGenerator, IpcWriteOptions};

use crate::error::{Error, Result};
use crate::input_table::InputTableKind;

/// Field metadata key: the column's Java type on the server.
pub(crate) const TYPE_KEY: &str = "deephaven:type";
/// Field metadata key on input tables: `"true"` on key columns.
pub(crate) const IS_KEY: &str = "deephaven:inputtable.isKey";
/// Field metadata key on input tables: `"true"` on value (non-key) columns.
pub(crate) const IS_VALUE: &str = "deephaven:inputtable.isValue";

/// The IPC continuation marker that starts an encapsulated message.
const CONTINUATION: [u8; 4] = [0xff; 4];

/// The Java type an Arrow type becomes in a Deephaven input table, or why it is refused.
pub(crate) fn deephaven_type(data_type: &DataType) -> Result<&'static str, &'static str> {
    match data_type {
        DataType::Utf8 => Ok("java.lang.String"),
        DataType::LargeUtf8 | DataType::Utf8View => Err("use Utf8 (large and view strings are refused)"),
        DataType::Boolean => Ok("java.lang.Boolean"),
        DataType::Int8 => Ok("byte"),
        DataType::Int16 => Ok("short"),
        DataType::Int32 => Ok("int"),
        DataType::Int64 => Ok("long"),
        DataType::UInt16 => Ok("char"),
        DataType::Float32 => Ok("float"),
        DataType::Float64 => Ok("double"),
        DataType::Timestamp(_, None) => Ok("java.time.Instant"),
        DataType::Timestamp(_, Some(tz)) if tz.as_ref() == "UTC" => Ok("java.time.Instant"),
        DataType::Timestamp(_, Some(_)) => Err("use time zone \"UTC\" exactly (other zones become ZonedDateTime)"),
        _ => Err("no Deephaven input-table mapping in this client"),
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

/// `schema` as an Arrow encapsulated IPC message: `FF FF FF FF`, i32 LE
/// metadata length, flatbuffer `Message(Schema)`, padding to 8 bytes.
pub(crate) fn encode_schema(schema: &Schema) -> Result<Vec<u8>> {
    let options = IpcWriteOptions::default();
    let mut tracker = DictionaryTracker::new(false);
    let encoded = IpcDataGenerator::default().schema_to_bytes_with_dictionary_tracker(schema, &mut tracker, &options);
    let mut bytes = Vec::with_capacity(encoded.ipc_message.len() + 16);
    write_message(&mut bytes, encoded, &options)
        .map_err(|source| Error::Arrow { operation: "encode schema", source })?;
    Ok(bytes)
}

/// Decodes a `schema_header`: a flatbuffer `Message(Schema)`, with or without
/// the encapsulation prefix.
pub(crate) fn decode_schema_header(bytes: &[u8]) -> Result<Schema, ArrowError> {
    if bytes.starts_with(&CONTINUATION) {
        arrow::ipc::convert::try_schema_from_ipc_buffer(bytes)
    } else {
        arrow::ipc::convert::try_schema_from_flatbuffer_bytes(bytes)
            .or_else(|_| arrow::ipc::convert::try_schema_from_ipc_buffer(bytes))
    }
}

/// The Java type of a column: the server's `deephaven:type` metadata when
/// present, else the mapping of its Arrow type.
fn column_type(field: &arrow::datatypes::Field) -> String {
    if let Some(java) = field.metadata().get(TYPE_KEY) {
        return java.clone();
    }
    match deephaven_type(field.data_type()) {
        Ok(java) => java.to_owned(),
        Err(_) => format!("arrow {}", field.data_type()),
    }
}

/// Differences between the expected and actual columns: names, order and
/// Deephaven types (nullability and Arrow time units do not matter).
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

/// Differences between an expected input-table definition and the schema of
/// an existing table (as returned by `FetchTable`).
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

    use arrow::datatypes::{Field, TimeUnit};

    use super::*;

    fn alerts_schema() -> Schema {
        Schema::new(vec![
            Field::new("Fingerprint", DataType::Utf8, false),
            Field::new("Status", DataType::Utf8, true),
            Field::new("StartsAt", DataType::Timestamp(TimeUnit::Nanosecond, Some(Arc::from("UTC"))), true),
            Field::new("KafkaOffset", DataType::Int64, true),
        ])
    }

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
    fn schema_message_is_encapsulated_ipc() {
        let schema = alerts_schema();
        let bytes = encode_schema(&schema).expect("encode");
        assert_eq!(&bytes[..4], &[0xff, 0xff, 0xff, 0xff], "continuation marker");
        let len = i32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
        assert_eq!(len as usize, bytes.len() - 8, "length covers the padded flatbuffer");
        assert_eq!(bytes.len() % 8, 0, "padded to 8 bytes");
        // The server skips exactly 8 bytes and reads a flatbuffer Message(Schema).
        let message = arrow::ipc::root_as_message(&bytes[8..]).expect("flatbuffer message");
        assert_eq!(message.header_type(), arrow::ipc::MessageHeader::Schema);
        let decoded = decode_schema_header(&bytes[8..]).expect("decode without prefix");
        assert_eq!(decoded, schema);
        assert_eq!(decode_schema_header(&bytes).expect("decode with prefix"), schema);
    }

    #[test]
    fn type_mapping_refuses_what_deephaven_mangles() {
        let utc = DataType::Timestamp(TimeUnit::Millisecond, Some(Arc::from("UTC")));
        assert_eq!(deephaven_type(&utc), Ok("java.time.Instant"));
        assert_eq!(deephaven_type(&DataType::Timestamp(TimeUnit::Nanosecond, None)), Ok("java.time.Instant"));
        for refused in [
            DataType::LargeUtf8,
            DataType::Utf8View,
            DataType::Timestamp(TimeUnit::Nanosecond, Some(Arc::from("+00:00"))),
            DataType::Timestamp(TimeUnit::Nanosecond, Some(Arc::from("Etc/UTC"))),
            DataType::Date32,
        ] {
            assert!(deephaven_type(&refused).is_err(), "{refused}");
        }
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
