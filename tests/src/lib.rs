//! Shared helpers for berth integration suites.
