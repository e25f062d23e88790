//! Pure, deterministic format validators for customs identifiers and amounts.
//!
//! What this module does: syntactic checks (and ISO 6346 check-digit
//! verification) of EORI numbers, UN/LOCODEs, container ids, ISO 4217
//! currency codes, ISO 3166-1 alpha-2 country codes, HS codes, net mass and
//! customs value. Every failure carries a stable machine-readable reason
//! code ([`FormatError::code`]) and a human message (`Display`).
//!
//! What it does NOT do: it does not check that an identifier exists in an
//! external register (EORI database, UN/LOCODE directory, HS nomenclature,
//! BIC container owner register), it performs no I/O, and it does not
//! convert currencies. The country and currency lists are built in and
//! change only with a new release (see [`ISO3166_ALPHA2`], [`ISO4217_ACTIVE`]).
//! Validators never panic on untrusted input.

use thiserror::Error;

/// Upper bound for a declared net mass in grams (1 000 000 t), far above any
/// single consignment; anything above is treated as a typo / overflow attempt.
pub const MAX_MASS_G: u64 = 1_000_000_000_000;
/// Upper bound for a declared value in minor units (10^13 minor units,
/// i.e. 100 billion in a two-decimal currency).
pub const MAX_VALUE_MINOR: u64 = 10_000_000_000_000;

/// ISO 3166-1 alpha-2 codes (249 officially assigned codes, iso-codes data),
/// sorted for binary search. `XI` (Northern Ireland, EU customs only) and
/// `EU` are intentionally absent; `XI` is accepted only as an EORI prefix.
pub const ISO3166_ALPHA2: &[&str] = &[
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// ISO 4217 codes of currencies in circulation as of 2026-11 (sorted).
///
/// Excluded on purpose: withdrawn codes (HRK, CUC, SLL, ZWL, ANG, BGN after
/// Bulgaria's 2026 euro adoption), fund / unit-of-account codes (BOV, CHE,
/// CHW, CLF, COU, MXV, USN, UYI, UYW), precious metals, SDR and the testing
/// / no-currency codes (XAG, XAU, XBA-XBD, XDR, XPD, XPT, XSU, XTS, XUA, XXX).
/// Included: XCG (Caribbean guilder, 2025) and ZWG (Zimbabwe Gold, 2024).
pub const ISO4217_ACTIVE: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BHD",
    "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF",
    "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN",
    "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD",
    "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES",
    "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL",
    "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN",
    "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP",
    "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK",
    "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT",
    "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VED", "VES",
    "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

/// A format validation failure with a stable reason code.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FormatError {
    /// Malformed EORI number.
    #[error("invalid EORI number {value:?}: {why}")]
    Eori { value: String, why: &'static str },
    /// Malformed UN/LOCODE.
    #[error("invalid UN/LOCODE {value:?}: {why}")]
    Locode { value: String, why: &'static str },
    /// Malformed ISO 6346 container id or wrong check digit.
    #[error("invalid ISO 6346 container id {value:?}: {why}")]
    Container { value: String, why: &'static str },
    /// Unknown or malformed ISO 4217 currency code.
    #[error("invalid ISO 4217 currency code {value:?}")]
    Currency { value: String },
    /// Unknown or malformed ISO 3166-1 alpha-2 country code.
    #[error("invalid ISO 3166-1 alpha-2 country code {value:?}")]
    Country { value: String },
    /// Malformed HS code.
    #[error("invalid HS code {value:?}: {why}")]
    HsCode { value: String, why: &'static str },
    /// Net mass zero or above [`MAX_MASS_G`].
    #[error("invalid net mass {grams} g: must be 1..={max}", max = MAX_MASS_G)]
    Mass { grams: u64 },
    /// Malformed IOSS number.
    #[error("invalid IOSS number {value:?}: {why}")]
    Ioss { value: String, why: &'static str },
    /// Malformed Digital Product Passport id.
    #[error("invalid DPP id {value:?}: {why}")]
    Dpp { value: String, why: &'static str },
    /// Malformed customs office reference number.
    #[error("invalid customs office reference number {value:?}: {why}")]
    Office { value: String, why: &'static str },
    /// Value zero or above [`MAX_VALUE_MINOR`].
    #[error("invalid value {minor} minor units: must be 1..={max}", max = MAX_VALUE_MINOR)]
    Value { minor: u64 },
}

impl FormatError {
    /// Stable reason code, part of the ledger's consensus-visible output.
    pub fn code(&self) -> &'static str {
        match self {
            FormatError::Eori { .. } => "FORMAT_EORI",
            FormatError::Locode { .. } => "FORMAT_LOCODE",
            FormatError::Container { .. } => "FORMAT_CONTAINER",
            FormatError::Currency { .. } => "FORMAT_CURRENCY",
            FormatError::Country { .. } => "FORMAT_COUNTRY",
            FormatError::HsCode { .. } => "FORMAT_HS_CODE",
            FormatError::Mass { .. } => "FORMAT_MASS",
            FormatError::Value { .. } => "FORMAT_VALUE",
            FormatError::Ioss { .. } => "FORMAT_IOSS",
            FormatError::Dpp { .. } => "FORMAT_DPP",
            FormatError::Office { .. } => "FORMAT_OFFICE",
        }
    }
}

/// Truncate untrusted input before echoing it in an error message.
fn echo(s: &str) -> String {
    s.chars().take(40).collect()
}

fn is_iso_country(cc: &str) -> bool {
    ISO3166_ALPHA2.binary_search(&cc).is_ok()
}

/// Customs office reference number as the EU customs office list writes
/// it: the ISO 3166-1 alpha-2 code of the office's country and six
/// uppercase letters or digits (e.g. `DE004851`).
pub fn validate_office(code: &str) -> Result<(), FormatError> {
    let bad = |why| {
        Err(FormatError::Office {
            value: echo(code),
            why,
        })
    };
    if code.len() != 8 || !code.is_ascii() {
        return bad("must be 8 characters");
    }
    if !is_iso_country(&code[..2]) {
        return bad("must start with an ISO 3166-1 alpha-2 country code");
    }
    if !code[2..]
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return bad("the last six characters must be uppercase letters or digits");
    }
    Ok(())
}

/// ISO 3166-1 alpha-2 country code (uppercase, from [`ISO3166_ALPHA2`]).
pub fn validate_country(cc: &str) -> Result<(), FormatError> {
    if is_iso_country(cc) {
        Ok(())
    } else {
        Err(FormatError::Country { value: echo(cc) })
    }
}

/// ISO 4217 currency code in circulation (uppercase, from [`ISO4217_ACTIVE`]).
pub fn validate_currency(code: &str) -> Result<(), FormatError> {
    if ISO4217_ACTIVE.binary_search(&code).is_ok() {
        Ok(())
    } else {
        Err(FormatError::Currency { value: echo(code) })
    }
}

/// EORI: ISO 3166-1 alpha-2 country (or `XI`) + 1..=15 chars of `[A-Z0-9]`.
pub fn validate_eori(eori: &str) -> Result<(), FormatError> {
    let err = |why| FormatError::Eori {
        value: echo(eori),
        why,
    };
    let b = eori.as_bytes();
    if b.len() < 3 || b.len() > 17 {
        return Err(err("length must be 3..=17"));
    }
    let (cc, rest) = b.split_at(2);
    let cc_ok = match std::str::from_utf8(cc) {
        Ok(cc) => cc == "XI" || is_iso_country(cc),
        Err(_) => false,
    };
    if !cc_ok {
        return Err(err("prefix is not an ISO 3166-1 alpha-2 code or XI"));
    }
    if !rest
        .iter()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return Err(err("identifier must be uppercase alphanumeric"));
    }
    // Member states whose identifier has a published fixed structure.
    match cc {
        // HMRC issues GB and XI numbers as the prefix and 12 digits.
        b"GB" | b"XI" if rest.len() != 12 || !rest.iter().all(u8::is_ascii_digit) => {
            return Err(err("GB and XI numbers are the prefix and 12 digits"));
        }
        // Belgium uses the enterprise (KBO/BCE) number: 10 digits, 0 or 1
        // first, the last two 97 minus the first eight modulo 97.
        b"BE" => {
            if rest.len() != 10 || !rest.iter().all(u8::is_ascii_digit) {
                return Err(err(
                    "BE numbers are the prefix and the 10-digit enterprise number",
                ));
            }
            if !matches!(rest[0], b'0' | b'1') {
                return Err(err("a Belgian enterprise number starts with 0 or 1"));
            }
            let num = |d: &[u8]| d.iter().fold(0u64, |n, c| n * 10 + u64::from(c - b'0'));
            if 97 - num(&rest[..8]) % 97 != num(&rest[8..]) {
                return Err(err(
                    "the Belgian enterprise number's check digits do not match",
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Member states (and XI, Northern Ireland) by the ISO 3166-1 numeric code
/// that opens their IOSS numbers.
const IOSS_STATES: [(&str, &str); 28] = [
    ("040", "AT"),
    ("056", "BE"),
    ("100", "BG"),
    ("191", "HR"),
    ("196", "CY"),
    ("203", "CZ"),
    ("208", "DK"),
    ("233", "EE"),
    ("246", "FI"),
    ("250", "FR"),
    ("276", "DE"),
    ("300", "EL"),
    ("348", "HU"),
    ("372", "IE"),
    ("380", "IT"),
    ("428", "LV"),
    ("440", "LT"),
    ("442", "LU"),
    ("470", "MT"),
    ("528", "NL"),
    ("616", "PL"),
    ("620", "PT"),
    ("642", "RO"),
    ("703", "SK"),
    ("705", "SI"),
    ("724", "ES"),
    ("752", "SE"),
    ("900", "XI"),
];

/// IOSS number: `IM`, the ISO 3166-1 numeric code of the member state of
/// identification (or 900 for Northern Ireland), then 7 digits (10 digits
/// in all). Returns the issuing state. (No public check-digit rule.)
pub fn validate_ioss(ioss: &str) -> Result<&'static str, FormatError> {
    let err = |why| FormatError::Ioss {
        value: echo(ioss),
        why,
    };
    let digits = ioss
        .strip_prefix("IM")
        .ok_or_else(|| err("must start with IM"))?;
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err("IM must be followed by 10 digits"));
    }
    IOSS_STATES
        .iter()
        .find(|(n, _)| digits.starts_with(n))
        .map(|(_, s)| *s)
        .ok_or_else(|| err("digits 1-3 name no member state (ISO 3166-1 numeric)"))
}

/// GS1 mod-10 check digit of the digits before it.
fn gs1_check_digit(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// Digital Product Passport id, in one of two documented forms:
/// - a GS1 Digital Link URI, `https://<host>/.../01/<GTIN>[/<AI>/<value>...]`,
///   whose GTIN (8, 12, 13 or 14 digits) carries a valid GS1 check digit;
/// - a URN, `urn:dpp:<scheme>:<id>[:<more>]`, segments of `[A-Za-z0-9._-]`.
///
/// At most 256 characters.
pub fn validate_dpp_id(id: &str) -> Result<(), FormatError> {
    let err = |why| FormatError::Dpp {
        value: echo(id),
        why,
    };
    if id.is_empty() || id.len() > 256 {
        return Err(err("length must be 1..=256"));
    }
    if let Some(rest) = id.strip_prefix("urn:dpp:") {
        let segs: Vec<&str> = rest.split(':').collect();
        let seg_ok = |s: &&str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
        };
        if segs.len() < 2 || !segs.iter().all(seg_ok) {
            return Err(err("a DPP URN is urn:dpp:<scheme>:<id> of [A-Za-z0-9._-]"));
        }
        return Ok(());
    }
    if let Some(rest) = id.strip_prefix("https://") {
        let (host, path) = rest.split_once('/').ok_or_else(|| err("no path"))?;
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !host_ok {
            return Err(err("host must be lowercase [a-z0-9.-]"));
        }
        let parts: Vec<&str> = path.split('/').collect();
        let gtin = parts
            .windows(2)
            .find(|w| w[0] == "01")
            .map(|w| w[1])
            .ok_or_else(|| err("a GS1 Digital Link names a GTIN after /01/"))?;
        let g = gtin.as_bytes();
        if ![8, 12, 13, 14].contains(&g.len()) || !g.iter().all(|b| b.is_ascii_digit()) {
            return Err(err("GTIN must be 8, 12, 13 or 14 digits"));
        }
        let (body, check) = g.split_at(g.len() - 1);
        if gs1_check_digit(body) != check[0] - b'0' {
            return Err(err("GTIN check digit is wrong"));
        }
        if !path
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-._~%".contains(&b))
        {
            return Err(err("path has characters outside the URI's unreserved set"));
        }
        return Ok(());
    }
    Err(err(
        "must be a GS1 Digital Link (https://...) or urn:dpp:...",
    ))
}

/// Normalise a UN/LOCODE (`"PL GDN"` or `"PLGDN"`) to its 5-char form.
///
/// Country must be in [`ISO3166_ALPHA2`], location 3 chars of `[A-Z2-9]`.
pub fn normalize_locode(locode: &str) -> Result<String, FormatError> {
    let err = |why| FormatError::Locode {
        value: echo(locode),
        why,
    };
    let b = locode.as_bytes();
    let (cc, loc) = match b.len() {
        5 => (&b[..2], &b[2..]),
        6 if b[2] == b' ' => (&b[..2], &b[3..]),
        _ => {
            return Err(err(
                "expected 5 chars, or 6 with one space after the country",
            ))
        }
    };
    let cc_ok = match std::str::from_utf8(cc) {
        Ok(cc) => is_iso_country(cc),
        Err(_) => false,
    };
    if !cc_ok {
        return Err(err("country part is not an ISO 3166-1 alpha-2 code"));
    }
    if !loc
        .iter()
        .all(|c| c.is_ascii_uppercase() || (b'2'..=b'9').contains(c))
    {
        return Err(err("location part must be 3 chars of [A-Z2-9]"));
    }
    let mut out = String::with_capacity(5);
    out.extend(cc.iter().map(|&c| c as char));
    out.extend(loc.iter().map(|&c| c as char));
    Ok(out)
}

/// UN/LOCODE check, see [`normalize_locode`].
pub fn validate_locode(locode: &str) -> Result<(), FormatError> {
    normalize_locode(locode).map(|_| ())
}

/// ISO 6346 letter value: A=10 upward, skipping multiples of 11.
fn iso6346_letter_value(c: u8) -> u32 {
    let mut v = 10u32;
    let mut letter = b'A';
    while letter < c {
        v += 1;
        if v.is_multiple_of(11) {
            v += 1;
        }
        letter += 1;
    }
    v
}

/// ISO 6346 check digit for the first 10 chars (owner, category, serial).
/// Returns `None` if the chars are not 4 uppercase letters + 6 digits.
pub fn iso6346_check_digit(first10: &str) -> Option<u8> {
    let b = first10.as_bytes();
    if b.len() != 10 {
        return None;
    }
    let mut sum: u32 = 0;
    for (i, &c) in b.iter().enumerate() {
        let v = if i < 4 {
            if !c.is_ascii_uppercase() {
                return None;
            }
            iso6346_letter_value(c)
        } else {
            if !c.is_ascii_digit() {
                return None;
            }
            u32::from(c - b'0')
        };
        sum += v << i;
    }
    // `% 11 % 10` maps remainder 10 to check digit 0, as the standard says.
    Some((sum % 11 % 10) as u8)
}

/// ISO 6346 container id: 3-letter owner code, category `U`/`J`/`Z`,
/// 6-digit serial and a correct check digit, e.g. `CSQU3054383`.
pub fn validate_container(id: &str) -> Result<(), FormatError> {
    let err = |why| FormatError::Container {
        value: echo(id),
        why,
    };
    let b = id.as_bytes();
    if b.len() != 11 {
        return Err(err("length must be 11"));
    }
    if !b[..4].iter().all(u8::is_ascii_uppercase) {
        return Err(err("owner code and category must be uppercase letters"));
    }
    if !matches!(b[3], b'U' | b'J' | b'Z') {
        return Err(err("category must be U, J or Z"));
    }
    if !b[4..].iter().all(u8::is_ascii_digit) {
        return Err(err("serial number and check digit must be digits"));
    }
    let expected = iso6346_check_digit(&id[..10]).ok_or_else(|| err("malformed"))?;
    if b[10] - b'0' != expected {
        return Err(err("check digit mismatch"));
    }
    Ok(())
}

/// HS code: ASCII digits only, length 6, 8 or 10. Existence in the
/// nomenclature is checked elsewhere.
pub fn validate_hs_code(hs: &str) -> Result<(), FormatError> {
    let err = |why| FormatError::HsCode {
        value: echo(hs),
        why,
    };
    if !hs.bytes().all(|c| c.is_ascii_digit()) || hs.is_empty() {
        return Err(err("must be digits only"));
    }
    if !matches!(hs.len(), 6 | 8 | 10) {
        return Err(err("length must be 6, 8 or 10"));
    }
    Ok(())
}

/// Net mass in grams: `1..=MAX_MASS_G`.
pub fn validate_mass_g(grams: u64) -> Result<(), FormatError> {
    if (1..=MAX_MASS_G).contains(&grams) {
        Ok(())
    } else {
        Err(FormatError::Mass { grams })
    }
}

/// Value in minor currency units: `1..=MAX_VALUE_MINOR`.
pub fn validate_value_minor(minor: u64) -> Result<(), FormatError> {
    if (1..=MAX_VALUE_MINOR).contains(&minor) {
        Ok(())
    } else {
        Err(FormatError::Value { minor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code<T: std::fmt::Debug>(r: Result<T, FormatError>) -> &'static str {
        match r {
            Ok(_) => "OK",
            Err(e) => {
                assert!(!e.to_string().is_empty());
                e.code()
            }
        }
    }

    #[test]
    fn lists_sorted_unique_and_well_formed() {
        for w in ISO3166_ALPHA2.windows(2) {
            assert!(w[0] < w[1], "{w:?}");
        }
        for w in ISO4217_ACTIVE.windows(2) {
            assert!(w[0] < w[1], "{w:?}");
        }
        assert_eq!(ISO3166_ALPHA2.len(), 249);
        assert!(ISO3166_ALPHA2.iter().all(|c| c.len() == 2));
        assert!(ISO4217_ACTIVE.iter().all(|c| c.len() == 3));
    }

    #[test]
    fn country() {
        for ok in ["PL", "DE", "GB", "US", "KP", "AX", "SS"] {
            assert_eq!(code(validate_country(ok)), "OK", "{ok}");
        }
        for bad in ["EU", "XI", "pl", "P", "POL", "", "ZZ", "UK", "P\u{142}"] {
            assert_eq!(code(validate_country(bad)), "FORMAT_COUNTRY", "{bad}");
        }
    }

    #[test]
    fn currency() {
        for ok in ["EUR", "USD", "PLN", "GBP", "XOF", "XCG", "ZWG", "VES"] {
            assert_eq!(code(validate_currency(ok)), "OK", "{ok}");
        }
        for bad in ["eur", "HRK", "BGN", "XXX", "XAU", "EU", "EURO", "", "DEM"] {
            assert_eq!(code(validate_currency(bad)), "FORMAT_CURRENCY", "{bad}");
        }
    }

    #[test]
    fn ioss_and_dpp() {
        assert_eq!(validate_ioss("IM2760000001"), Ok("DE"));
        assert_eq!(validate_ioss("IM9001234567"), Ok("XI"));
        for bad in [
            "IM276000000",
            "IM27600000012",
            "IN2760000001",
            "IM8400000001",
            "IM27600000A1",
            "",
        ] {
            assert_eq!(code(validate_ioss(bad).map(|_| ())), "FORMAT_IOSS", "{bad}");
        }
        for ok in [
            "urn:dpp:eu:battery:PL-778812-01",
            "https://id.gs1.org/01/09506000134352/21/ABC-1",
            "https://dpp.example.com/01/4006381333931",
            "https://id.gs1.org/01/96385074",
        ] {
            assert_eq!(code(validate_dpp_id(ok)), "OK", "{ok}");
        }
        for bad in [
            "urn:dpp:eu",
            "urn:dpp:eu:bat tery",
            "https://id.gs1.org/01/09506000134353",
            "https://id.gs1.org/21/ABC",
            "https://ID.gs1.org/01/09506000134352",
            "http://id.gs1.org/01/09506000134352",
            "ftp://x",
            "",
        ] {
            assert_eq!(code(validate_dpp_id(bad)), "FORMAT_DPP", "{bad}");
        }
    }

    #[test]
    fn eori() {
        for ok in [
            "PL1234567890",
            "DE1",
            "XI123456789000",
            "GB123456789000",
            "BE0403170701",
        ] {
            assert_eq!(code(validate_eori(ok)), "OK", "{ok}");
        }
        for bad in [
            "EU123456",
            "PL",
            "pl123",
            "PL12345678901234567",
            "ZZ123",
            "PL-123",
            "PL12a",
            "",
            "\u{142}\u{142}12",
            // Member-state rules: GB/XI are 12 digits, BE the checked
            // enterprise number.
            "GB123456789012345",
            "XI12345678900A",
            "BE0403170702",
            "BE2403170701",
            "BE040317070",
        ] {
            assert_eq!(code(validate_eori(bad)), "FORMAT_EORI", "{bad}");
        }
    }

    #[test]
    fn locode() {
        assert_eq!(normalize_locode("PL GDN"), Ok("PLGDN".to_string()));
        assert_eq!(normalize_locode("PLGDN"), Ok("PLGDN".to_string()));
        assert_eq!(normalize_locode("DEHAM"), Ok("DEHAM".to_string()));
        assert_eq!(normalize_locode("US2AB"), Ok("US2AB".to_string()));
        for bad in [
            "PL  GDN",
            "PLGD",
            "PLGDNX",
            "ZZGDN",
            "EUGDN",
            "PLgdn",
            "PLGD1",
            "PLGD0",
            "PL-GDN",
            "",
            "PL\u{142}D",
        ] {
            assert_eq!(code(normalize_locode(bad)), "FORMAT_LOCODE", "{bad}");
        }
    }

    #[test]
    fn container_letter_values() {
        // A=10, B=12 (11 skipped), K=21, L=23 (22 skipped), U=32, V=34 (33 skipped), Z=38.
        let v: Vec<u32> = b"ABKLUVZ"
            .iter()
            .map(|&c| iso6346_letter_value(c))
            .collect();
        assert_eq!(v, vec![10, 12, 21, 23, 32, 34, 38]);
    }

    #[test]
    fn container_known_good() {
        // Worked by hand for CSQU305438: C=13 S=30 Q=28 U=32 ->
        // 13 + 60 + 112 + 256 + 3*16 + 0 + 5*64 + 4*128 + 3*256 + 8*512 = 6185;
        // 6185 mod 11 = 3 -> check digit 3.
        assert_eq!(iso6346_check_digit("CSQU305438"), Some(3));
        // CSQU3054383 and MSKU9070323 are real ids; the other two are serials
        // completed with the check digit computed independently (Python).
        for ok in ["CSQU3054383", "MSKU9070323", "TGHU6325891", "MAEU1234567"] {
            assert_eq!(code(validate_container(ok)), "OK", "{ok}");
        }
    }

    #[test]
    fn container_corrupted() {
        for bad in [
            "CSQU3054384", // wrong check digit
            "CSQU3054833", // transposed serial digits
            "CSQA3054383", // invalid category
            "MSKU9070322",
            "TGHU6325893", // plausible-looking id with a wrong check digit
            "CSQU305438",  // too short
            "CSQU30543830",
            "csqu3054383",
            "CSQU30543A3",
            "C5QU3054383",
            "",
        ] {
            assert_eq!(code(validate_container(bad)), "FORMAT_CONTAINER", "{bad}");
        }
        // Every single-digit corruption of the serial is detected.
        let good = b"CSQU3054383";
        for pos in 4..11 {
            for d in b'0'..=b'9' {
                if d == good[pos] {
                    continue;
                }
                let mut c = good.to_vec();
                c[pos] = d;
                let s = String::from_utf8(c).unwrap_or_default();
                assert_eq!(code(validate_container(&s)), "FORMAT_CONTAINER", "{s}");
            }
        }
    }

    #[test]
    fn hs_code() {
        for ok in ["850440", "85044030", "8504403000"] {
            assert_eq!(code(validate_hs_code(ok)), "OK", "{ok}");
        }
        for bad in [
            "",
            "8504",
            "8504403",
            "850440300",
            "85044a",
            "8504 40",
            "85044030001",
        ] {
            assert_eq!(code(validate_hs_code(bad)), "FORMAT_HS_CODE", "{bad}");
        }
    }

    #[test]
    fn mass_and_value() {
        assert_eq!(code(validate_mass_g(1)), "OK");
        assert_eq!(code(validate_mass_g(MAX_MASS_G)), "OK");
        assert_eq!(code(validate_mass_g(0)), "FORMAT_MASS");
        assert_eq!(code(validate_mass_g(MAX_MASS_G + 1)), "FORMAT_MASS");
        assert_eq!(code(validate_value_minor(1)), "OK");
        assert_eq!(code(validate_value_minor(0)), "FORMAT_VALUE");
        assert_eq!(code(validate_value_minor(u64::MAX)), "FORMAT_VALUE");
    }

    #[test]
    fn customs_office() {
        assert_eq!(code(validate_office("DE004851")), "OK");
        assert_eq!(code(validate_office("FR000690")), "OK");
        assert_eq!(code(validate_office("XX004851")), "FORMAT_OFFICE");
        assert_eq!(code(validate_office("DE00485")), "FORMAT_OFFICE");
        assert_eq!(code(validate_office("DE00485a")), "FORMAT_OFFICE");
        assert_eq!(code(validate_office("DE0048ß")), "FORMAT_OFFICE");
        assert_eq!(code(validate_office("")), "FORMAT_OFFICE");
    }
}
