//! `drop_index`: the old application may still need the index, so it stays until
//! contract, which drops it online (PostgreSQL `DROP INDEX CONCURRENTLY`, MySQL
//! `ALGORITHM=INPLACE, LOCK=NONE`). expand only checks; abort has nothing to undo.

use super::{need, Cx, Op, Stmt};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropIndex {
    pub table: String,
    pub name: String,
}

impl Op for DropIndex {
    fn describe(&self) -> String {
        format!("drop index {} on {}", self.name, self.table)
    }
    fn table(&self) -> Option<&str> {
        Some(&self.table)
    }
    fn validate(&self) -> Result<(), String> {
        need("table", &self.table)?;
        need("name", &self.name)
    }
    fn expand(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        let info = cx.info()?;
        let Some(idx) = info.index(&self.name) else {
            if cx.resuming {
                return Ok(vec![]);
            }
            return Err(format!(
                "index `{}` does not exist on `{}`",
                self.name, self.table
            ));
        };
        if idx.primary {
            return Err(format!(
                "index `{}` is the primary key of `{}`: drop_index does not drop primary keys",
                self.name, self.table
            ));
        }
        if let Some(c) = &idx.constraint {
            return Err(format!(
                "index `{}` is used by constraint `{c}`: drop the constraint instead (a `sql` operation with ALTER TABLE … DROP CONSTRAINT)",
                self.name
            ));
        }
        Ok(vec![])
    }
    fn contract(&self, cx: &Cx) -> Result<Vec<Stmt>, String> {
        Ok(vec![cx.sql.drop_index(&self.table, &self.name)])
    }
    fn abort(&self, _cx: &Cx) -> Result<Vec<Stmt>, String> {
        Ok(vec![])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::mysql::phases::Mysql;
    use crate::schema::{Index, Table};

    fn expand(name: &str, resuming: bool) -> Result<Vec<Stmt>, String> {
        let info = Table {
            name: "t".into(),
            indexes: vec![
                Index {
                    name: "PRIMARY".into(),
                    primary: true,
                    ..Index::default()
                },
                Index {
                    name: "u".into(),
                    constraint: Some("u_key".into()),
                    ..Index::default()
                },
                Index {
                    name: "i".into(),
                    ..Index::default()
                },
            ],
            ..Table::default()
        };
        let my = Mysql { db: "d".into() };
        let op = DropIndex {
            table: "t".into(),
            name: name.into(),
        };
        op.expand(&Cx {
            sql: &my,
            catalog: crate::phases::ops::no_catalog(),
            planning: false,
            table: Some(&info),
            tag: String::new(),
            resuming,
        })
    }

    #[test]
    fn expand_checks_and_changes_nothing() {
        assert_eq!(expand("i", false).unwrap(), vec![]);
        assert!(expand("nope", false)
            .unwrap_err()
            .contains("does not exist"));
        assert_eq!(expand("nope", true).unwrap(), vec![]);
        assert!(expand("PRIMARY", false)
            .unwrap_err()
            .contains("primary key"));
        assert!(expand("u", false)
            .unwrap_err()
            .contains("constraint `u_key`"));
    }

    #[test]
    fn mysql_contract_drops_online() {
        let my = Mysql { db: "d".into() };
        let op = DropIndex {
            table: "t".into(),
            name: "i".into(),
        };
        let out = op
            .contract(&Cx {
                sql: &my,
                catalog: crate::phases::ops::no_catalog(),
                planning: false,
                table: None,
                tag: String::new(),
                resuming: false,
            })
            .unwrap();
        assert_eq!(
            out[0].sql,
            "ALTER TABLE `d`.`t` DROP INDEX IF EXISTS `i`, ALGORITHM=INPLACE, LOCK=NONE"
        );
    }
}
