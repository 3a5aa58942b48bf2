//! The data asset file (`az ml data create -f`): `name`, `version`, `type` (`uri_file` or
//! `uri_folder`), `path` (a local file or folder, joined to the file's folder, or a URI),
//! `description`, `tags`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::document::Document;
use super::enums::InputType;
use super::error::SpecError;
use super::fields::{SourcePath, fix_scalar_map, scalar_map};

/// A data asset file, read.
#[derive(Debug, Clone, PartialEq)]
pub struct DataAsset {
    pub name: String,
    pub version: Option<String>,
    pub data_type: InputType,
    pub path: SourcePath,
    pub description: Option<String>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawData {
    #[serde(rename = "$schema", default)]
    _schema: Option<String>,
    name: String,
    #[serde(default)]
    version: Option<serde_yaml::Value>,
    #[serde(rename = "type", default)]
    data_type: Option<InputType>,
    path: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, deserialize_with = "scalar_map")]
    tags: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "scalar_map")]
    properties: BTreeMap<String, String>,
}

const DATA_EXAMPLE: &str = "      name: digits\n      type: uri_folder\n      path: ./data";

pub(crate) fn read(doc: &Document) -> Result<DataAsset, SpecError> {
    doc.root_mapping(DATA_EXAMPLE)?;
    let raw: RawData = doc.deserialize()?;
    let _ = raw.properties;
    if !super::valid_model_name(&raw.name) {
        return Err(doc.invalid(
            "name",
            false,
            format!("`{}` is not a valid data asset name", raw.name),
            "a data asset name has letters, digits, `-` and `_`, starting with a letter or digit",
        ));
    }
    let data_type = raw.data_type.unwrap_or(InputType::UriFolder);
    if !matches!(data_type, InputType::UriFile | InputType::UriFolder) {
        return Err(doc.unsupported(
            "type",
            false,
            format!(
                "`type: {}` data assets are not supported",
                data_type.as_str()
            ),
            "register the data as `type: uri_folder` (a folder) or `type: uri_file` (one file)",
        ));
    }
    if raw.path.trim().is_empty() {
        return Err(doc.invalid(
            "path",
            false,
            "`path` is empty".into(),
            "give the data's local file or folder, or its URI (https://, s3://, azureml://datastores/...)",
        ));
    }
    if raw.path.starts_with("azureml:") && !raw.path.starts_with("azureml://") {
        return Err(doc.invalid(
            "path",
            false,
            format!("`{}` names an asset, not data", raw.path),
            "give the data's file or folder, or a URI",
        ));
    }
    let version = doc.version_text("version", raw.version);
    let mut path = SourcePath::parse(&raw.path);
    path.resolve(doc.path.parent().unwrap_or(std::path::Path::new("")));
    let mut tags = raw.tags;
    fix_scalar_map(doc, "tags", &mut tags);
    Ok(DataAsset {
        name: raw.name,
        version,
        data_type,
        path,
        description: raw.description,
        tags,
    })
}
