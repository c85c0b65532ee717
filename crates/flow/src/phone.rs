//! Phone numbers and SIP addresses: literal checks at save time, ISO2 and country at run time.
//!
//! Numbers are accepted as E.164 with or without the leading `+`, as Plivo does (`12025550000`).
//! `*_iso2` is the region of the number when libphonenumber knows it as valid, else the main region of
//! its calling code (`+1 555…` → `US`); `*_country` is that region's English short name.

use phonenumber::country::Id;

/// Checks a literal phone number (E.164, `+` optional).
pub fn check_phone(s: &str) -> Result<(), String> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    let ok = (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a phone number: write it in E.164 form, e.g. +14155550100"
        ))
    }
}

/// Checks a literal SIP URI such as `sip:alice@example.com`.
pub fn check_sip(s: &str) -> Result<(), String> {
    let rest = s.strip_prefix("sip:").or_else(|| s.strip_prefix("sips:"));
    let valid = rest
        .and_then(|r| r.split_once('@'))
        .is_some_and(|(user, host)| {
            !user.is_empty()
                && user
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._~+-!$&'()*=;%".contains(c))
                && !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        });
    if valid {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a SIP URI: write it as sip:user@host, e.g. sip:alice@phone.example.com"
        ))
    }
}

/// A call destination: a phone number or a SIP URI.
pub fn check_address(s: &str) -> Result<(), String> {
    if s.starts_with("sip:") || s.starts_with("sips:") {
        check_sip(s)
    } else {
        check_phone(s).map_err(|_| {
            format!("`{s}` is neither a phone number nor a SIP URI: use E.164 (+14155550100) or sip:user@host")
        })
    }
}

/// An SMS sender: a phone number or an alphanumeric sender ID (1–11 letters, digits or spaces, one letter at least).
pub fn check_sender(s: &str) -> Result<(), String> {
    if check_phone(s).is_ok() {
        return Ok(());
    }
    let alnum = (1..=11).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == ' ')
        && s.chars().any(|c| c.is_ascii_alphabetic());
    if alnum {
        Ok(())
    } else {
        Err(format!(
            "`{s}` is not a sender: use a phone number in E.164 form or an alphanumeric sender ID of up to 11 characters"
        ))
    }
}

/// ISO 3166 alpha-2 region of a phone number, or `None` for SIP URIs and text that is not a number.
pub fn iso2(number: &str) -> Option<String> {
    let digits = number.trim().strip_prefix('+').unwrap_or(number.trim());
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let parsed = phonenumber::parse(None, format!("+{digits}")).ok()?;
    if let Some(id) = parsed.country().id() {
        return Some(id_str(id));
    }
    let regions = phonenumber::metadata::DATABASE.region(&parsed.country().code())?;
    regions
        .first()
        .filter(|r| r.len() == 2)
        .map(|r| (*r).to_owned())
}

/// English short name of the region of a phone number (`United States`), or `None`.
pub fn country(number: &str) -> Option<String> {
    iso2(number).and_then(|code| country_name(&code))
}

pub fn country_name(iso2: &str) -> Option<String> {
    // ISO's official names are long ("United States of America"); carriers and people use the short ones.
    let short = match iso2 {
        "US" => Some("United States"),
        "GB" => Some("United Kingdom"),
        "RU" => Some("Russia"),
        "KR" => Some("South Korea"),
        "KP" => Some("North Korea"),
        "VN" => Some("Vietnam"),
        "IR" => Some("Iran"),
        "SY" => Some("Syria"),
        "TW" => Some("Taiwan"),
        "BO" => Some("Bolivia"),
        "VE" => Some("Venezuela"),
        "TZ" => Some("Tanzania"),
        "MD" => Some("Moldova"),
        "LA" => Some("Laos"),
        _ => None,
    };
    if let Some(name) = short {
        return Some(name.to_owned());
    }
    isocountry::CountryCode::for_alpha2(iso2)
        .ok()
        .map(|c| c.name().to_owned())
}

fn id_str(id: Id) -> String {
    let s: &str = id.as_ref();
    s.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_literals() {
        assert!(check_phone("+14155550100").is_ok());
        assert!(check_phone("12025550000").is_ok());
        assert!(check_phone("+0415").is_err());
        assert!(check_phone("415-555-0100").is_err());
        assert!(check_phone("+1415555010099999").is_err());
    }

    #[test]
    fn sip_and_addresses() {
        assert!(check_sip("sip:alice@phone.plivo.com").is_ok());
        assert!(check_sip("sip:@host").is_err());
        assert!(check_sip("alice@host").is_err());
        assert!(check_address("sip:bob120@phone.plivo.com").is_ok());
        assert!(check_address("+442071838750").is_ok());
        assert!(check_address("bob").is_err());
    }

    #[test]
    fn senders() {
        assert!(check_sender("PLIVO").is_ok());
        assert!(check_sender("+14155550100").is_ok());
        assert!(check_sender("A very long sender").is_err());
        assert!(check_sender("12345").is_err());
    }

    #[test]
    fn regions_and_countries() {
        assert_eq!(iso2("+14155552671").as_deref(), Some("US"));
        assert_eq!(iso2("14165551234").as_deref(), Some("CA"));
        assert_eq!(iso2("+33612345678").as_deref(), Some("FR"));
        assert_eq!(iso2("+4915123456789").as_deref(), Some("DE"));
        assert_eq!(iso2("sip:alice@example.com"), None);
        // Invalid number in a known calling code: the main region of the code.
        assert_eq!(iso2("+15555550100").as_deref(), Some("US"));
        assert_eq!(country("+14155552671").as_deref(), Some("United States"));
        assert_eq!(country("+33612345678").as_deref(), Some("France"));
        assert_eq!(country("+442071838750").as_deref(), Some("United Kingdom"));
    }
}
