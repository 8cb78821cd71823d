//! The published selector vectors (normalisation and tokens under the test
//! key, for both normalisation versions), the key file rules, the v1 → v2
//! transition, and properties: idempotence, v2 accepting all v1 accepted,
//! and no error or `Debug` output that shows the value.

use std::fs;

use base64::Engine;

use proptest::prelude::*;

use super::*;
use crate::records::crypto;
use SelectorKind::*;

/// The published test key: bytes 0x00..=0x1f, epoch 1.
fn test_key() -> MatchingKey {
    let bytes: Vec<u8> = (0u8..32).collect();
    MatchingKey::from_bytes(1, &bytes).unwrap()
}

/// Token vectors under the test key. The expected hex was computed
/// independently with Python's `hmac`/`hashlib`, e.g.
/// `hmac.new(bytes(range(32)), b"passport\x00X1234567", "sha256").hexdigest()`.
#[rustfmt::skip]
const TOKEN_VECTORS: &[(SelectorKind, &str, &str, &str)] = &[
    (Passport, "X1234567", "X1234567", "e75cb28716590162cd8a056783553b7ea85d916a9fc631a66872abbfb8324ba0"),
    (NameDob, "PÉREZ GÓMEZ, José|1990-05-17", "GOMEZ JOSE PEREZ|1990-05-17", "1d945e95eede73625574a4f7bc78338f6e27cfef3a450972a2a0fa46f74f373a"),
    (NameDob, "José Pérez-Gómez|1990-05-17", "GOMEZ JOSE PEREZ|1990-05-17", "1d945e95eede73625574a4f7bc78338f6e27cfef3a450972a2a0fa46f74f373a"),
    (Phone, "+502 5555-1234", "+50255551234", "04ec2be93e6d28e47c070d569543b3d47b6f6f448b6d2f3afbb8633a2ed4bf01"),
    (Phone, "00 502 5555 1234", "+50255551234", "04ec2be93e6d28e47c070d569543b3d47b6f6f448b6d2f3afbb8633a2ed4bf01"),
    (Email, "Alerta@Example.ORG", "alerta@example.org", "eb203df5093fd20b1e1718f613f0b0b644ffbc57a98968f232d8bb1b8631e9be"),
    (NationalId, "2345 67890 0101", "2345678900101", "ceea30edac42a652ea289215374bec4c85dd77413db74319917c805ea201ed09"),
    (VehiclePlate, "P-123 ABC", "P123ABC", "3db5d229f4529833a6c2b2ccd4adea2d66943b1be1ee37c02d11533a6f579fd8"),
    (BankAccount, "GB82 WEST 1234 5698 7654 32", "GB82WEST12345698765432", "7a8e536093adedb1d6d12d69040674f5dfe46bd3a44441ad016c8452358b8cdf"),
    (Imei, "35-209900-176148-1", "352099001761481", "0804025e3fac35869c351b88f4b068bf46428cba5c78048406b6f8c85196d949"),
    (NameDob, "NÚÑEZ, María|1985-12-01", "MARIA NUNEZ|1985-12-01", "58d71eb907855cda1a8a758a83ce4d4d9d7c8377645768590a439a425b3ee521"),
];

/// Token vectors of the v2 rules (`docs/selectors.md`, "Test vectors"),
/// with the v1 companion token where v1 normalises the value differently.
/// Computed independently as above.
#[rustfmt::skip]
const V2_TOKEN_VECTORS: &[(&str, &str, &str, Option<&str>)] = &[
    ("O'Neil, Seán|2001-01-31", "ONEIL SEAN|2001-01-31", "add962fda83ec970d6b3ceb8c1cfdb6df441cb8c2fcee2a064a663a2a440770e",
        Some("53e1940dea82b3fef7799882dab0611761fa0b65530acb111f86a208ff1c6ef6")),
    ("ONeil, Seán|2001-01-31", "ONEIL SEAN|2001-01-31", "add962fda83ec970d6b3ceb8c1cfdb6df441cb8c2fcee2a064a663a2a440770e", None),
    ("Søren Ørsted|1977-08-14", "ORSTED SOREN|1977-08-14", "90dc69dbd9f29ed3beda908e00607c7a5bb0443a5256d08d32b156b1eb54b34e", None),
    ("Guðrún Þórsdóttir|1965-06-30", "GUDRUN THORSDOTTIR|1965-06-30", "bbb6da7c1722e44b3bfb024f6f1de3be96b68352b64cbb3dbd9733d05e150d06", None),
];

#[test]
fn v2_token_vectors_match_the_published_ones() {
    let key = test_key();
    for &(input, normalised, hex, v1_hex) in V2_TOKEN_VECTORS {
        assert_eq!(normalise(NameDob, input).unwrap(), normalised, "{input}");
        let hashed = key.hash_with_v1(NameDob, input).unwrap();
        assert_eq!(hashed.token.hex(), hex, "{input}");
        assert_eq!(hashed.token, key.hash(NameDob, input).unwrap());
        assert_eq!(hashed.v1.map(|t| t.hex()).as_deref(), v1_hex, "{input}");
        assert_eq!(hashed.all().count(), 1 + usize::from(v1_hex.is_some()));
    }
}

#[test]
fn every_published_v1_token_is_still_made() {
    let key = test_key();
    for &(kind, input, _, hex) in TOKEN_VECTORS {
        let hashed = key.hash_with_v1(kind, input).unwrap();
        assert_eq!(hashed.token.hex(), hex, "{input}");
        assert_eq!(hashed.v1, None, "{input}: v1 and v2 agree");
    }
}

#[test]
fn token_vectors_match_the_published_ones() {
    let key = test_key();
    for &(kind, input, normalised, hex) in TOKEN_VECTORS {
        assert_eq!(normalise(kind, input).unwrap(), normalised, "{input}");
        let token = key.hash(kind, input).unwrap();
        assert_eq!(token.hex(), hex, "{} {input}", kind.code());
        assert_eq!(token.kind, kind);
        assert_eq!(token.epoch, 1);
        assert_eq!(key.token(kind, normalised), token);
    }
}

/// `Ok(normalised)` or `Err(fragment of the message)`.
type Expect = Result<&'static str, &'static str>;

/// Vectors that hold under both versions of the rules.
#[rustfmt::skip]
const NORMALISATION_VECTORS: &[(SelectorKind, &str, Expect)] = &[
    // Any kind.
    (Passport, "", Err("passport: the value is empty")),
    (Email, " \t ", Err("email: the value is empty")),
    (NameDob, "", Err("name_dob: the value is empty")),
    // Passport: separators, case, accents, compatibility forms.
    (Passport, "X1234567", Ok("X1234567")),
    (Passport, "x123 4567", Ok("X1234567")),
    (Passport, " X-123.456/7_\t", Ok("X1234567")),
    (Passport, "É1234567", Ok("E1234567")),
    (Passport, "Ñ1234567", Ok("N1234567")),
    (Passport, "Ｘ１２３４５６７", Ok("X1234567")),
    (Passport, "A1B2C", Ok("A1B2C")),
    (Passport, "A1234567890123456789", Ok("A1234567890123456789")),
    (Passport, "X12", Err("passport: after normalisation must be 5 to 20 letters or digits (got 3)")),
    (Passport, "A12345678901234567890", Err("(got 21)")),
    (Passport, "X1234567#", Err("passport: after normalisation must contain only letters A-Z and digits 0-9")),
    (Passport, "Ø1234567", Err("only letters A-Z and digits 0-9")),
    // National id.
    (NationalId, "2345 67890 0101", Ok("2345678900101")),
    (NationalId, "ab1", Ok("AB1")),
    (NationalId, "1234567-8", Ok("12345678")),
    (NationalId, "a1", Err("national_id: after normalisation must be 3 to 30")),
    (NationalId, "1234567890123456789012345678901", Err("(got 31)")),
    (NationalId, "123+456", Err("national_id: after normalisation must contain only")),
    // Vehicle plate.
    (VehiclePlate, "P-123 ABC", Ok("P123ABC")),
    (VehiclePlate, "p.123abc", Ok("P123ABC")),
    (VehiclePlate, "A1", Ok("A1")),
    (VehiclePlate, "ÄB-123", Ok("AB123")),
    (VehiclePlate, "A", Err("vehicle_plate: after normalisation must be 2 to 15 letters or digits (got 1)")),
    (VehiclePlate, "ABCDEFGH12345678", Err("(got 16)")),
    // Bank account.
    (BankAccount, "GB82 WEST 1234 5698 7654 32", Ok("GB82WEST12345698765432")),
    (BankAccount, "gb82-west-1234", Ok("GB82WEST1234")),
    (BankAccount, "1234", Err("bank_account: after normalisation must be 5 to 34 letters or digits (got 4)")),
    (BankAccount, "12345678901234567890123456789012345", Err("(got 35)")),
    (BankAccount, "GB82 WEST*1234", Err("bank_account: after normalisation must contain only")),
    // IMEI: 15 or 16 digits, no Luhn check.
    (Imei, "35-209900-176148-1", Ok("352099001761481")),
    (Imei, "352099001761482", Ok("352099001761482")),
    (Imei, "35 209900 176148 12", Ok("3520990017614812")),
    (Imei, "35209900176148", Err("imei: after normalisation must be exactly 15 digits (IMEI) or 16 digits (IMEISV) (got 14)")),
    (Imei, "35209900176148123", Err("(got 17)")),
    (Imei, "35209900176148A", Err("imei: after normalisation must contain only digits")),
    // Phone: E.164 with country code.
    (Phone, "+502 5555-1234", Ok("+50255551234")),
    (Phone, "+50255551234", Ok("+50255551234")),
    (Phone, "00502 5555 1234", Ok("+50255551234")),
    (Phone, "00 (502) 5555.1234", Ok("+50255551234")),
    (Phone, "+1 (202) 555-0123", Ok("+12025550123")),
    (Phone, "+52 55 1234 5678", Ok("+525512345678")),
    (Phone, "+12345678", Ok("+12345678")),
    (Phone, "+123456789012345", Ok("+123456789012345")),
    (Phone, "5555-1234", Err("phone: no country code")),
    (Phone, "502 5555 1234", Err("phone: no country code")),
    (Phone, "0 5555 1234", Err("phone: no country code")),
    (Phone, "+502 5555-12a4", Err("phone: must be '+' or '00' followed by digits")),
    (Phone, "tel:+50255551234", Err("phone: must be '+' or '00' followed by digits")),
    (Phone, "+502/5555/1234", Err("phone: must be '+' or '00' followed by digits")),
    (Phone, "+0502 5555 1234", Err("phone: the country code cannot start with 0")),
    (Phone, "+1234567", Err("phone: must be '+' followed by 8 to 15 digits (got 7 digits)")),
    (Phone, "+1234567890123456", Err("(got 16 digits)")),
    // E-mail: trim and lower case only.
    (Email, "Alerta@Example.ORG", Ok("alerta@example.org")),
    (Email, "  ana.lopez@MP.gob.gt \n", Ok("ana.lopez@mp.gob.gt")),
    (Email, "JOSÉ@Correo.MX", Ok("josé@correo.mx")),
    (Email, "alerta.example.org", Err("email: must contain exactly one '@' (got 0)")),
    (Email, "a@b@example.org", Err("email: must contain exactly one '@' (got 2)")),
    (Email, "@example.org", Err("email: the part before '@' is empty")),
    (Email, "alerta@", Err("email: the domain after '@' is empty")),
    (Email, "alerta@localhost", Err("email: the domain after '@' must contain a '.'")),
    (Email, "ana lopez@mp.gob.gt", Err("email: must not contain whitespace")),
    // Name and date of birth.
    (NameDob, "PÉREZ GÓMEZ, José|1990-05-17", Ok("GOMEZ JOSE PEREZ|1990-05-17")),
    (NameDob, "José Pérez-Gómez|1990-05-17", Ok("GOMEZ JOSE PEREZ|1990-05-17")),
    (NameDob, "gomez jose perez|1990-05-17", Ok("GOMEZ JOSE PEREZ|1990-05-17")),
    (NameDob, "  Pérez  Gómez ,  José | 1990-05-17 ", Ok("GOMEZ JOSE PEREZ|1990-05-17")),
    (NameDob, "NÚÑEZ, María|1985-12-01", Ok("MARIA NUNEZ|1985-12-01")),
    (NameDob, "Strauß, Jürgen|1960-03-15", Ok("JURGEN STRAUSS|1960-03-15")),
    (NameDob, "ＡＮＡ|1990-05-17", Ok("ANA|1990-05-17")),
    (NameDob, "Ana|2024-02-29", Ok("ANA|2024-02-29")),
    (NameDob, "Ana|2000-02-29", Ok("ANA|2000-02-29")),
    (NameDob, "Ana|1900-01-01", Ok("ANA|1900-01-01")),
    (NameDob, "Ana|2100-12-31", Ok("ANA|2100-12-31")),
    (NameDob, "Ana|2023-02-29", Err("name_dob: the date of birth is not a calendar date")),
    (NameDob, "Ana|1900-02-29", Err("not a calendar date")),
    (NameDob, "Ana|2023-04-31", Err("not a calendar date")),
    (NameDob, "Ana|2023-13-01", Err("not a calendar date")),
    (NameDob, "Ana|2023-00-10", Err("not a calendar date")),
    (NameDob, "Ana|2023-01-00", Err("not a calendar date")),
    (NameDob, "Ana|1899-12-31", Err("name_dob: the year of birth must be 1900 to 2100")),
    (NameDob, "Ana|2101-01-01", Err("the year of birth must be 1900 to 2100")),
    (NameDob, "Ana|17/05/1990", Err("name_dob: the date of birth must be written YYYY-MM-DD")),
    (NameDob, "Ana|1990-5-17", Err("must be written YYYY-MM-DD")),
    (NameDob, "Ana|19900517", Err("must be written YYYY-MM-DD")),
    (NameDob, "Ana|", Err("must be written YYYY-MM-DD")),
    (NameDob, "Ana 1990-05-17", Err("name_dob: must be NAME|YYYY-MM-DD (no '|' found)")),
    (NameDob, "Ana2|1990-05-17", Err("name_dob: names must not contain digits")),
    (NameDob, "Иван|1990-05-17", Err("name_dob: name tokens must be letters A-Z")),
    (NameDob, "Ana|Luis|1990-05-17", Err("name tokens must be letters A-Z")),
    (NameDob, " , - |1990-05-17", Err("name_dob: the name has no letters")),
    (NameDob, "|1990-05-17", Err("the name has no letters")),
    (NameDob, "Işık|1990-05-17", Ok("ISIK|1990-05-17")),
    (NameDob, "ĸ|1990-05-17", Err("name tokens must be letters A-Z")),
    // Invisible characters: named, with their position.
    (NameDob, "Ana\u{200B}|1990-05-17", Err("name_dob: invisible character U+200B (ZERO WIDTH SPACE) at character 4; delete it")),
    (NameDob, "Jo\u{00AD}sé|1990-05-17", Err("invisible character U+00AD (SOFT HYPHEN) at character 3")),
    (NameDob, "\u{202E}Ana|1990-05-17", Err("invisible character U+202E (RIGHT-TO-LEFT OVERRIDE) at character 1")),
    (NameDob, "Ana|1990-05-17\u{200E}", Err("invisible character U+200E (LEFT-TO-RIGHT MARK) at character 15")),
    (NameDob, "Ana Luis\u{200D}|1990-05-17", Err("U+200D (ZERO WIDTH JOINER) at character 9")),
    (NameDob, "Ana\u{2066}|1990-05-17", Err("U+2066 (LEFT-TO-RIGHT ISOLATE) at character 4")),
    (Passport, "\u{FEFF}X1234567", Err("passport: invisible character U+FEFF (ZERO WIDTH NO-BREAK SPACE (BYTE ORDER MARK)) at character 1")),
    (Phone, "+502\u{2060}55551234", Err("phone: invisible character U+2060 (WORD JOINER) at character 5")),
    (Imei, "35209900176148\u{E0041}1", Err("imei: invisible character U+E0041 (TAG CHARACTER) at character 15")),
    // E-mail addresses are compared as typed, invisible characters too.
    (Email, "ana\u{200B}@example.org", Ok("ana\u{200B}@example.org")),
];

/// Vectors of the v1 rules only: names with apostrophes, which v2
/// normalises differently, and letters v2 transliterates.
#[rustfmt::skip]
const V1_VECTORS: &[(SelectorKind, &str, Expect)] = &[
    (NameDob, "O'Brien, Seán|2001-01-31", Ok("BRIEN O SEAN|2001-01-31")),
    (NameDob, "D\u{2019}Angelo, Ana|1975-07-04", Ok("ANA ANGELO D|1975-07-04")),
    (NameDob, "O'Neil, Seán|2001-01-31", Ok("NEIL O SEAN|2001-01-31")),
    (NameDob, "O\u{00B4}Neil|1980-02-03", Ok("NEIL O|1980-02-03")),
    (NameDob, "Łukasz|1990-05-17", Err("name tokens must be letters A-Z")),
    (NameDob, "Søren Ørsted|1977-08-14", Err("name tokens must be letters A-Z")),
    (NameDob, "STRAẞE|1960-03-15", Err("name tokens must be letters A-Z")),
];

/// Vectors of the v2 rules only.
#[rustfmt::skip]
const V2_VECTORS: &[(SelectorKind, &str, Expect)] = &[
    // Apostrophes join: every one of them, and none.
    (NameDob, "O'Brien, Seán|2001-01-31", Ok("OBRIEN SEAN|2001-01-31")),
    (NameDob, "D\u{2019}Angelo, Ana|1975-07-04", Ok("ANA DANGELO|1975-07-04")),
    (NameDob, "O'Neil|1980-02-03", Ok("ONEIL|1980-02-03")),
    (NameDob, "O\u{2019}Neil|1980-02-03", Ok("ONEIL|1980-02-03")),
    (NameDob, "O\u{02BC}Neil|1980-02-03", Ok("ONEIL|1980-02-03")),
    (NameDob, "O\u{2018}Neil|1980-02-03", Ok("ONEIL|1980-02-03")),
    (NameDob, "O`Neil|1980-02-03", Ok("ONEIL|1980-02-03")),
    (NameDob, "O\u{00B4}Neil|1980-02-03", Ok("ONEIL|1980-02-03")),
    (NameDob, "O\u{FF07}Neil|1980-02-03", Ok("ONEIL|1980-02-03")),
    (NameDob, "ONeil|1980-02-03", Ok("ONEIL|1980-02-03")),
    (NameDob, "o'neil|1980-02-03", Ok("ONEIL|1980-02-03")),
    (NameDob, "O' Neil|1980-02-03", Ok("NEIL O|1980-02-03")),
    (NameDob, "'|1980-02-03", Err("name_dob: the name has no letters")),
    // Letters with strokes and ligatures.
    (NameDob, "Søren Ørsted|1977-08-14", Ok("ORSTED SOREN|1977-08-14")),
    (NameDob, "Łukasz Żółć|1990-05-17", Ok("LUKASZ ZOLC|1990-05-17")),
    (NameDob, "Đorđević, Đurđa|1970-01-01", Ok("DORDEVIC DURDA|1970-01-01")),
    (NameDob, "Guðrún Þórsdóttir|1965-06-30", Ok("GUDRUN THORSDOTTIR|1965-06-30")),
    (NameDob, "Lætitia Cœur|1988-09-09", Ok("COEUR LAETITIA|1988-09-09")),
    (NameDob, "Ø Æ Œ Ł Đ Ð Þ Ħ Ŧ Ŋ ẞ|2000-01-01", Ok("AE D D H L N O OE SS T TH|2000-01-01")),
    (NameDob, "ø æ œ ł đ ð þ ħ ŧ ŋ ß|2000-01-01", Ok("AE D D H L N O OE SS T TH|2000-01-01")),
    (NameDob, "\u{01FE}|2000-01-01", Ok("O|2000-01-01")),
    (NameDob, "STRAẞE|1960-03-15", Ok("STRASSE|1960-03-15")),
    // Names only: other kinds still refuse these letters.
    (Passport, "Ø1234567", Err("only letters A-Z and digits 0-9")),
];

fn check_vectors(version: NormalisationVersion, vectors: &[(SelectorKind, &str, Expect)]) {
    let v = version.number();
    for &(kind, input, expect) in vectors {
        let got = normalise_as(version, kind, input);
        match (expect, got) {
            (Ok(want), Ok(got)) => assert_eq!(got, want, "v{v} {} {input:?}", kind.code()),
            (Err(fragment), Err(e)) => {
                let msg = e.to_string();
                assert!(
                    msg.contains(fragment),
                    "v{v} {} {input:?}: {msg}",
                    kind.code()
                );
            }
            (expect, got) => panic!(
                "v{v} {} {input:?}: want {expect:?}, got {got:?}",
                kind.code()
            ),
        }
    }
}

#[test]
fn v1_vectors() {
    check_vectors(NormalisationVersion::V1, NORMALISATION_VECTORS);
    check_vectors(NormalisationVersion::V1, V1_VECTORS);
}

#[test]
fn v2_vectors() {
    check_vectors(NormalisationVersion::V2, V2_VECTORS);
    // `normalise` is v2.
    for &(kind, input, expect) in V2_VECTORS {
        assert_eq!(
            normalise(kind, input).ok().as_deref(),
            expect.ok(),
            "{input:?}"
        );
    }
}

#[test]
fn companions_only_where_v1_accepted_and_differs() {
    let key = test_key();
    let v1_of = |input: &str| key.hash_with_v1(NameDob, input).unwrap().v1;
    let neil_o = key.token(NameDob, "NEIL O|1980-02-03");
    for apostrophe in ["'", "\u{2019}", "\u{02BC}", "\u{2018}", "`", "\u{00B4}"] {
        assert_eq!(
            v1_of(&format!("O{apostrophe}Neil|1980-02-03")),
            Some(neil_o)
        );
    }
    assert_eq!(v1_of("ONeil|1980-02-03"), None, "v1 gives ONEIL too");
    assert_eq!(v1_of("Søren Ørsted|1977-08-14"), None, "v1 refused it");
    assert_eq!(v1_of("O' Neil|1980-02-03"), None, "both give NEIL O");
    assert_eq!(key.hash_with_v1(Passport, "X1234567").unwrap().v1, None);
}

#[test]
fn query_tokens_fold_companion_hits_into_the_selector_asked() {
    let key = test_key();
    let pre = key.hash(Passport, "X1234567").unwrap();
    let neil = key.hash_with_v1(NameDob, "O'Neil|1980-02-03").unwrap();
    let ana = key.hash_with_v1(NameDob, "Ana|1990-05-17").unwrap();
    let dangelo = key.hash_with_v1(NameDob, "D'Angelo|1975-07-04").unwrap();
    let q = QueryTokens::new(vec![pre], &[neil, ana, dangelo]);
    let sent: Vec<Token> = vec![
        pre,
        neil.token,
        ana.token,
        dangelo.token,
        neil.v1.unwrap(),
        dangelo.v1.unwrap(),
    ];
    assert_eq!(q.tokens(), sent.as_slice());
    assert_eq!((q.asked(), q.companions()), (4, 2));
    // A hit on O'Neil's v1 token is a hit on O'Neil.
    assert_eq!(
        q.fold_hits(vec![false, false, true, false, true, false]),
        vec![false, true, true, false]
    );
    assert_eq!(
        q.fold_hits(vec![true, false, false, true, false, false]),
        vec![true, false, false, true]
    );
    assert_eq!(
        q.fold_hits(vec![false, false, false, false, false, true]),
        vec![false, false, false, true]
    );
    // Not an answer to this query: left for the caller to refuse.
    assert_eq!(q.fold_hits(vec![true; 4]), vec![true; 4]);
}

#[test]
fn normalisation_vectors() {
    check_vectors(NormalisationVersion::CURRENT, NORMALISATION_VECTORS);
}

#[test]
fn length_limit_applies_before_normalisation_to_every_kind() {
    let long = format!("{}{}", "A".repeat(200), " ".repeat(57));
    for &kind in SelectorKind::ALL {
        let err = normalise(kind, &long).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: longer than 256 characters before normalisation (got 257)",
                kind.code()
            )
        );
    }
    // 256 characters are fine where the kind allows them once normalised.
    let just = format!("{}{}", "A".repeat(20), " ".repeat(236));
    assert_eq!(normalise(Passport, &just).unwrap(), "A".repeat(20));
    let email = format!("{}@example.org", "a".repeat(MAX_EMAIL_CHARS - 12));
    assert_eq!(normalise(Email, &email).unwrap(), email);
    let email = format!("{}@example.org", "a".repeat(MAX_EMAIL_CHARS - 11));
    assert!(
        normalise(Email, &email)
            .unwrap_err()
            .to_string()
            .contains("at most 254 characters after trimming (got 255)")
    );
}

/// A value within the limit whose normalised form is not: it could not be
/// normalised again, so it is refused (the `selector` fuzz harness caught it).
#[test]
fn a_form_longer_than_the_limit_is_refused() {
    let grows = format!("{}|1990-01-01", "ß".repeat(123));
    assert_eq!(grows.chars().count(), 134);
    for version in [NormalisationVersion::V1, NormalisationVersion::V2] {
        let err = normalise_as(version, NameDob, &grows)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("name_dob: longer than 256 characters after normalisation (got 257;"),
            "{err}"
        );
    }
    let fits = format!("{}|1990-01-01", "ß".repeat(122));
    assert_eq!(normalise(NameDob, &fits).unwrap().chars().count(), 255);
}

#[test]
fn nfc_and_nfd_input_agree() {
    let nfc = "P\u{00C9}REZ G\u{00D3}MEZ, Jos\u{00E9}|1990-05-17";
    let nfd = "PE\u{0301}REZ GO\u{0301}MEZ, Jose\u{0301}|1990-05-17";
    assert_eq!(
        normalise(NameDob, nfc).unwrap(),
        normalise(NameDob, nfd).unwrap()
    );
    assert_eq!(normalise(Passport, "N\u{0303}1234").unwrap(), "N1234");
    assert_eq!(normalise(Passport, "\u{00D1}1234").unwrap(), "N1234");
}

#[test]
fn selector_arguments() {
    assert_eq!(
        parse_selector_arg("passport=X1234567").unwrap(),
        (Passport, "X1234567".to_owned())
    );
    let want = (NameDob, "GOMEZ JOSE PEREZ|1990-05-17".to_owned());
    assert_eq!(
        parse_selector_arg("name-dob=PÉREZ GÓMEZ, José|1990-05-17").unwrap(),
        want
    );
    assert_eq!(
        parse_selector_arg("name_dob=José Pérez-Gómez|1990-05-17").unwrap(),
        want
    );
    assert_eq!(
        parse_selector_arg("bank-account=GB82 WEST 1234 5698 7654 32").unwrap(),
        (BankAccount, "GB82WEST12345698765432".to_owned())
    );
    // Split at the first '=' only.
    assert_eq!(
        parse_selector_arg("email=a=b@Example.org").unwrap(),
        (Email, "a=b@example.org".to_owned())
    );
    let err = parse_selector_arg("X1234567").unwrap_err().to_string();
    assert_eq!(err, "selector argument must be KIND=VALUE (no '=' found)");
    let err = parse_selector_arg("X1234567=passport")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("unknown selector kind; expected one of: passport, "),
        "{err}"
    );
    assert!(!err.contains("X1234567"), "{err}");
    let err = parse_selector_arg("passport=").unwrap_err().to_string();
    assert_eq!(err, "passport: the value is empty");
    let err = parse_selector_arg("phone=5555-1234")
        .unwrap_err()
        .to_string();
    assert!(err.contains("no country code"), "{err}");
}

#[test]
fn key_rules() {
    let err = MatchingKey::from_bytes(1, &[7u8; 31])
        .unwrap_err()
        .to_string();
    assert_eq!(err, "matching key must be at least 32 bytes (got 31)");
    assert!(MatchingKey::from_bytes(0, &[7u8; 32]).is_err());
    let key = MatchingKey::from_bytes(3, &[7u8; 64]).unwrap();
    assert_eq!(key.epoch(), 3);
    assert_eq!(key.hash(Passport, "X1234567").unwrap().epoch, 3);
    assert_eq!(format!("{key:?}"), "MatchingKey { epoch: 3, .. }");
    // A different key gives a different token for the same selector.
    assert_ne!(
        key.hash(Passport, "X1234567").unwrap().token,
        test_key().hash(Passport, "X1234567").unwrap().token
    );
}

#[test]
fn key_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("matching.key");
    let (key, contents) = MatchingKey::generate().unwrap();
    assert_eq!(key.epoch(), 1);
    assert!(contents.ends_with('\n'));
    assert_eq!(contents.trim_end().len(), 44, "base64 of 32 bytes");
    crypto::write_private_file(&path, contents.as_bytes(), false).unwrap();
    let loaded = MatchingKey::load(&path, 1).unwrap();
    assert_eq!(
        loaded.hash(Phone, "+502 5555-1234").unwrap(),
        key.hash(Phone, "+502 5555-1234").unwrap()
    );
    assert_eq!(MatchingKey::load(&path, 2).unwrap().epoch(), 2);

    // Without the newline, and with a CRLF, the same key.
    let bare = dir.path().join("bare.key");
    crypto::write_private_file(&bare, contents.trim_end().as_bytes(), false).unwrap();
    let crlf = dir.path().join("crlf.key");
    let crlf_contents = format!("{}\r\n", contents.trim_end());
    crypto::write_private_file(&crlf, crlf_contents.as_bytes(), false).unwrap();
    for p in [&bare, &crlf] {
        assert_eq!(
            MatchingKey::load(p, 1)
                .unwrap()
                .hash(Passport, "X1234567")
                .unwrap(),
            key.hash(Passport, "X1234567").unwrap()
        );
    }

    // The published test key, written as a key file.
    let published = dir.path().join("test.key");
    let text = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";
    crypto::write_private_file(&published, text.as_bytes(), false).unwrap();
    assert_eq!(
        MatchingKey::load(&published, 1)
            .unwrap()
            .hash(Passport, "X1234567")
            .unwrap()
            .hex(),
        TOKEN_VECTORS[0].3
    );

    // Too short: 16 bytes.
    let short = dir.path().join("short.key");
    let b64 = base64::engine::general_purpose::STANDARD.encode([9u8; 16]);
    crypto::write_private_file(&short, format!("{b64}\n").as_bytes(), false).unwrap();
    let err = MatchingKey::load(&short, 1).unwrap_err().to_string();
    assert!(
        err.contains("holds 16 bytes") && err.contains("at least 32"),
        "{err}"
    );

    // Not base64: the message must not repeat the file's contents.
    let junk = dir.path().join("junk.key");
    crypto::write_private_file(&junk, b"s3cr3t-key-text!!\n", false).unwrap();
    let err = MatchingKey::load(&junk, 1).unwrap_err();
    let msg = format!("{err} {err:?}");
    assert!(msg.contains("base64") && !msg.contains("s3cr3t"), "{msg}");

    // Two lines are not one line of base64.
    let two = dir.path().join("two.key");
    crypto::write_private_file(&two, format!("{contents}{contents}").as_bytes(), false).unwrap();
    assert!(MatchingKey::load(&two, 1).is_err());

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = MatchingKey::load(&path, 1).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    let err = MatchingKey::load(&dir.path().join("absent.key"), 1).unwrap_err();
    assert!(err.to_string().contains("absent.key"), "{err}");
}

#[test]
fn token_hex_and_debug() {
    let t = test_key().hash(Passport, "X1234567").unwrap();
    assert_eq!(t.hex().len(), 64);
    let dbg = format!("{t:?}");
    assert!(dbg.contains("passport") && dbg.contains(&t.hex()), "{dbg}");
}

fn assert_idempotent(kind: SelectorKind, input: &str) -> Result<(), TestCaseError> {
    if let Ok(once) = normalise(kind, input) {
        let twice = normalise(kind, &once).map_err(|e| e.to_string());
        prop_assert_eq!(twice, Ok(once), "{} {:?}", kind.code(), input);
    }
    Ok(())
}

/// Every error that `value` can provoke for every kind, rendered both ways.
fn error_texts(v: &str) -> Vec<String> {
    let mut errors: Vec<SelectorError> = Vec::new();
    let inputs = [
        v.to_owned(),
        format!("{v}#"),
        format!("{v}{v}{v}"),
        format!("{v}X"),
        format!("+{v}"),
        format!("+{v}{v}"),
        format!("00{v}€"),
        format!("{v}@{v}"),
        format!("{v} x@example.org"),
        format!("{v}@@example.org"),
        format!("{v}1|1990-05-17"),
        format!("{v}|2023-02-29"),
        format!("{v}|1899-01-01"),
        format!("JOSE|{v}"),
        format!("{v}Ж|1990-05-17"),
        v.repeat(30),
    ];
    for input in &inputs {
        for &kind in SelectorKind::ALL {
            errors.extend(normalise(kind, input).err());
        }
        errors.extend(parse_selector_arg(input).err());
        errors.extend(parse_selector_arg(&format!("{v}={input}")).err());
        errors.extend(parse_selector_arg(&format!("passport={input}")).err());
    }
    errors.extend(MatchingKey::from_bytes(1, v.as_bytes()).err());
    errors
        .iter()
        .flat_map(|e| [e.to_string(), format!("{e:?}")])
        .collect()
}

proptest! {
    #[test]
    fn idempotent_passport(s in "([A-Za-z0-9ÁÉÑñüç]{1,4}[ .\\-/_]?){1,6}") {
        assert_idempotent(Passport, &s)?;
    }

    #[test]
    fn idempotent_national_id(s in "([A-Za-z0-9ÉÑ]{1,5}[ .\\-/_]?){1,7}") {
        assert_idempotent(NationalId, &s)?;
    }

    #[test]
    fn idempotent_vehicle_plate(s in "([A-Za-z0-9Ä]{1,4}[ .\\-]?){1,4}") {
        assert_idempotent(VehiclePlate, &s)?;
    }

    #[test]
    fn idempotent_bank_account(s in "[A-Za-z]{2}[0-9]{2}( ?[A-Z0-9]{4}){1,7}") {
        assert_idempotent(BankAccount, &s)?;
    }

    #[test]
    fn idempotent_imei(s in "[0-9]{2}[- ]?[0-9]{6}[- ]?[0-9]{6}[- ]?[0-9]{1,2}") {
        assert_idempotent(Imei, &s)?;
    }

    #[test]
    fn idempotent_phone(s in "(\\+|00) ?[0-9]{1,3}[ .\\-]?\\(?[0-9]{2,4}\\)?[ .\\-]?[0-9]{3,8}") {
        assert_idempotent(Phone, &s)?;
    }

    #[test]
    fn idempotent_email(s in " {0,2}[A-Za-z0-9._%+\\-ÉÑéñ]{1,20}@[A-Za-z0-9\\-ÉÖ]{1,20}\\.[A-Za-z]{2,6} {0,2}") {
        assert_idempotent(Email, &s)?;
    }

    #[test]
    fn idempotent_name_dob(
        s in "[A-Za-zÁÉÍÓÚÑáéíóúñüßØæŒłĐðÞ'’´ ,.\\-]{1,40}\\|(19[0-9]{2}|20[0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
    ) {
        assert_idempotent(NameDob, &s)?;
    }

    /// v2 accepts every name v1 accepted, and gives it the same form unless
    /// it has an apostrophe: so only those need a v1 companion.
    #[test]
    fn v2_accepts_what_v1_accepted(
        s in "[A-Za-zÁÉÑñüßØł'’ʼ‘`´ ,.\\-]{1,30}\\|1990-05-17"
    ) {
        if let Ok(v1) = normalise_as(NormalisationVersion::V1, NameDob, &s) {
            let v2 = normalise_as(NormalisationVersion::V2, NameDob, &s);
            prop_assert!(v2.is_ok(), "{:?}: v1 {:?}, v2 {:?}", s, v1, v2);
            if !s.contains(['\'', '’', 'ʼ', '‘', '`', '´']) {
                prop_assert_eq!(v2.ok(), Some(v1), "{:?}", s);
            }
        }
    }

    /// An apostrophe inside a word never splits it.
    #[test]
    fn apostrophes_join(
        (before, after, apostrophe) in ("[A-Za-zÑñ]{1,8}", "[A-Za-zÑñ]{1,8}", "['’ʼ‘`´]")
    ) {
        let with = normalise(NameDob, &format!("{before}{apostrophe}{after}|1990-05-17")).unwrap();
        let without = normalise(NameDob, &format!("{before}{after}|1990-05-17")).unwrap();
        prop_assert_eq!(with, without);
    }

    #[test]
    fn name_token_order_does_not_matter(
        (tokens, shuffled) in proptest::collection::vec("[A-Za-zÁÉÑñ]{1,8}", 1..6)
            .prop_flat_map(|t| (Just(t.clone()), Just(t).prop_shuffle())),
    ) {
        let a = normalise(NameDob, &format!("{}|1990-05-17", tokens.join(" "))).unwrap();
        let b = normalise(NameDob, &format!("{}|1990-05-17", shuffled.join(", "))).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn kinds_never_share_a_token(v in "[A-Za-z0-9+@.| -]{1,40}") {
        let key = test_key();
        let tokens: Vec<_> = SelectorKind::ALL.iter().map(|&k| key.token(k, &v).token).collect();
        for (i, a) in tokens.iter().enumerate() {
            for b in &tokens[i + 1..] {
                prop_assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn errors_and_keys_never_show_the_value(v in "[A-Za-z0-9]{8,20}") {
        let upper = v.to_uppercase();
        let lower = v.to_lowercase();
        for text in error_texts(&v) {
            prop_assert!(
                !text.contains(&v) && !text.contains(&upper) && !text.contains(&lower),
                "{:?} leaks into {:?}", v, text
            );
        }
        let key = MatchingKey::from_bytes(1, v.repeat(4).as_bytes()).unwrap();
        let dbg = format!("{key:?}");
        prop_assert!(!dbg.contains(&v), "{}", dbg);
    }
}
