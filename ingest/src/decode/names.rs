//! emoncms's name rule: node and input names keep only letters, digits, `_`, whitespace, `-`
//! and `.` (`/[^\p{N}\p{L}_\s\-.]/u`); everything else is removed, never rejected.

fn allowed(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-' || c == '.' || c.is_whitespace()
}

/// An input name after emoncms's filter.
pub fn filter_name(name: &str) -> String {
    name.chars().filter(|&c| allowed(c)).collect()
}

/// A node name after the filter; an empty result becomes `0`, emoncms's default node.
pub fn filter_node(node: &str) -> String {
    let n = filter_name(node);
    if n.is_empty() { "0".into() } else { n }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_like_emoncms() {
        assert_eq!(filter_name("power(W)"), "powerW");
        assert_eq!(filter_node("my node!@#é"), "my nodeé");
        assert_eq!(filter_name("c/d"), "cd");
        assert_eq!(filter_name("temp_1-a.b"), "temp_1-a.b");
        assert_eq!(filter_node("!!!"), "0");
        assert_eq!(filter_node(""), "0");
    }
}
