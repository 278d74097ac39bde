//! JSON paths in the style people read in Keycloak files: `clients[0].redirectUris[2]`,
//! with keys that are not plain names quoted (`attributes["pkce.code.challenge.method"]`)
//! so that a dotted attribute name is not mistaken for nesting.

/// One step into a JSON document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    Index(usize),
    Key(String),
}

pub(crate) fn render(segs: &[Seg]) -> String {
    segs.iter().fold(String::new(), |out, s| match s {
        Seg::Index(i) => format!("{out}[{i}]"),
        Seg::Key(k) => join_key(&out, k),
    })
}

/// `prefix` followed by the object key `key`.
pub(crate) fn join_key(prefix: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !plain {
        // A JSON string literal is unambiguous whatever the key holds.
        let quoted = serde_json::Value::String(key.to_owned()).to_string();
        format!("{prefix}[{quoted}]")
    } else if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The path serde_ignored reports, without its `Option`/newtype steps (invisible in JSON).
pub(crate) fn from_ignored(path: &serde_ignored::Path<'_>) -> Vec<Seg> {
    let mut out = Vec::new();
    let mut cur = Some(path);
    while let Some(p) = cur {
        cur = match p {
            serde_ignored::Path::Root => None,
            serde_ignored::Path::Seq { parent, index } => {
                out.push(Seg::Index(*index));
                Some(*parent)
            }
            serde_ignored::Path::Map { parent, key } => {
                out.push(Seg::Key(key.clone()));
                Some(*parent)
            }
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => Some(*parent),
        };
    }
    out.reverse();
    out
}

pub(crate) fn from_tracked(path: &serde_path_to_error::Path) -> Vec<Seg> {
    path.iter()
        .map(|s| match s {
            serde_path_to_error::Segment::Seq { index } => Seg::Index(*index),
            serde_path_to_error::Segment::Map { key } => Seg::Key(key.clone()),
            serde_path_to_error::Segment::Enum { variant } => Seg::Key(variant.clone()),
            serde_path_to_error::Segment::Unknown => Seg::Key("?".to_owned()),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn renders_keycloak_style() {
        let p = [
            Seg::Key("clients".into()),
            Seg::Index(0),
            Seg::Key("attributes".into()),
            Seg::Key("pkce.code.challenge.method".into()),
        ];
        assert_eq!(
            render(&p),
            r#"clients[0].attributes["pkce.code.challenge.method"]"#
        );
        assert_eq!(render(&[Seg::Key("realm".into())]), "realm");
        assert_eq!(render(&[]), "");
    }
}
