//! GB/T 30428-style component codes: 6-digit region + 2-digit major class + 2-digit minor class
//! + 6-digit serial, e.g. `3205080101000001`.
//!
//! This module only checks the shape; whether the region and class are known is a registry
//! lookup (the tables are loaded from `config/registry/*.csv`, not written in code).

use std::fmt;

/// A component code whose shape is valid (16 ASCII digits).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentCode(String);

/// Why a string is not a component code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error(
        "must be 16 digits (6 region + 2 major + 2 minor class + 6 serial), got {0} characters"
    )]
    Length(usize),
    #[error("must be digits only, found {0:?}")]
    NotDigit(char),
}

impl ComponentCode {
    pub fn parse(code: &str) -> Result<ComponentCode, CodeError> {
        if let Some(c) = code.chars().find(|c| !c.is_ascii_digit()) {
            return Err(CodeError::NotDigit(c));
        }
        if code.len() != 16 {
            return Err(CodeError::Length(code.chars().count()));
        }
        Ok(ComponentCode(code.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 6-digit administrative region, e.g. `120111` (Xiqing District).
    pub fn region(&self) -> &str {
        &self.0[0..6]
    }

    /// The 2-digit major class, e.g. `01` public utilities.
    pub fn major(&self) -> &str {
        &self.0[6..8]
    }

    /// Major + minor class, the key of `component_classes`, e.g. `0101`.
    pub fn class(&self) -> &str {
        &self.0[6..10]
    }

    /// The 6-digit serial within region and class.
    pub fn serial(&self) -> &str {
        &self.0[10..16]
    }
}

impl fmt::Display for ComponentCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_splits_into_region_class_and_serial() {
        let c = ComponentCode::parse("3205080101000001").unwrap();
        assert_eq!(c.region(), "320508");
        assert_eq!(c.major(), "01");
        assert_eq!(c.class(), "0101");
        assert_eq!(c.serial(), "000001");
    }

    #[test]
    fn malformed_codes_are_refused_with_the_reason() {
        assert_eq!(
            ComponentCode::parse("32050801010000"),
            Err(CodeError::Length(14))
        );
        assert_eq!(
            ComponentCode::parse("32050801010000x1"),
            Err(CodeError::NotDigit('x'))
        );
        assert_eq!(ComponentCode::parse(""), Err(CodeError::Length(0)));
    }
}
