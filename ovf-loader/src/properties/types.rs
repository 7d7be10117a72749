//! A property's declared type and qualifiers (DSP0243 ProductSection
//! `ovf:type`, `ovf:qualifiers`) and the check of one value against them.
//!
//! Types: `string`, `boolean`, `uint8`…`uint64`, `sint8`…`sint64`,
//! `real32`, `real64` (matched without regard to case; VMware's `int` is
//! read as `sint32` and `real` as `real64`). Qualifiers: `MinLen(n)`,
//! `MaxLen(n)` (in characters), `ValueMap{"a","b"}`, `MinValue(n)`,
//! `MaxValue(n)`, separated by commas or spaces; others (VMware's `Ip`,
//! `Netmask`, …) are not checked.

use serde::Serialize;

/// A property's type as declared by `ovf:type`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    String,
    Boolean,
    Uint(u8),
    Sint(u8),
    Real32,
    Real64,
    /// A type ovf-run does not know: any value is taken as it is.
    Other(String),
}

impl ValueType {
    pub fn parse(declared: &str) -> ValueType {
        let t = declared.trim().to_ascii_lowercase();
        match t.as_str() {
            "string" | "" => ValueType::String,
            "boolean" => ValueType::Boolean,
            "int" => ValueType::Sint(32),
            "real" | "real64" => ValueType::Real64,
            "real32" => ValueType::Real32,
            _ => {
                let bits = |p: &str| {
                    t.strip_prefix(p)
                        .and_then(|b| b.parse::<u8>().ok())
                        .filter(|b| [8, 16, 32, 64].contains(b))
                };
                if let Some(b) = bits("uint") {
                    ValueType::Uint(b)
                } else if let Some(b) = bits("sint") {
                    ValueType::Sint(b)
                } else {
                    ValueType::Other(declared.to_string())
                }
            }
        }
    }

    fn is_integer(&self) -> bool {
        matches!(self, ValueType::Uint(_) | ValueType::Sint(_))
    }

    fn is_real(&self) -> bool {
        matches!(self, ValueType::Real32 | ValueType::Real64)
    }

    fn integer_range(&self) -> Option<(i128, i128)> {
        match *self {
            ValueType::Uint(b) => Some((0, (1i128 << b) - 1)),
            ValueType::Sint(b) => Some((-(1i128 << (b - 1)), (1i128 << (b - 1)) - 1)),
            _ => None,
        }
    }
}

impl std::fmt::Display for ValueType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ValueType::String => f.write_str("string"),
            ValueType::Boolean => f.write_str("boolean"),
            ValueType::Uint(b) => write!(f, "uint{b}"),
            ValueType::Sint(b) => write!(f, "sint{b}"),
            ValueType::Real32 => f.write_str("real32"),
            ValueType::Real64 => f.write_str("real64"),
            ValueType::Other(t) => f.write_str(t),
        }
    }
}

/// One qualifier ovf-run checks.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Qualifier {
    MinLen(u64),
    MaxLen(u64),
    ValueMap(Vec<String>),
    MinValue(String),
    MaxValue(String),
}

/// Read `ovf:qualifiers`. Qualifiers ovf-run does not check, and malformed
/// ones, are left out: the guest software is the judge of those.
pub fn parse_qualifiers(text: &str) -> Vec<Qualifier> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let start = i;
        while i < chars.len() && chars[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let name: String = chars[start..i].iter().collect();
        let arg = match chars.get(i) {
            Some(&open @ ('(' | '{')) => {
                let close = if open == '(' { ')' } else { '}' };
                let (arg, next) = read_argument(&chars, i + 1, close);
                i = next;
                Some(arg)
            }
            _ => None,
        };
        if let Some(q) = arg.and_then(|a| qualifier(&name, &a)) {
            out.push(q);
        }
        if i == start {
            i += 1; // a separator or stray character
        }
    }
    out
}

/// The text up to `close` (outside double quotes) and the index after it.
fn read_argument(chars: &[char], mut i: usize, close: char) -> (String, usize) {
    let mut arg = String::new();
    let mut quoted = false;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c == '"' {
            quoted = !quoted;
        } else if c == close && !quoted {
            break;
        }
        arg.push(c);
    }
    (arg, i)
}

fn qualifier(name: &str, arg: &str) -> Option<Qualifier> {
    let number = || arg.trim().parse::<u64>().ok();
    match name {
        "MinLen" => number().map(Qualifier::MinLen),
        "MaxLen" => number().map(Qualifier::MaxLen),
        "MinValue" => Some(Qualifier::MinValue(arg.trim().to_string())),
        "MaxValue" => Some(Qualifier::MaxValue(arg.trim().to_string())),
        "ValueMap" => Some(Qualifier::ValueMap(value_map_entries(arg))),
        _ => None,
    }
}

/// `"a", "b"` or `1, 2`: the entries, unquoted.
fn value_map_entries(arg: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in arg.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut current)),
            _ if quoted => current.push(c),
            _ if c.is_whitespace() => {}
            _ => current.push(c),
        }
    }
    out.push(current);
    out.retain(|e| !e.is_empty());
    out
}

/// Why a value does not fit its property.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueProblem {
    #[error("a boolean is true or false")]
    NotBoolean,
    #[error("{ty} takes a whole number")]
    NotInteger { ty: ValueType },
    #[error("{ty} takes a whole number from {min} to {max}")]
    OutOfRange { ty: ValueType, min: i128, max: i128 },
    #[error("{ty} takes a number (like 1.5)")]
    NotReal { ty: ValueType },
    #[error("it must be at least {min} character(s) long (MinLen), it has {len}")]
    TooShort { min: u64, len: u64 },
    #[error("it must be at most {max} character(s) long (MaxLen), it has {len}")]
    TooLong { max: u64, len: u64 },
    #[error("it must be one of {} (ValueMap)", .allowed.join(", "))]
    NotInValueMap { allowed: Vec<String> },
    #[error("it must be at least {min} (MinValue)")]
    BelowMin { min: String },
    #[error("it must be at most {max} (MaxValue)")]
    AboveMax { max: String },
    #[error("character {position} is U+{code:04X}, a control character XML 1.0 cannot carry (only tab, line feed and carriage return are allowed)")]
    NotXmlChar { position: usize, code: u32 },
}

/// The first character XML 1.0 cannot carry: (1-based position, code).
pub fn first_non_xml_char(value: &str) -> Option<(usize, u32)> {
    value
        .chars()
        .enumerate()
        .find(|(_, c)| {
            let c = *c as u32;
            (c < 0x20 && c != 0x9 && c != 0xA && c != 0xD) || c == 0xFFFE || c == 0xFFFF
        })
        .map(|(i, c)| (i + 1, c as u32))
}

/// Check `value` against the type and qualifiers; the value to use
/// (booleans are written in lower case, everything else as given).
pub fn check_value(
    ty: &ValueType,
    qualifiers: &[Qualifier],
    value: &str,
) -> Result<String, ValueProblem> {
    if let Some((position, code)) = first_non_xml_char(value) {
        return Err(ValueProblem::NotXmlChar { position, code });
    }
    let value = match ty {
        ValueType::Boolean => match value.to_ascii_lowercase().as_str() {
            v @ ("true" | "false") => v.to_string(),
            _ => return Err(ValueProblem::NotBoolean),
        },
        _ => value.to_string(),
    };
    if ty.is_integer() {
        let n: i128 = value
            .parse()
            .map_err(|_| ValueProblem::NotInteger { ty: ty.clone() })?;
        let (min, max) = ty.integer_range().expect("integer type");
        if n < min || n > max {
            return Err(ValueProblem::OutOfRange {
                ty: ty.clone(),
                min,
                max,
            });
        }
    }
    if ty.is_real() && !value.parse::<f64>().is_ok_and(f64::is_finite) {
        return Err(ValueProblem::NotReal { ty: ty.clone() });
    }
    for q in qualifiers {
        check_qualifier(ty, q, &value)?;
    }
    Ok(value)
}

fn check_qualifier(ty: &ValueType, q: &Qualifier, value: &str) -> Result<(), ValueProblem> {
    let len = value.chars().count() as u64;
    match q {
        Qualifier::MinLen(min) if len < *min => Err(ValueProblem::TooShort { min: *min, len }),
        Qualifier::MaxLen(max) if len > *max => Err(ValueProblem::TooLong { max: *max, len }),
        Qualifier::ValueMap(allowed)
            if !allowed.is_empty() && !allowed.iter().any(|a| same_value(ty, a, value)) =>
        {
            Err(ValueProblem::NotInValueMap {
                allowed: allowed.clone(),
            })
        }
        Qualifier::MinValue(min) if compare(ty, value, min) == Some(std::cmp::Ordering::Less) => {
            Err(ValueProblem::BelowMin { min: min.clone() })
        }
        Qualifier::MaxValue(max)
            if compare(ty, value, max) == Some(std::cmp::Ordering::Greater) =>
        {
            Err(ValueProblem::AboveMax { max: max.clone() })
        }
        _ => Ok(()),
    }
}

fn same_value(ty: &ValueType, a: &str, b: &str) -> bool {
    a == b || compare(ty, a, b) == Some(std::cmp::Ordering::Equal)
}

/// Numeric order for numeric types; `None` for others or unreadable bounds.
fn compare(ty: &ValueType, a: &str, b: &str) -> Option<std::cmp::Ordering> {
    if ty.is_integer() {
        return Some(
            a.trim()
                .parse::<i128>()
                .ok()?
                .cmp(&b.trim().parse::<i128>().ok()?),
        );
    }
    if ty.is_real() {
        return a
            .trim()
            .parse::<f64>()
            .ok()?
            .partial_cmp(&b.trim().parse::<f64>().ok()?);
    }
    None
}
