//! Registered command components (`tug component create`): each version's file text and
//! the snapshot of the files it names, immutable once written; and the versioned-asset
//! table logic they share with data assets.

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{Error, Result, Store};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentRecord {
    pub name: String,
    pub version: String,
    pub display_name: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    pub is_deterministic: bool,
    /// The component file as registered.
    pub text: String,
    /// Where the file sits inside the snapshot (`train/component.yml`): its relative
    /// paths resolve against that folder once the snapshot is unpacked.
    pub file: String,
    /// sha256 of the snapshot tar (code, additional includes, conda file).
    pub snapshot: String,
    pub created_at: String,
}

impl ComponentRecord {
    /// What makes two registrations the same: text and files, not when or by whom.
    fn content(&self) -> (&str, &str, &str) {
        (&self.text, &self.file, &self.snapshot)
    }
}

/// A record kept by `(name, version)` with immutable versions: registered components
/// and data assets.
pub(crate) trait Versioned: Serialize + serde::de::DeserializeOwned + Clone {
    const TABLE: &'static str;
    fn name(&self) -> &str;
    fn version(&self) -> &str;
    fn set_version(&mut self, v: String);
    fn created_at(&self) -> &str;
    /// Whether two registrations hold the same thing (not when they were made).
    fn same_content(&self, other: &Self) -> bool;
    fn missing(name: String) -> Error;
    fn conflict(name: String, version: String) -> Error;
}

impl Versioned for ComponentRecord {
    const TABLE: &'static str = "components";
    fn name(&self) -> &str {
        &self.name
    }
    fn version(&self) -> &str {
        &self.version
    }
    fn set_version(&mut self, v: String) {
        self.version = v;
    }
    fn created_at(&self) -> &str {
        &self.created_at
    }
    fn same_content(&self, other: &Self) -> bool {
        self.content() == other.content()
    }
    fn missing(name: String) -> Error {
        Error::NoComponent(name)
    }
    fn conflict(name: String, version: String) -> Error {
        Error::ComponentConflict { name, version }
    }
}

impl Store {
    /// Registers a version. The same content under an existing version is a no-op
    /// (false); different content is a conflict. `version: ""` takes the next whole
    /// number, unless the content is the latest version's.
    pub(crate) fn put_versioned<R: Versioned>(&self, rec: &R) -> Result<(R, bool)> {
        let table = R::TABLE;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut rec = rec.clone();
        let read = |json: String| -> Result<R> { Ok(serde_json::from_str(&json)?) };
        if rec.version().is_empty() {
            // Unchanged since the latest version: that version, not a new one.
            let latest: Option<String> = tx
                .query_row(
                    &format!(
                        "SELECT record FROM {table} WHERE name = ?1 ORDER BY seq DESC LIMIT 1"
                    ),
                    params![rec.name()],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(json) = latest {
                let old = read(json)?;
                if old.same_content(&rec) {
                    return Ok((old, false));
                }
            }
            let top: Option<i64> = tx.query_row(
                &format!(
                    "SELECT MAX(CAST(version AS INTEGER)) FROM {table}
                     WHERE name = ?1 AND version GLOB '[0-9]*' AND version NOT GLOB '*[^0-9]*'"
                ),
                params![rec.name()],
                |r| r.get(0),
            )?;
            rec.set_version((top.unwrap_or(0) + 1).to_string());
        }
        let existing: Option<String> = tx
            .query_row(
                &format!("SELECT record FROM {table} WHERE name = ?1 AND version = ?2"),
                params![rec.name(), rec.version()],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(json) = existing {
            let old = read(json)?;
            return if old.same_content(&rec) {
                Ok((old, false))
            } else {
                Err(R::conflict(rec.name().into(), rec.version().into()))
            };
        }
        tx.execute(
            &format!(
                "INSERT INTO {table} (name, version, record, created_at) VALUES (?1, ?2, ?3, ?4)"
            ),
            params![
                rec.name(),
                rec.version(),
                serde_json::to_string(&rec)?,
                rec.created_at()
            ],
        )?;
        tx.commit()?;
        Ok((rec, true))
    }

    /// One version, or the latest registered when `version` is None.
    pub(crate) fn versioned<R: Versioned>(&self, name: &str, version: Option<&str>) -> Result<R> {
        let json: Option<String> = self
            .conn()
            .query_row(
                &format!(
                    "SELECT record FROM {} WHERE name = ?1 AND (?2 IS NULL OR version = ?2)
                     ORDER BY seq DESC LIMIT 1",
                    R::TABLE
                ),
                params![name, version],
                |r| r.get(0),
            )
            .optional()?;
        match json {
            Some(j) => Ok(serde_json::from_str(&j)?),
            None => Err(R::missing(match version {
                Some(v) => format!("{name}:{v}"),
                None => name.to_string(),
            })),
        }
    }

    /// Every version, by name then registration order.
    pub(crate) fn all_versioned<R: Versioned>(&self) -> Result<Vec<R>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT record FROM {} ORDER BY name, seq",
            R::TABLE
        ))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.iter()
            .map(|j| serde_json::from_str(j).map_err(Error::from))
            .collect()
    }

    pub fn put_component(&self, rec: &ComponentRecord) -> Result<(ComponentRecord, bool)> {
        self.put_versioned(rec)
    }

    pub fn component(&self, name: &str, version: Option<&str>) -> Result<ComponentRecord> {
        self.versioned(name, version)
    }

    pub fn components(&self) -> Result<Vec<ComponentRecord>> {
        self.all_versioned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(version: &str, text: &str) -> ComponentRecord {
        ComponentRecord {
            name: "train".into(),
            version: version.into(),
            display_name: None,
            description: None,
            tags: Default::default(),
            is_deterministic: true,
            text: text.into(),
            file: "train.yml".into(),
            snapshot: "ab".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn versions_count_up_are_immutable_and_latest_is_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let (a, created) = store.put_component(&rec("", "one")).unwrap();
        assert_eq!((a.version.as_str(), created), ("1", true));
        let (b, _) = store.put_component(&rec("", "two")).unwrap();
        assert_eq!(b.version, "2");
        // Same content again under its version: nothing new.
        let (again, created) = store.put_component(&rec("2", "two")).unwrap();
        assert_eq!((again.version.as_str(), created), ("2", false));
        let (again, created) = store.put_component(&rec("", "two")).unwrap();
        assert_eq!((again.version.as_str(), created), ("2", false));
        assert!(matches!(
            store.put_component(&rec("2", "changed")),
            Err(Error::ComponentConflict { .. })
        ));
        store.put_component(&rec("beta", "three")).unwrap();
        assert_eq!(
            store.put_component(&rec("", "four")).unwrap().0.version,
            "3"
        );
        assert_eq!(store.component("train", None).unwrap().text, "four");
        assert_eq!(store.component("train", Some("1")).unwrap().text, "one");
        assert!(matches!(
            store.component("train", Some("9")),
            Err(Error::NoComponent(n)) if n == "train:9"
        ));
        assert_eq!(store.components().unwrap().len(), 4);
    }
}
