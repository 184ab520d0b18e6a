//! A peer's nature: natural (a person), artificial (an agent) or absent
//! (a script), and the nature a runtime implies when a peer does not say.

use strum::VariantNames;

/// The nature of a peer. Serialized (and displayed) as its lowercase name.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    serde::Serialize,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantNames,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Intelligence {
    Natural,
    Artificial,
    Absent,
}

/// The names of the natures, as written.
pub const INTELLIGENCES: &[&str] = Intelligence::VARIANTS;

impl Intelligence {
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// A nature by name; `human` and `scripted` are legacy spellings of
    /// `natural` and `absent`.
    pub fn parse(raw: &str) -> Option<Intelligence> {
        match raw {
            "natural" | "human" => Some(Intelligence::Natural),
            "artificial" => Some(Intelligence::Artificial),
            "absent" | "scripted" => Some(Intelligence::Absent),
            _ => None,
        }
    }

    /// The nature a runtime implies when a peer does not say.
    pub fn default_for(runtime: &str) -> Intelligence {
        match runtime {
            "telegram" | "discord" | "matrix" | "email" | "web" => Intelligence::Natural,
            "notifier" | "webhook" | "api" | "cron" => Intelligence::Absent,
            _ => Intelligence::Artificial,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_spellings_and_defaults() {
        assert_eq!(INTELLIGENCES, ["natural", "artificial", "absent"]);
        for name in INTELLIGENCES {
            let i = Intelligence::parse(name).unwrap();
            assert_eq!(i.as_str(), *name);
            assert_eq!(i.to_string(), *name);
            assert_eq!(serde_json::to_value(i).unwrap(), *name);
        }
        assert_eq!(Intelligence::parse("human"), Some(Intelligence::Natural));
        assert_eq!(Intelligence::parse("scripted"), Some(Intelligence::Absent));
        assert_eq!(Intelligence::parse("Natural"), None);
        assert_eq!(Intelligence::parse(""), None);
        assert_eq!(Intelligence::default_for("telegram"), Intelligence::Natural);
        assert_eq!(Intelligence::default_for("cron"), Intelligence::Absent);
        assert_eq!(
            Intelligence::default_for("claude"),
            Intelligence::Artificial
        );
    }
}
