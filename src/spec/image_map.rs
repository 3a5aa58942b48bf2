//! A workspace's stand-ins for public images it cannot pull: `images:` in
//! `.tug/config.yaml` maps a reference an environment names (`library/python:latest`,
//! `mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:*`) to a local image. Pure.
//!
//! References are compared in Docker's normal form (`python` is
//! `docker.io/library/python:latest`). A key ending in `*` matches every reference it is a
//! prefix of (after normalizing the part before the `*`); an exact key beats a pattern, and
//! the longest pattern wins.

use std::collections::BTreeMap;

/// `docker.io/library/python:latest` for `python`, `library/python`, `python:latest`, ...
pub fn normalize(reference: &str) -> String {
    let (name, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    let (name, tag) = split_tag(name);
    let full = normalize_name(name);
    match (tag, digest) {
        (_, Some(d)) => format!("{full}@{d}"),
        (Some(t), None) => format!("{full}:{t}"),
        (None, None) => format!("{full}:latest"),
    }
}

/// (name, tag): the tag is after a `:` in the last path segment (a registry's port is not).
fn split_tag(name: &str) -> (&str, Option<&str>) {
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        Some((_, t)) => (&name[..name.len() - t.len() - 1], Some(t)),
        None => (name, None),
    }
}

fn has_registry(name: &str) -> bool {
    let first = name.split('/').next().unwrap_or(name);
    name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost")
}

/// A repository name in full: `docker.io/library/python` for `python` or `docker.io/python`.
fn normalize_name(name: &str) -> String {
    for hub in ["docker.io/", "index.docker.io/"] {
        if let Some(rest) = name.strip_prefix(hub) {
            return normalize_name(rest);
        }
    }
    if has_registry(name) {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    }
}

/// What a pattern key (without its `*`) matches the start of, in normal form.
fn pattern_prefix(p: &str) -> String {
    if p.is_empty() {
        return String::new();
    }
    if let (name, Some(tag_prefix)) = split_tag(p) {
        // `python:3.*`: any tag of one repository starting so
        return format!("{}:{tag_prefix}", normalize_name(name));
    }
    if let Some(dir) = p.strip_suffix('/') {
        // `myorg/*`, `mcr.microsoft.com/azureml/*`: every repository under a namespace
        return if has_registry(dir) || dir.starts_with("docker.io/") {
            format!("{dir}/")
        } else {
            format!("docker.io/{dir}/")
        };
    }
    // `pyth*`: repository names starting so
    normalize_name(p)
}

/// The local image `reference` runs as, and the key that said so.
pub fn lookup<'a>(
    map: &'a BTreeMap<String, String>,
    reference: &str,
) -> Option<(&'a str, &'a str)> {
    let want = normalize(reference);
    if let Some((k, v)) = map
        .iter()
        .find(|(k, _)| !k.ends_with('*') && normalize(k) == want)
    {
        return Some((k, v));
    }
    map.iter()
        .filter_map(|(k, v)| {
            let prefix = pattern_prefix(k.strip_suffix('*')?);
            want.starts_with(&prefix)
                .then_some((prefix.len(), k.as_str(), v.as_str()))
        })
        .max_by_key(|(len, _, _)| *len)
        .map(|(_, k, v)| (k, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_spellings_normalize_alike() {
        for r in [
            "python",
            "library/python",
            "python:latest",
            "docker.io/library/python:latest",
            "index.docker.io/library/python",
            "docker.io/python",
        ] {
            assert_eq!(normalize(r), "docker.io/library/python:latest", "{r}");
        }
        assert_eq!(normalize("localhost:5000/x/y"), "localhost:5000/x/y:latest");
        assert_eq!(
            normalize("mcr.microsoft.com/azureml/base:1"),
            "mcr.microsoft.com/azureml/base:1"
        );
        assert_eq!(normalize("u/app@sha256:ab"), "docker.io/u/app@sha256:ab");
    }

    #[test]
    fn exact_keys_beat_patterns_and_the_longest_pattern_wins() {
        let map: BTreeMap<String, String> = [
            ("python:*", "tug/python:3.11-minimal"),
            ("python:3.12", "my/py312"),
            ("mcr.microsoft.com/azureml/*", "tug/curated:minimal"),
            (
                "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:*",
                "tug/python:3.11-sklearn",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            lookup(&map, "library/python:latest").unwrap().1,
            "tug/python:3.11-minimal"
        );
        assert_eq!(lookup(&map, "python").unwrap().1, "tug/python:3.11-minimal");
        assert_eq!(lookup(&map, "python:3.12").unwrap().1, "my/py312");
        assert_eq!(
            lookup(
                &map,
                "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest"
            )
            .unwrap()
            .1,
            "tug/python:3.11-sklearn"
        );
        assert_eq!(
            lookup(&map, "mcr.microsoft.com/azureml/other:1").unwrap().1,
            "tug/curated:minimal"
        );
        assert_eq!(
            lookup(&map, "pythonista:1"),
            None,
            "a name is not a prefix of another"
        );
        assert_eq!(lookup(&map, "ubuntu:22.04"), None);
        let more: BTreeMap<String, String> = [("myorg/*", "a"), ("python:3.*", "b"), ("*", "c")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(lookup(&more, "myorg/app:1").unwrap().1, "a");
        assert_eq!(lookup(&more, "docker.io/python:3.8").unwrap().1, "b");
        assert_eq!(
            lookup(&more, "python:2.7").unwrap().1,
            "c",
            "a bare `*` is the fallback"
        );
    }
}
