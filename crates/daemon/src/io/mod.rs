//! Container output after the fact: reading json-file logs.

pub mod logs;
