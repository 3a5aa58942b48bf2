//! Data assets (`tug data create`): named, versioned pointers to data, immutable once
//! written. Local data is copied into the workspace datastore when registered, so a version
//! keeps meaning the same bytes.

use serde::{Deserialize, Serialize};

use super::components::Versioned;
use super::{Error, Result, Store};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataRecord {
    pub name: String,
    pub version: String,
    /// `uri_file` or `uri_folder`.
    #[serde(rename = "type")]
    pub data_type: String,
    /// Where the data is: a folder or file on this host (the workspace datastore's copy),
    /// or the remote URI it was registered with.
    pub path: String,
    /// The path as Azure ML would show it (`azureml://datastores/workspaceblobstore/...`
    /// for a copy, else the URI).
    pub uri: String,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// sha256 over the copied files (local data only).
    pub content: Option<String>,
    /// What `path:` said when it was registered.
    pub source: String,
    pub created_at: String,
}

impl Versioned for DataRecord {
    const TABLE: &'static str = "data_assets";
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
        (&self.data_type, &self.path, &self.content)
            == (&other.data_type, &other.path, &other.content)
    }
    fn missing(name: String) -> Error {
        Error::NoData(name)
    }
    fn conflict(name: String, version: String) -> Error {
        Error::DataConflict { name, version }
    }
}

impl Store {
    pub fn put_data(&self, rec: &DataRecord) -> Result<(DataRecord, bool)> {
        self.put_versioned(rec)
    }

    pub fn data(&self, name: &str, version: Option<&str>) -> Result<DataRecord> {
        self.versioned(name, version)
    }

    pub fn data_assets(&self) -> Result<Vec<DataRecord>> {
        self.all_versioned()
    }
}
