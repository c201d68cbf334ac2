//! Phone numbers: `+` then 7 to 15 digits, after trimming whitespace.

use std::fmt;

/// A phone number in the accepted form (`^\+[0-9]{7,15}$`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

/// Why a phone number was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("phone number must be '+' followed by 7 to 15 digits, got {0:?}")]
pub struct InvalidPhoneNumber(pub String);

impl PhoneNumber {
    /// Trims surrounding whitespace and checks the form.
    pub fn parse(raw: &str) -> Result<Self, InvalidPhoneNumber> {
        let trimmed = raw.trim();
        let digits = trimmed.strip_prefix('+').unwrap_or("");
        if (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(PhoneNumber(trimmed.to_owned()))
        } else {
            Err(InvalidPhoneNumber(raw.chars().take(40).collect()))
        }
    }

    /// The number as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_examples() {
        for raw in [
            "+1234567890",
            "+0987654321",
            "+3306666666",
            "+1234567",
            "+123456789012345",
        ] {
            assert_eq!(PhoneNumber::parse(raw).expect(raw).as_str(), raw);
        }
    }

    #[test]
    fn trims_surrounding_whitespace() {
        assert_eq!(
            PhoneNumber::parse("  +1234567890\n")
                .expect("valid")
                .as_str(),
            "+1234567890"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_plus_and_7_to_15_digits_is_accepted(digits in "[0-9]{7,15}", pad in "[ \t\n]{0,3}") {
            let raw = format!("{pad}+{digits}{pad}");
            let phone = PhoneNumber::parse(&raw).expect("valid");
            proptest::prop_assert_eq!(phone.as_str(), format!("+{digits}"));
        }

        #[test]
        fn parsing_never_panics_and_accepts_only_the_documented_form(raw in "\\PC{0,24}") {
            if let Ok(phone) = PhoneNumber::parse(&raw) {
                let digits = phone.as_str().strip_prefix('+').expect("starts with +");
                proptest::prop_assert!((7..=15).contains(&digits.len()));
                proptest::prop_assert!(digits.bytes().all(|b| b.is_ascii_digit()));
            }
        }
    }

    #[test]
    fn rejects_everything_else() {
        for raw in [
            "",
            "+",
            "1234567890",
            "+123456",
            "+1234567890123456",
            "+12345 67890",
            "++1234567890",
            "+12345678a0",
            "+١٢٣٤٥٦٧٨٩٠",
            "nope",
        ] {
            assert!(PhoneNumber::parse(raw).is_err(), "{raw:?} must be rejected");
        }
    }
}
