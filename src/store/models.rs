//! Registered models: versions, lineage to the run that produced them, archiving.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{Error, Result, Store};

/// One registered model version. Its files live in `artifacts/models/<name>/<version>/<artifact>`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelRecord {
    pub name: String,
    pub version: String,
    /// `custom_model`, `mlflow_model` or `triton_model`.
    #[serde(rename = "type")]
    pub model_type: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    #[serde(default)]
    pub flavors: Option<serde_json::Value>,
    #[serde(default)]
    pub stage: Option<String>,
    /// The path as the user gave it (`runs:/<id>/outputs/model.pkl`, `./model`).
    pub source: String,
    /// File or folder name kept below the version folder (Azure keeps the basename).
    pub artifact: String,
    pub is_file: bool,
    /// sha256 of the deterministic tar of the artifact: same files, same hash.
    pub sha256: String,
    pub size: u64,
    /// Lineage: the run whose outputs were registered, and its experiment.
    #[serde(default)]
    pub job_id: Option<String>,
    #[serde(default)]
    pub experiment: Option<String>,
    #[serde(default)]
    pub archived: bool,
    pub created_at: String,
}

impl Store {
    /// Stores a new model version; an existing `(name, version)` is an error.
    pub fn insert_model(&self, rec: &ModelRecord) -> Result<()> {
        let conn = self.conn();
        let json = serde_json::to_string(rec)?;
        let done = conn.execute(
            "INSERT OR IGNORE INTO models (name, version, record, archived, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![rec.name, rec.version, json, rec.archived, rec.created_at],
        )?;
        if done == 0 {
            return Err(Error::ModelExists {
                name: rec.name.clone(),
                version: rec.version.clone(),
            });
        }
        Ok(())
    }

    /// One version, or the latest (most recently created, not archived) when `version` is None.
    pub fn model(&self, name: &str, version: Option<&str>) -> Result<Option<ModelRecord>> {
        let conn = self.conn();
        let json: Option<String> = match version {
            Some(v) => conn
                .query_row(
                    "SELECT record FROM models WHERE name = ?1 AND version = ?2",
                    params![name, v],
                    |r| r.get(0),
                )
                .optional()?,
            None => conn
                .query_row(
                    "SELECT record FROM models WHERE name = ?1 AND archived = 0
                     ORDER BY seq DESC LIMIT 1",
                    params![name],
                    |r| r.get(0),
                )
                .optional()?,
        };
        Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
    }

    /// Models, newest version first within each name; archived ones only when asked.
    pub fn models(&self, name: Option<&str>, include_archived: bool) -> Result<Vec<ModelRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT record FROM models
             WHERE (?1 IS NULL OR name = ?1) AND (?2 OR archived = 0)
             ORDER BY name, seq DESC",
        )?;
        let rows = stmt.query_map(params![name, include_archived], |r| r.get::<_, String>(0))?;
        rows.map(|j| Ok(serde_json::from_str(&j?)?)).collect()
    }

    /// One more than the highest numeric version of `name` ("1" when new).
    pub fn next_model_version(&self, name: &str) -> Result<String> {
        let max: Option<i64> = self.conn().query_row(
            "SELECT MAX(CAST(version AS INTEGER)) FROM models WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )?;
        Ok((max.unwrap_or(0) + 1).to_string())
    }

    /// Archives (or restores) a version; archived versions are hidden from lists and `@latest`.
    pub fn set_model_archived(
        &self,
        name: &str,
        version: &str,
        archived: bool,
    ) -> Result<ModelRecord> {
        let mut rec = self
            .model(name, Some(version))?
            .ok_or_else(|| Error::NoModel(format!("{name}:{version}")))?;
        rec.archived = archived;
        self.conn().execute(
            "UPDATE models SET record = ?3, archived = ?4 WHERE name = ?1 AND version = ?2",
            params![name, version, serde_json::to_string(&rec)?, archived],
        )?;
        Ok(rec)
    }
}
