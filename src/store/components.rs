//! Registered command components (`tug component create`): each version's file text and
//! the snapshot of the files it names, immutable once written.

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

impl Store {
    /// Registers a version. The same content under an existing version is a no-op
    /// (false); different content is [`Error::ComponentConflict`]. `version: ""` takes the
    /// next whole number, unless the content is the latest version's.
    pub fn put_component(&self, rec: &ComponentRecord) -> Result<(ComponentRecord, bool)> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let mut rec = rec.clone();
        if rec.version.is_empty() {
            // Unchanged since the latest version: that version, not a new one.
            let latest: Option<String> = tx
                .query_row(
                    "SELECT record FROM components WHERE name = ?1 ORDER BY seq DESC LIMIT 1",
                    params![rec.name],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(json) = latest {
                let old: ComponentRecord = serde_json::from_str(&json)?;
                if old.content() == rec.content() {
                    return Ok((old, false));
                }
            }
            let top: Option<i64> = tx.query_row(
                "SELECT MAX(CAST(version AS INTEGER)) FROM components
                 WHERE name = ?1 AND version GLOB '[0-9]*' AND version NOT GLOB '*[^0-9]*'",
                params![rec.name],
                |r| r.get(0),
            )?;
            rec.version = (top.unwrap_or(0) + 1).to_string();
        }
        let existing: Option<String> = tx
            .query_row(
                "SELECT record FROM components WHERE name = ?1 AND version = ?2",
                params![rec.name, rec.version],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(json) = existing {
            let old: ComponentRecord = serde_json::from_str(&json)?;
            return if old.content() == rec.content() {
                Ok((old, false))
            } else {
                Err(Error::ComponentConflict {
                    name: rec.name,
                    version: rec.version,
                })
            };
        }
        tx.execute(
            "INSERT INTO components (name, version, record, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![
                rec.name,
                rec.version,
                serde_json::to_string(&rec)?,
                rec.created_at
            ],
        )?;
        tx.commit()?;
        Ok((rec, true))
    }

    /// One version, or the latest registered when `version` is None.
    pub fn component(&self, name: &str, version: Option<&str>) -> Result<ComponentRecord> {
        let json: Option<String> = self
            .conn()
            .query_row(
                "SELECT record FROM components WHERE name = ?1 AND (?2 IS NULL OR version = ?2)
                 ORDER BY seq DESC LIMIT 1",
                params![name, version],
                |r| r.get(0),
            )
            .optional()?;
        match json {
            Some(j) => Ok(serde_json::from_str(&j)?),
            None => Err(Error::NoComponent(match version {
                Some(v) => format!("{name}:{v}"),
                None => name.to_string(),
            })),
        }
    }

    /// Every version, by name then registration order.
    pub fn components(&self) -> Result<Vec<ComponentRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT record FROM components ORDER BY name, seq")?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.iter()
            .map(|j| serde_json::from_str(j).map_err(Error::from))
            .collect()
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
