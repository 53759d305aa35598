//! Benchmarks that run from the binary (`afx bench`).
