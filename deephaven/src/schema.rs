//! Arrow schemas as Deephaven sees them: which Arrow types an input table accepts (and the Java type each becomes),
//! the encapsulated IPC bytes that `CreateInputTable` expects, and decoding the `schema_header` of a fetched table.
//! Comparing schemas with an input table's definition is the `definition` module's.

use arrow::datatypes::{DataType, Schema};
use arrow::error::ArrowError;
use arrow::ipc::writer::{write_message, DictionaryTracker, IpcDataGenerator, IpcWriteOptions};

use crate::error::{Error, Result};

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

/// `schema` as an Arrow encapsulated IPC message: `FF FF FF FF`, i32 LE metadata length, flatbuffer
/// `Message(Schema)`, padding to 8 bytes.
pub(crate) fn encode_schema(schema: &Schema) -> Result<Vec<u8>> {
    let options = IpcWriteOptions::default();
    let mut tracker = DictionaryTracker::new(false);
    let encoded = IpcDataGenerator::default().schema_to_bytes_with_dictionary_tracker(schema, &mut tracker, &options);
    let mut bytes = Vec::with_capacity(encoded.ipc_message.len() + 16);
    write_message(&mut bytes, encoded, &options)
        .map_err(|source| Error::Arrow { operation: "encode schema", source })?;
    Ok(bytes)
}

/// Decodes a `schema_header`: a flatbuffer `Message(Schema)`, with or without the encapsulation prefix.
pub(crate) fn decode_schema_header(bytes: &[u8]) -> Result<Schema, ArrowError> {
    if bytes.starts_with(&CONTINUATION) {
        arrow::ipc::convert::try_schema_from_ipc_buffer(bytes)
    } else {
        arrow::ipc::convert::try_schema_from_flatbuffer_bytes(bytes)
            .or_else(|_| arrow::ipc::convert::try_schema_from_ipc_buffer(bytes))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{Field, TimeUnit};

    use super::*;

    /// A schema of the kinds of column the client maps: text, a time, a long.
    pub(crate) fn alerts_schema() -> Schema {
        Schema::new(vec![
            Field::new("Fingerprint", DataType::Utf8, false),
            Field::new("Status", DataType::Utf8, true),
            Field::new("StartsAt", DataType::Timestamp(TimeUnit::Nanosecond, Some(Arc::from("UTC"))), true),
            Field::new("KafkaOffset", DataType::Int64, true),
        ])
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
}
