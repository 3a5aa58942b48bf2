//! Online endpoints and their deployments, stored whole as JSON records.

use rusqlite::{OptionalExtension, params};

use super::{Result, Store, now};
use crate::endpoint::{DeploymentRecord, EndpointRecord};

impl Store {
    /// Inserts or replaces an endpoint record.
    pub fn put_endpoint(&self, rec: &EndpointRecord) -> Result<()> {
        self.conn().execute(
            "INSERT INTO endpoints (name, record, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE SET record = excluded.record",
            params![rec.name, serde_json::to_string(rec)?, now()],
        )?;
        self.notify();
        Ok(())
    }

    pub fn endpoint(&self, name: &str) -> Result<Option<EndpointRecord>> {
        let json: Option<String> = self
            .conn()
            .query_row(
                "SELECT record FROM endpoints WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?;
        Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
    }

    pub fn endpoints(&self) -> Result<Vec<EndpointRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT record FROM endpoints ORDER BY name")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.map(|j| Ok(serde_json::from_str(&j?)?)).collect()
    }

    /// Removes an endpoint and every deployment record under it.
    pub fn delete_endpoint(&self, name: &str) -> Result<()> {
        let conn = self.conn();
        let tx = conn.unchecked_transaction()?;
        tx.execute("DELETE FROM deployments WHERE endpoint = ?1", params![name])?;
        tx.execute("DELETE FROM endpoints WHERE name = ?1", params![name])?;
        tx.commit()?;
        drop(conn);
        self.notify();
        Ok(())
    }

    /// Inserts or replaces a deployment record.
    pub fn put_deployment(&self, rec: &DeploymentRecord) -> Result<()> {
        self.conn().execute(
            "INSERT INTO deployments (endpoint, name, record, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (endpoint, name) DO UPDATE SET record = excluded.record",
            params![rec.endpoint, rec.name, serde_json::to_string(rec)?, now()],
        )?;
        self.notify();
        Ok(())
    }

    pub fn deployment(&self, endpoint: &str, name: &str) -> Result<Option<DeploymentRecord>> {
        let json: Option<String> = self
            .conn()
            .query_row(
                "SELECT record FROM deployments WHERE endpoint = ?1 AND name = ?2",
                params![endpoint, name],
                |r| r.get(0),
            )
            .optional()?;
        Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
    }

    pub fn deployments(&self, endpoint: &str) -> Result<Vec<DeploymentRecord>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT record FROM deployments WHERE endpoint = ?1 ORDER BY name")?;
        let rows = stmt.query_map(params![endpoint], |r| r.get::<_, String>(0))?;
        rows.map(|j| Ok(serde_json::from_str(&j?)?)).collect()
    }

    pub fn delete_deployment(&self, endpoint: &str, name: &str) -> Result<()> {
        self.conn().execute(
            "DELETE FROM deployments WHERE endpoint = ?1 AND name = ?2",
            params![endpoint, name],
        )?;
        self.notify();
        Ok(())
    }
}
