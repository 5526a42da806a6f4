//! Migration files: a directory of TOML files ordered by their version prefix
//! (`0001_add_email_verified.toml`), each with a name, a description and operations.
//!
//! Parsing is two-step so that an error names the file, the operation and the field:
//! the file is read into a table first, then each operation on its own.

use super::ops::Operation;
use crate::ddl::SqlRules;
use crate::error::{Error, ErrorKind, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One parsed migration file.
#[derive(Debug, Clone)]
pub struct MigrationFile {
    /// The file stem, e.g. `0001_add_email_verified`: the key in the state table.
    pub id: String,
    pub version: u64,
    pub path: PathBuf,
    pub name: String,
    pub description: String,
    pub operations: Vec<Operation>,
    /// FNV-1a 64 of the file's bytes, hex.
    pub checksum: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    name: String,
    #[serde(default)]
    description: String,
    operations: Vec<toml::Value>,
}

fn migration_err(msg: String) -> Error {
    Error::new(ErrorKind::Migration, msg)
}

/// FNV-1a 64-bit: detects a file edited after it was applied.
pub fn checksum(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The version prefix of a file name: the leading digits before `_`.
fn version_of(stem: &str) -> Option<u64> {
    let digits: String = stem.chars().take_while(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() {
        return None;
    }
    digits.parse().ok()
}

/// Parse one file's text. `label` names the file in errors.
pub fn parse(label: &str, id: &str, text: &str) -> Result<(String, String, Vec<Operation>)> {
    let raw: RawFile = toml::from_str(text)
        .map_err(|e| migration_err(format!("{label}: {}", e.to_string().trim_end())))?;
    if raw.name.trim().is_empty() {
        return Err(migration_err(format!("{label}: field `name` is empty")));
    }
    if raw.operations.is_empty() {
        return Err(migration_err(format!(
            "{label}: no operations (add at least one [[operations]] table)"
        )));
    }
    let mut ops = Vec::new();
    for (i, v) in raw.operations.into_iter().enumerate() {
        let kind = v
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("?")
            .to_string();
        let what = format!("{label}: operation #{} ({kind})", i + 1);
        if v.get("type").is_none() {
            return Err(migration_err(format!(
                "{what}: missing field `type` (one of {})",
                Operation::KINDS.join(", ")
            )));
        }
        let op: Operation = v.try_into().map_err(|e: toml::de::Error| {
            migration_err(format!("{what}: {}", e.message().trim_end()))
        })?;
        op.validate()
            .map_err(|m| migration_err(format!("{what}: {m}")))?;
        ops.push(op);
    }
    let _ = id;
    Ok((raw.name, raw.description, ops))
}

/// Load one file.
pub fn load_file(path: &Path) -> Result<MigrationFile> {
    let label = path.display().to_string();
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| migration_err(format!("{label}: file name is not UTF-8")))?
        .to_string();
    let version = version_of(&stem).ok_or_else(|| {
        migration_err(format!(
            "{label}: the file name must start with a version number, e.g. 0001_{stem}.toml"
        ))
    })?;
    let bytes = std::fs::read(path)
        .map_err(|e| Error::new(ErrorKind::BadInput, format!("cannot read {label}: {e}")))?;
    let text = String::from_utf8(bytes.clone())
        .map_err(|_| migration_err(format!("{label}: not UTF-8 text")))?;
    let (name, description, operations) = parse(&label, &stem, &text)?;
    Ok(MigrationFile {
        id: stem,
        version,
        path: path.to_path_buf(),
        name,
        description,
        operations,
        checksum: checksum(&bytes),
    })
}

/// Load migration files (see [`load_all`]), and check every SQL fragment godwit will
/// splice into its own statements (`up`, `down`, `check`, types, defaults) with the
/// engine's `rules`, before anything connects (`ddl::lex::fragment`).
pub fn load(path: &Path, rules: &'static SqlRules) -> Result<Vec<MigrationFile>> {
    let files = load_all(path)?;
    for f in &files {
        for (i, op) in f.operations.iter().enumerate() {
            for (field, text) in op.fragments() {
                crate::ddl::lex::fragment(rules, text, &format!("field `{field}`")).map_err(
                    |e| {
                        Error {
                            message: format!(
                                "{}: operation #{} ({}): {}",
                                f.path.display(),
                                i + 1,
                                op.op().describe(),
                                e.message
                            ),
                            ..migration_err(String::new())
                        }
                        .with_hint(e.hint.unwrap_or_default())
                    },
                )?;
            }
        }
    }
    Ok(files)
}

/// Load a directory (every `*.toml`, ordered by version) or a single file.
pub fn load_all(path: &Path) -> Result<Vec<MigrationFile>> {
    if path.is_file() {
        return Ok(vec![load_file(path)?]);
    }
    let entries = std::fs::read_dir(path).map_err(|e| {
        Error::bad_input(format!("cannot read {}: {e}", path.display()))
            .with_hint("pass a directory of migration files or one .toml file")
    })?;
    let mut files = Vec::new();
    for e in entries {
        let p = e?.path();
        if p.extension().and_then(|x| x.to_str()) == Some("toml") {
            files.push(load_file(&p)?);
        }
    }
    files.sort_by(|a, b| a.version.cmp(&b.version).then(a.id.cmp(&b.id)));
    for w in files.windows(2) {
        if w[0].version == w[1].version {
            return Err(migration_err(format!(
                "{} and {} have the same version {}",
                w[0].path.display(),
                w[1].path.display(),
                w[0].version
            )));
        }
    }
    if files.is_empty() {
        return Err(migration_err(format!(
            "no migration files (*.toml) in {}",
            path.display()
        )));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse("0001_x.toml", "0001_x", text).unwrap_err().message
    }

    #[test]
    fn parses_every_operation() {
        let (name, _, ops) = parse(
            "f",
            "0001_f",
            r#"
name = "all"
description = "d"
[[operations]]
type = "add_column"
table = "t"
column = { name = "c", type = "int" }
[[operations]]
type = "rename_column"
table = "t"
from = "a"
to = "b"
[[operations]]
type = "set_not_null"
table = "t"
column = "c"
up = "0"
[[operations]]
type = "drop_column"
table = "t"
column = "d"
[[operations]]
type = "add_index"
table = "t"
name = "i"
columns = ["a", "c"]
unique = true
[[operations]]
type = "change_column_type"
table = "t"
column = "c"
new_type = "bigint"
up = "c"
down = "c_new"
[[operations]]
type = "add_check"
table = "t"
name = "c_pos"
check = "c > 0"
column = "c"
up = "1"
[[operations]]
type = "drop_index"
table = "t"
name = "i"
[[operations]]
type = "sql"
up = "SELECT 1"
down = "SELECT 2"
"#,
        )
        .unwrap();
        assert_eq!(name, "all");
        assert_eq!(ops.len(), 9);
    }

    #[test]
    fn unknown_operation_is_named() {
        let m = err("name = \"x\"\n[[operations]]\ntype = \"add_colum\"\ntable = \"t\"\n");
        assert!(m.contains("0001_x.toml"), "{m}");
        assert!(m.contains("operation #1 (add_colum)"), "{m}");
        assert!(m.contains("unknown variant"), "{m}");
    }

    #[test]
    fn unknown_and_missing_fields_are_named() {
        let m = err("name = \"x\"\n[[operations]]\ntype = \"rename_column\"\ntable = \"t\"\nfrom = \"a\"\nto = \"b\"\ncolour = 1\n");
        assert!(
            m.contains("operation #1 (rename_column)") && m.contains("colour"),
            "{m}"
        );
        let m = err(
            "name = \"x\"\n[[operations]]\ntype = \"rename_column\"\ntable = \"t\"\nfrom = \"a\"\n",
        );
        assert!(m.contains("missing field `to`"), "{m}");
        let m = err("name = \"x\"\nnonsense = 1\n[[operations]]\ntype = \"sql\"\nup = \"x\"\n");
        assert!(m.contains("0001_x.toml") && m.contains("nonsense"), "{m}");
        let m = err("name = \"x\"\n[[operations]]\ntable = \"t\"\n");
        assert!(m.contains("missing field `type`"), "{m}");
    }

    #[test]
    fn semantic_checks() {
        let m = err("name = \"x\"\n[[operations]]\ntype = \"add_column\"\ntable = \"t\"\ncolumn = { name = \"c\", type = \"int\", nullable = false }\n");
        assert!(m.contains("needs `up` or `default`"), "{m}");
        let m = err("name = \"x\"\n[[operations]]\ntype = \"add_index\"\ntable = \"t\"\nname = \"i\"\ncolumns = []\n");
        assert!(m.contains("columns"), "{m}");
        let m = err("name = \"x\"\n[[operations]]\ntype = \"change_column_type\"\ntable = \"t\"\ncolumn = \"c\"\nnew_type = \"int\"\nup = \"c\"\ndown = \"c\"\nnew_name = \"c\"\n");
        assert!(m.contains("`new_name` must differ"), "{m}");
        let m = err("name = \"x\"\n[[operations]]\ntype = \"change_column_type\"\ntable = \"t\"\ncolumn = \"c\"\ntype = \"int\"\n");
        assert!(m.contains("0001_x.toml"), "{m}");
        let m = err("name = \"x\"\n[[operations]]\ntype = \"add_check\"\ntable = \"t\"\nname = \"n\"\ncheck = \"\"\ncolumn = \"c\"\nup = \"1\"\n");
        assert!(
            m.contains("operation #1 (add_check)") && m.contains("`check` is empty"),
            "{m}"
        );
        let m = err("name = \"x\"\noperations = []\n");
        assert!(m.contains("no operations"), "{m}");
    }

    #[test]
    fn checksum_changes_with_content() {
        assert_ne!(checksum(b"a"), checksum(b"b"));
        assert_eq!(checksum(b"a").len(), 16);
    }
}
