//! Examples only; see the *.rs files beside this one.
