//! # Did you mean: how far a misspelt name is from the valid ones
//!
//! ## Scope
//! The distance behind every "did you mean `...`?" hint: the manifest loader
//! ([`crate::netpol::manifest`]) and the scenario files (`sim-scenarios`)
//! both rank the valid names by it and suggest the nearest one when it is
//! near enough to be a typo ([`suggest`]: one rule for both).
//!
//! ## Parameters
//! None: Levenshtein's distance (Levenshtein 1966), one edit per inserted,
//! deleted or substituted character (`char`, not byte), case-sensitive.
//!
//! ## What it emits
//! [`edit_distance`]: the number of edits; [`suggest`]: the nearest valid
//! name, compared without case, when it is at most max(2, a third of its
//! length) edits away.
//!
//! ## Validation
//! Unit tests pin textbook distances, the empty cases, multi-byte
//! characters, case sensitivity and symmetry.

/// The candidate nearest to `word` (compared without case), if it is near
/// enough to be a typo of it: at most max(2, a third of its length) edits.
/// Ties go to the candidate that sorts first.
pub fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&word, &c.to_lowercase()), *c))
        .min()
        .filter(|(d, c)| *d <= 2.max(c.chars().count() / 3))
        .map(|(_, c)| c)
}

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
    use super::{edit_distance, suggest};

    #[test]
    fn suggests_near_names_only_without_case() {
        let names = ["replicas", "rate", "retries"];
        assert_eq!(suggest("replcas", &names), Some("replicas"));
        assert_eq!(suggest("Replicas", &names), Some("replicas"));
        assert_eq!(suggest("retires", &names), Some("retries"));
        assert_eq!(suggest("timeout", &names), None);
        assert_eq!(suggest("x", &[]), None);
    }

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
