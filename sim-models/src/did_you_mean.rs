//! # Did you mean: how far a misspelt name is from the valid ones
//!
//! ## Scope
//! The distance behind every "did you mean `...`?" hint: the manifest loader
//! ([`crate::netpol::manifest`]) and the scenario files (`sim-scenarios`)
//! both rank the valid names by it and suggest the nearest one when it is
//! near enough to be a typo. Each caller keeps its own rule for "near enough"
//! and for case.
//!
//! ## Parameters
//! None: Levenshtein's distance (Levenshtein 1966), one edit per inserted,
//! deleted or substituted character (`char`, not byte), case-sensitive.
//!
//! ## What it emits
//! [`edit_distance`]: the number of edits.
//!
//! ## Validation
//! Unit tests pin textbook distances, the empty cases, multi-byte
//! characters, case sensitivity and symmetry.

/// The Levenshtein distance between `a` and `b`: the fewest single-character
/// insertions, deletions and substitutions that turn one into the other.
/// Counts `char`s and compares them exactly (case matters).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::edit_distance;

    #[test]
    fn textbook_distances() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("flaw", "lawn"), 2);
        assert_eq!(edit_distance("replica", "replicas"), 1);
        assert_eq!(edit_distance("ingress", "ingress"), 0);
        assert_eq!(edit_distance("podSelector", "podSelecter"), 1);
    }

    #[test]
    fn empty_strings_cost_their_length() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("", "port"), 4);
        assert_eq!(edit_distance("port", ""), 4);
    }

    #[test]
    fn counts_characters_not_bytes() {
        assert_eq!(edit_distance("µs", "us"), 1);
        assert_eq!(edit_distance("naïve", "naive"), 1);
    }

    #[test]
    fn case_matters() {
        assert_eq!(edit_distance("TCP", "tcp"), 3);
        assert_eq!(edit_distance("Ingress", "ingress"), 1);
    }

    #[test]
    fn symmetric() {
        for (a, b) in [("egress", "ingres"), ("endPort", "port"), ("", "x")] {
            assert_eq!(edit_distance(a, b), edit_distance(b, a), "{a} / {b}");
        }
    }
}
