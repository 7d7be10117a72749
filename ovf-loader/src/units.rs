//! Programmatic units (DSP0004 Annex C) as OVF uses them for memory and
//! capacities: `byte * 2^20`, `byte*2^30`, `byte * 2 ^ 20`, `bit`,
//! `byte * 10^3`, `KiloBytes`, `MegaBytes`, `GigaBytes`, `byte`.
//!
//! Parsed by a general rule (a base unit times a product of factors, each
//! `N` or `B^E`), not by a list of spellings, because exporters vary spacing
//! and exponents freely.

/// The multiplier in bytes, or a message saying what could not be understood.
pub fn bytes_multiplier(units: &str) -> Result<u64, String> {
    let compact: String = units.chars().filter(|c| !c.is_whitespace()).collect();
    let lower = compact.to_ascii_lowercase();
    let named = match lower.as_str() {
        "b" | "byte" | "bytes" => Some(1),
        "kb" | "kilobyte" | "kilobytes" | "kib" => Some(1 << 10),
        "mb" | "megabyte" | "megabytes" | "mib" => Some(1 << 20),
        "gb" | "gigabyte" | "gigabytes" | "gib" => Some(1 << 30),
        "tb" | "terabyte" | "terabytes" | "tib" => Some(1 << 40),
        _ => None,
    };
    if let Some(m) = named {
        return Ok(m);
    }
    let mut factors = lower.split('*');
    let base = factors.next().unwrap_or_default();
    let mut value: u64 = match base {
        "byte" | "bytes" => 1,
        "kilobyte" | "kilobytes" => 1 << 10,
        "megabyte" | "megabytes" => 1 << 20,
        "gigabyte" | "gigabytes" => 1 << 30,
        "bit" => return Err(format!("units '{units}' are in bits, not bytes")),
        _ => return Err(format!("unknown allocation units '{units}'")),
    };
    for factor in factors {
        let f = parse_factor(factor)
            .ok_or_else(|| format!("cannot read factor '{factor}' in units '{units}'"))?
            .ok_or_else(|| format!("units '{units}' are too large"))?;
        value = value
            .checked_mul(f)
            .ok_or_else(|| format!("units '{units}' are too large"))?;
    }
    Ok(value)
}

/// `None`: not a factor; `Some(None)`: a factor too large for 64 bits.
fn parse_factor(factor: &str) -> Option<Option<u64>> {
    match factor.split_once('^') {
        Some((base, exp)) => {
            let base: u64 = base.parse().ok()?;
            let exp: u32 = exp.parse().ok()?;
            Some(base.checked_pow(exp))
        }
        None => factor.parse().ok().map(Some),
    }
}

/// `quantity × units` in bytes, refusing overflow.
pub fn to_bytes(quantity: u64, units: &str) -> Result<u64, String> {
    let m = bytes_multiplier(units)?;
    quantity
        .checked_mul(m)
        .ok_or_else(|| format!("{quantity} × '{units}' does not fit in 64 bits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn general_rule() {
        for (u, m) in [
            ("byte * 2^20", 1 << 20),
            ("byte*2^30", 1 << 30),
            ("byte * 2 ^ 20", 1 << 20),
            ("MegaBytes", 1 << 20),
            ("GigaBytes", 1 << 30),
            ("KiloBytes", 1 << 10),
            ("byte", 1),
            ("byte * 10^3", 1000),
            ("byte * 1024", 1024),
            ("byte * 2^10 * 2^10", 1 << 20),
        ] {
            assert_eq!(bytes_multiplier(u), Ok(m), "{u}");
        }
    }

    #[test]
    fn refuses_nonsense_and_overflow() {
        assert!(bytes_multiplier("furlongs").is_err());
        assert!(bytes_multiplier("bit * 2^20").is_err());
        assert!(bytes_multiplier("byte * 2^99").is_err());
        assert!(to_bytes(1 << 60, "GigaBytes").is_err());
        assert!(bytes_multiplier("byte * x^2").is_err());
    }
}
