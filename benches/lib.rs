//! Benches only; see engine.rs.
