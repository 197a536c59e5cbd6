//! Reading samples out of a Prometheus text exposition, as the services' `/metrics` render it.

/// The value of the sample `name` (with its labels, if any, exactly as rendered); panics if there is none, so a
/// renamed metric fails the test instead of reading as zero.
pub fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
        .trim()
        .parse()
        .expect("a number")
}
