//! ProductSection properties at deployment: the user's assignments
//! (`--prop KEY=VALUE`, `--prop-file`) checked against each property's type
//! and qualifiers, and the final value of every property.
//!
//! DSP0243's rules: a property's value is the user's, else the value for
//! the chosen deployment configuration, else its `ovf:value`, else the empty
//! string. Only `ovf:userConfigurable="true"` properties can be set. A
//! property whose final value does not fit its type or qualifiers and that
//! the user did not set is *required* (DSP0243 makes a property mandatory
//! exactly this way: no `ovf:value` on an integer, or `MinLen(1)` on a
//! string); the run stops listing what to pass.

pub mod prop_file;
#[cfg(test)]
pub(crate) mod tests;
mod types;

pub use types::{
    check_value, first_non_xml_char, parse_qualifiers, Qualifier, ValueProblem, ValueType,
};

use crate::model::{Content, Envelope, Property};
use serde::Serialize;

/// One `KEY=VALUE` the user gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub key: String,
    pub value: String,
    /// Where it was given, for messages: `--prop` or `FILE:LINE`.
    pub origin: String,
}

/// `--prop` text without `=`, or with nothing before it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("'{0}' is not KEY=VALUE (a property key, '=', then the value)")]
pub struct NotAnAssignment(String);

impl std::str::FromStr for Assignment {
    type Err = NotAnAssignment;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((key, value)) if !key.trim().is_empty() => Ok(Assignment {
                key: key.trim().to_string(),
                value: value.to_string(),
                origin: "--prop".into(),
            }),
            _ => Err(NotAnAssignment(s.chars().take(80).collect())),
        }
    }
}

/// Where a final value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueSource {
    /// `--prop` or `--prop-file`.
    User,
    /// The `Value` element of the chosen deployment configuration.
    Configuration,
    /// `ovf:value`.
    Default,
    /// Nothing: the empty string.
    Empty,
}

/// A property with its final value.
#[derive(Debug, Clone, Serialize)]
pub struct FinalProperty {
    /// The VirtualSystem or collection whose ProductSection declares it.
    pub owner: String,
    pub key: String,
    /// `class.key.instance`, the key in the OVF environment.
    pub full_key: String,
    pub value: String,
    pub source: ValueSource,
    pub password: bool,
}

/// A property that needs a value the user did not give.
#[derive(Debug, Clone, Serialize)]
pub struct MissingProperty {
    /// The VirtualSystem or collection whose ProductSection declares it.
    pub owner: String,
    pub full_key: String,
    /// The declared type and qualifiers, for the message.
    pub declared: String,
    pub label: Option<String>,
    /// Why the value it would get does not do.
    pub problem: String,
}

/// Every property's final value, and those still missing one.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Resolution {
    pub properties: Vec<FinalProperty>,
    pub missing: Vec<MissingProperty>,
    /// Package defaults that do not fit their own declaration (used as they are).
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PropertyError {
    #[error("{origin}: the package has no property '{key}' ({})", known_list(.known))]
    UnknownKey {
        key: String,
        origin: String,
        known: Vec<String>,
    },
    #[error("{origin}: '{key}' names several properties; use one of: {}", .candidates.join(", "))]
    Ambiguous {
        key: String,
        origin: String,
        candidates: Vec<String>,
    },
    #[error("{origin}: property '{key}' is not user-configurable (the package does not declare ovf:userConfigurable=\"true\"), so it cannot be set")]
    NotConfigurable { key: String, origin: String },
    #[error("{origin}: bad value for property '{key}' ({declared}): {problem}")]
    BadValue {
        key: String,
        origin: String,
        declared: String,
        problem: Box<ValueProblem>,
    },
    #[error("{} no value yet: pass {}", if .0.len() == 1 { "this property has" } else { "these properties have" }, missing_list(.0))]
    Required(Vec<MissingProperty>),
    #[error("disk '{disk}' capacity is ${{{key}}}, and '{value}' is not a size: {reason}")]
    Capacity {
        disk: String,
        key: String,
        value: String,
        reason: String,
    },
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "it declares none".into()
    } else {
        format!("it has: {}", known.join(", "))
    }
}

fn missing_list(missing: &[MissingProperty]) -> String {
    missing
        .iter()
        .map(|m| {
            let label = m.label.as_deref().map(|l| format!(": {l}"));
            format!(
                "--prop {}=VALUE ({}{})",
                m.full_key,
                m.declared,
                label.unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `string, MinLen(1)`: a property's declaration for messages.
pub fn declared(p: &Property) -> String {
    match p
        .qualifiers
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
    {
        Some(q) => format!("{}, {q}", ValueType::parse(&p.value_type)),
        None => ValueType::parse(&p.value_type).to_string(),
    }
}

/// Every property of the envelope with the ProductSection owner's id,
/// collections before their members, in document order.
pub fn all_properties(env: &Envelope) -> Vec<(String, &Property)> {
    fn walk<'a>(c: &'a Content, out: &mut Vec<(String, &'a Property)>) {
        for p in c.products().iter().flat_map(|p| p.properties.iter()) {
            out.push((c.id().to_string(), p));
        }
        if let Content::VirtualSystemCollection(col) = c {
            col.members.iter().for_each(|m| walk(m, out));
        }
    }
    let mut out = Vec::new();
    if let Some(c) = &env.content {
        walk(c, &mut out);
    }
    out
}

/// Apply `assignments` (later ones win) to the envelope's properties under
/// deployment `configuration` (default: the package's).
pub fn resolve(
    env: &Envelope,
    configuration: Option<&str>,
    assignments: &[Assignment],
) -> Result<Resolution, PropertyError> {
    let props = all_properties(env);
    let mut user: Vec<Option<String>> = vec![None; props.len()];
    for a in assignments {
        let found = matching(&props, a)?;
        // Systems of a collection may share a full key: set the ones the
        // user may set; refuse when none is.
        let settable: Vec<usize> = found
            .iter()
            .copied()
            .filter(|&i| props[i].1.user_configurable)
            .collect();
        if settable.is_empty() {
            return Err(PropertyError::NotConfigurable {
                key: props[found[0]].1.full_key.clone(),
                origin: a.origin.clone(),
            });
        }
        for i in settable {
            let p = props[i].1;
            let ty = ValueType::parse(&p.value_type);
            let quals = parse_qualifiers(p.qualifiers.as_deref().unwrap_or(""));
            let value =
                check_value(&ty, &quals, &a.value).map_err(|problem| PropertyError::BadValue {
                    key: p.full_key.clone(),
                    origin: a.origin.clone(),
                    declared: declared(p),
                    problem: Box::new(problem),
                })?;
            user[i] = Some(value);
        }
    }
    let configuration = configuration
        .map(str::to_string)
        .or_else(|| env.default_configuration().map(|c| c.id.clone()));
    let mut out = Resolution::default();
    for ((owner, p), given) in props.iter().zip(user) {
        let (value, source) = match given {
            Some(v) => (v, ValueSource::User),
            None => package_value(p, configuration.as_deref()),
        };
        if source != ValueSource::User {
            let ty = ValueType::parse(&p.value_type);
            let quals = parse_qualifiers(p.qualifiers.as_deref().unwrap_or(""));
            if let Err(problem) = check_value(&ty, &quals, &value) {
                if p.user_configurable && value.is_empty() {
                    out.missing.push(MissingProperty {
                        owner: owner.clone(),
                        full_key: p.full_key.clone(),
                        declared: declared(p),
                        label: p.label.clone(),
                        problem: problem.to_string(),
                    });
                } else {
                    out.warnings.push(format!(
                        "property '{}': the package's value does not fit its declaration ({}): {problem}; it is passed as it is",
                        p.full_key,
                        declared(p)
                    ));
                }
            }
        }
        out.properties.push(FinalProperty {
            owner: owner.clone(),
            key: p.key.clone(),
            full_key: p.full_key.clone(),
            value,
            source,
            password: p.password,
        });
    }
    Ok(out)
}

/// The value the package gives (configuration, default, or empty).
fn package_value(p: &Property, configuration: Option<&str>) -> (String, ValueSource) {
    if let Some((_, v)) = p
        .configuration_values
        .iter()
        .find(|(c, _)| Some(c.as_str()) == configuration)
    {
        return (v.clone(), ValueSource::Configuration);
    }
    match &p.value {
        Some(v) => (v.clone(), ValueSource::Default),
        None => (String::new(), ValueSource::Empty),
    }
}

/// The properties `a.key` names: a full key, or a plain key when every
/// property with that key has the same full key.
fn matching(props: &[(String, &Property)], a: &Assignment) -> Result<Vec<usize>, PropertyError> {
    let by_full: Vec<usize> = (0..props.len())
        .filter(|&i| props[i].1.full_key == a.key)
        .collect();
    if !by_full.is_empty() {
        return Ok(by_full);
    }
    let by_key: Vec<usize> = (0..props.len())
        .filter(|&i| props[i].1.key == a.key)
        .collect();
    let mut full_keys: Vec<String> = by_key
        .iter()
        .map(|&i| props[i].1.full_key.clone())
        .collect();
    full_keys.sort();
    full_keys.dedup();
    match full_keys.len() {
        0 => {
            let mut known: Vec<String> = props.iter().map(|(_, p)| p.full_key.clone()).collect();
            known.sort();
            known.dedup();
            Err(PropertyError::UnknownKey {
                key: a.key.clone(),
                origin: a.origin.clone(),
                known,
            })
        }
        1 => Ok(by_key),
        _ => Err(PropertyError::Ambiguous {
            key: a.key.clone(),
            origin: a.origin.clone(),
            candidates: full_keys,
        }),
    }
}

/// Fail when a property still needs a value.
impl Resolution {
    pub fn require_complete(&self) -> Result<(), PropertyError> {
        self.require_complete_for(|_| true)
    }

    /// Like [`Self::require_complete`], for the properties of the owners
    /// `relevant` accepts (those in the running system's environment).
    pub fn require_complete_for(
        &self,
        relevant: impl Fn(&str) -> bool,
    ) -> Result<(), PropertyError> {
        let missing: Vec<MissingProperty> = self
            .missing
            .iter()
            .filter(|m| relevant(&m.owner))
            .cloned()
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(PropertyError::Required(missing))
        }
    }

    /// The final value of `key` (plain or full) as `${key}` uses it.
    pub fn value_of(&self, key: &str) -> Option<&str> {
        self.find(key).map(|p| p.value.as_str())
    }

    /// The property `key` (full key first, then plain) names.
    pub fn find(&self, key: &str) -> Option<&FinalProperty> {
        self.properties
            .iter()
            .find(|p| p.full_key == key)
            .or_else(|| self.properties.iter().find(|p| p.key == key))
    }

    fn is_missing(&self, p: &FinalProperty) -> bool {
        self.missing
            .iter()
            .any(|m| m.owner == p.owner && m.full_key == p.full_key)
    }
}

/// The envelope with `${key}` disk capacities taken from the final values
/// (a capacity whose property is still missing stays as parsed).
pub fn apply_to_envelope(
    env: &Envelope,
    resolution: &Resolution,
) -> Result<Envelope, PropertyError> {
    let mut out = env.clone();
    for disk in &mut out.disks {
        let Some(key) = disk.capacity_property.clone() else {
            continue;
        };
        let found = resolution.find(&key);
        if found.is_some_and(|p| resolution.is_missing(p)) {
            continue; // required and not given: stays as parsed until then
        }
        let value = found.map(|p| p.value.clone()).unwrap_or_default();
        let bad = |reason: String| PropertyError::Capacity {
            disk: disk.disk_id.clone(),
            key: key.clone(),
            value: value.chars().take(40).collect(),
            reason,
        };
        let quantity: u64 = value
            .trim()
            .parse()
            .map_err(|_| bad("not a whole number".into()))?;
        let bytes = crate::units::to_bytes(quantity, &disk.capacity_units).map_err(bad)?;
        if bytes > crate::model::MAX_DISK_BYTES {
            return Err(bad("beyond the 2^56-byte limit".into()));
        }
        disk.capacity_bytes = bytes;
    }
    Ok(out)
}
