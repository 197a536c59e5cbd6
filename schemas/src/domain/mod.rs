//! Value types that can only hold valid data.
//!
//! Each type checks its invariant in `Deserialize` (through `TryFrom<String>` where it can), so any JSON that reaches
//! the rest of the program has already been checked, and a violation is reported by serde with the path of the value.

mod fingerprint;
mod labels;
mod status;
pub(crate) mod timestamp;

pub use fingerprint::Fingerprint;
pub use labels::LabelSet;
pub use status::Status;
pub use timestamp::Timestamp;
