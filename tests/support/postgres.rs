//! PostgreSQL test databases (filled in with the PostgreSQL engine).
