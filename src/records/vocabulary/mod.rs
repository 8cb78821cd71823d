//! The federation's controlled vocabulary: one closed list of codes per
//! concept, taken from public instruments.
//!
//! Agencies in different countries name the same thing differently, and the
//! region's most damaging confusion is between two different crimes:
//! *trata de personas* (trafficking in persons, an offence against a person,
//! defined by an act, a means and a purpose of exploitation) and *tráfico
//! ilícito de migrantes* (smuggling of migrants, an offence against a
//! state's border, committed for a material benefit). A record that says
//! "tráfico" in free text is useless for matching and wrong in statistics.
//! So every categorical field of a record is one of the enums below, taken
//! from the Palermo protocols, INTERPOL notices, Directive (EU) 2016/680,
//! Europol's handling and evaluation codes, FIRST TLP 2.0 and the UNODC data
//! collection; `docs/vocabulary.md` gives the tables and the sources.
//!
//! Each value has:
//! - a snake_case machine code for programs, configs and the CLI
//!   ([`Offence::code`], [`Offence::parse`]);
//! - a Spanish and an English label for people, shown together with Spanish
//!   first ([`Offence::label`]);
//! - a wire number that matches the enum of the same name in
//!   `proto/enlace/v1/record.proto` ([`Offence::wire`], [`Offence::from_wire`]).
//!   Zero is the protobuf `*_UNSPECIFIED` value and is never a valid value
//!   here, so a field the sender forgot to set cannot be read as a real
//!   category.
//!
//! These are plain Rust enums with no dependency on the generated protobuf
//! code; conversion happens at the service edge.

mod countries;

pub use countries::{Country, all_countries, country, parse_country};

/// Compares user input with a machine code: ASCII case is ignored and `-`,
/// `+` and space stand for `_`, so "Possible-Victim" and "amber+strict" match.
fn matches_code(input: &str, code: &str) -> bool {
    input.len() == code.len()
        && input.bytes().zip(code.bytes()).all(|(i, c)| {
            let i = match i {
                b'-' | b'+' | b' ' => b'_',
                other => other.to_ascii_lowercase(),
            };
            i == c
        })
}

/// Defines one vocabulary enum from a table of
/// `(Variant, wire number, "code", "English label", "Spanish label")`.
macro_rules! vocabulary {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( ($variant:ident, $wire:literal, $code:literal, $en:literal, $es:literal), )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( #[doc = $en] $variant, )+
        }

        impl $name {
            /// Every value, in wire order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// What a value of this type is called in messages.
            pub(crate) const WHAT: &'static str = $what;

            /// The snake_case machine code.
            pub fn code(self) -> &'static str {
                match self {
                    $( Self::$variant => $code, )+
                }
            }

            /// The English label.
            pub fn en(self) -> &'static str {
                match self {
                    $( Self::$variant => $en, )+
                }
            }

            /// The Spanish label.
            pub fn es(self) -> &'static str {
                match self {
                    $( Self::$variant => $es, )+
                }
            }

            /// Both labels for people, Spanish first: "es / en".
            pub fn label(self) -> String {
                format!("{} / {}", self.es(), self.en())
            }

            /// The number used on the wire (`record.proto`).
            pub fn wire(self) -> i32 {
                match self {
                    $( Self::$variant => $wire, )+
                }
            }

            /// The value for a wire number; `None` for 0 (unspecified) and
            /// for numbers this version does not know.
            pub fn from_wire(v: i32) -> Option<Self> {
                match v {
                    $( $wire => Some(Self::$variant), )+
                    _ => None,
                }
            }

            /// Parses a machine code, ignoring case and accepting `-`, `+`
            /// or space for `_`.
            pub fn parse(s: &str) -> Result<Self, String> {
                let trimmed = s.trim();
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| matches_code(trimmed, v.code()))
                    .ok_or_else(|| {
                        let codes: Vec<&str> = Self::ALL.iter().map(|v| v.code()).collect();
                        format!(
                            "unknown {} {:?}; expected one of: {}",
                            Self::WHAT,
                            s,
                            codes.join(", ")
                        )
                    })
            }
        }

        // Stored forms (local cases, states) use the code, like the CLI.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.code())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let code = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                Self::parse(&code).map_err(serde::de::Error::custom)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.code())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

vocabulary! {
    /// The purpose of an alert, after the INTERPOL notice it resembles
    /// ([`AlertType::interpol_analogue`]).
    pub enum AlertType ("alert type") {
        (PossibleVictim, 1, "possible_victim", "Possible victim or missing person", "Posible víctima o persona desaparecida"),
        (Wanted, 2, "wanted", "Wanted person or suspect", "Persona buscada o sospechosa"),
        (PersonOfInterest, 3, "person_of_interest", "Person of interest", "Persona de interés"),
        (ModusOperandi, 4, "modus_operandi", "Modus operandi, route or concealment", "Modus operandi, ruta u ocultamiento"),
        (FraudulentDocument, 5, "fraudulent_document", "Fraudulent document", "Documento fraudulento"),
        (Warning, 6, "warning", "Warning or imminent threat", "Advertencia o amenaza inminente"),
        (CriminalAssets, 7, "criminal_assets", "Criminal assets", "Bienes de origen delictivo"),
    }
}

impl AlertType {
    /// The INTERPOL notice, diffusion or database this alert type corresponds
    /// to, for officers used to INTERPOL's colours.
    pub fn interpol_analogue(self) -> &'static str {
        match self {
            Self::PossibleVictim => "Yellow",
            Self::Wanted => "Red / Diffusion",
            Self::PersonOfInterest => "Blue / Green",
            Self::ModusOperandi => "Purple",
            Self::FraudulentDocument => "SLTD",
            Self::Warning => "Orange",
            Self::CriminalAssets => "Silver",
        }
    }
}

vocabulary! {
    /// The offence a record is about. Trafficking and smuggling are
    /// different crimes (Trafficking Protocol Art. 3; Smuggling Protocol
    /// Art. 3 and 6); `Undetermined` is the honest value while it is unclear.
    pub enum Offence ("offence") {
        (Trafficking, 1, "trafficking", "Trafficking in persons", "Trata de personas"),
        (Smuggling, 2, "smuggling", "Smuggling of migrants", "Tráfico ilícito de migrantes"),
        (IllegalStay, 3, "illegal_stay", "Enabling illegal stay", "Facilitación de permanencia ilegal"),
        (DocumentFraud, 4, "document_fraud", "Travel or identity document fraud", "Fraude de documentos de viaje o de identidad"),
        (Undetermined, 5, "undetermined", "Undetermined", "Por determinar"),
    }
}

vocabulary! {
    /// The act element of trafficking (Trafficking Protocol Art. 3(a)).
    pub enum TraffickingAct ("trafficking act") {
        (Recruitment, 1, "recruitment", "Recruitment", "Captación"),
        (Transportation, 2, "transportation", "Transportation", "Transporte"),
        (Transfer, 3, "transfer", "Transfer", "Traslado"),
        (Harbouring, 4, "harbouring", "Harbouring", "Acogida"),
        (Receipt, 5, "receipt", "Receipt", "Recepción"),
    }
}

vocabulary! {
    /// The means element of trafficking (Trafficking Protocol Art. 3(a)).
    /// For a child no means are required (Art. 3(c)); the record model says
    /// so with its own flag, never with one of these values.
    pub enum TraffickingMeans ("trafficking means") {
        (Threat, 1, "threat", "Threat", "Amenaza"),
        (Force, 2, "force", "Use of force", "Uso de la fuerza"),
        (Coercion, 3, "coercion", "Other forms of coercion", "Otras formas de coacción"),
        (Abduction, 4, "abduction", "Abduction", "Rapto"),
        (Fraud, 5, "fraud", "Fraud", "Fraude"),
        (Deception, 6, "deception", "Deception", "Engaño"),
        (AbuseOfPower, 7, "abuse_of_power", "Abuse of power", "Abuso de poder"),
        (AbuseOfVulnerability, 8, "abuse_of_vulnerability", "Abuse of a position of vulnerability", "Abuso de una situación de vulnerabilidad"),
        (Payments, 9, "payments", "Giving or receiving payments or benefits to a person in control", "Concesión o recepción de pagos o beneficios"),
    }
}

vocabulary! {
    /// The purpose element of trafficking: the form of exploitation
    /// (Trafficking Protocol Art. 3(a); UNODC Global Report categories).
    pub enum Exploitation ("form of exploitation") {
        (Sexual, 1, "sexual", "Sexual exploitation", "Explotación sexual"),
        (ForcedLabour, 2, "forced_labour", "Forced labour or services", "Trabajos o servicios forzados"),
        (ForcedCriminality, 3, "forced_criminality", "Forced criminal activity", "Actividades delictivas forzadas"),
        (Begging, 4, "begging", "Forced begging", "Mendicidad forzada"),
        (ForcedMarriage, 5, "forced_marriage", "Forced marriage", "Matrimonio forzado"),
        (IllegalAdoption, 6, "illegal_adoption", "Illegal adoption / sale of children", "Adopción ilegal / venta de niños"),
        (OrganRemoval, 7, "organ_removal", "Removal of organs", "Extracción de órganos"),
        (SlaveryServitude, 8, "slavery_servitude", "Slavery, practices similar to slavery, servitude", "Esclavitud, prácticas análogas, servidumbre"),
        (Mixed, 9, "mixed", "Mixed forms", "Formas mixtas"),
        (Other, 10, "other", "Other", "Otros fines"),
    }
}

vocabulary! {
    /// The category of the person a record is about (Directive (EU)
    /// 2016/680 Art. 6). A victim is never recorded in another category.
    pub enum SubjectCategory ("subject category") {
        (Suspect, 1, "suspect", "Suspect", "Persona sospechosa"),
        (Convicted, 2, "convicted", "Convicted person", "Persona condenada"),
        (Victim, 3, "victim", "Victim or possible victim", "Víctima o posible víctima"),
        (Witness, 4, "witness", "Witness or contact", "Testigo o contacto"),
    }
}

vocabulary! {
    /// How reliable the source is: the letter of the 4x4 evaluation
    /// (Europol Regulation Art. 29(1)).
    pub enum SourceReliability ("source reliability") {
        (A, 1, "a", "Reliable beyond doubt", "Fiabilidad fuera de duda"),
        (B, 2, "b", "Mostly reliable", "Fiable en la mayoría de los casos"),
        (C, 3, "c", "Mostly unreliable", "No fiable en la mayoría de los casos"),
        (X, 4, "x", "Reliability cannot be assessed", "Fiabilidad no evaluable"),
    }
}

vocabulary! {
    /// How accurate the information is: the digit of the 4x4 evaluation
    /// (Europol Regulation Art. 29(2)).
    pub enum InformationAccuracy ("information accuracy") {
        (One, 1, "1", "Accuracy not in doubt", "Exactitud fuera de duda"),
        (Two, 2, "2", "Known personally to the source", "Conocida personalmente por la fuente"),
        (Three, 3, "3", "Not known personally to the source, corroborated", "No conocida personalmente por la fuente, corroborada"),
        (Four, 4, "4", "Not known personally to the source, not corroborated", "No conocida personalmente por la fuente, no corroborada"),
    }
}

vocabulary! {
    /// What the recipient may do with the information (Europol handling
    /// codes). Only `H3` carries a stated condition.
    pub enum HandlingCode ("handling code") {
        (H0, 1, "h0", "Use only to prevent and combat crime", "Uso exclusivo para prevenir y combatir la delincuencia"),
        (H1, 2, "h1", "Not for judicial proceedings without the provider's permission", "No utilizable en procesos judiciales sin permiso del proveedor"),
        (H2, 3, "h2", "Not to be disseminated without the provider's permission", "No difundir sin permiso del proveedor"),
        (H3, 4, "h3", "Other restrictions, stated", "Otras restricciones (indicadas)"),
    }
}

vocabulary! {
    /// How far the recipient may share the record (FIRST Traffic Light
    /// Protocol 2.0). The labels say who may receive it; [`Tlp::tlp_name`]
    /// gives the official marking.
    pub enum Tlp ("TLP") {
        (Clear, 1, "clear", "No limit on disclosure", "Sin restricción de difusión"),
        (Green, 2, "green", "Limited to the community", "Limitada a la comunidad"),
        (Amber, 3, "amber", "Limited to the recipient organisation and its clients, on a need-to-know basis", "Limitada a la organización receptora y sus clientes, según necesidad de conocer"),
        (AmberStrict, 4, "amber_strict", "Limited to the recipient organisation only", "Limitada a la organización receptora solamente"),
        (Red, 5, "red", "Limited to the named recipients", "Limitada a los destinatarios nombrados"),
    }
}

impl Tlp {
    /// The marking as FIRST spells it, e.g. `TLP:AMBER+STRICT`.
    pub fn tlp_name(self) -> &'static str {
        match self {
            Self::Clear => "TLP:CLEAR",
            Self::Green => "TLP:GREEN",
            Self::Amber => "TLP:AMBER",
            Self::AmberStrict => "TLP:AMBER+STRICT",
            Self::Red => "TLP:RED",
        }
    }

    /// Whether a record with this marking must name its recipients rather
    /// than go to all members: the marking limits sharing to people or to
    /// one organisation, which "all members" cannot honour.
    pub fn requires_named_recipients(self) -> bool {
        matches!(self, Self::AmberStrict | Self::Red)
    }
}

vocabulary! {
    /// How soon the recipient is asked to act.
    pub enum Urgency ("urgency") {
        (Routine, 1, "routine", "Routine", "Ordinaria"),
        (Urgent, 2, "urgent", "Urgent", "Urgente"),
        (Immediate, 3, "immediate", "Immediate", "Inmediata"),
    }
}

vocabulary! {
    /// How far the case behind a record has progressed.
    pub enum CaseStage ("case stage") {
        (Intelligence, 1, "intelligence", "Intelligence", "Inteligencia"),
        (Investigation, 2, "investigation", "Investigation", "Investigación"),
        (Prosecution, 3, "prosecution", "Prosecution", "Acusación"),
        (Trial, 4, "trial", "Trial", "Juicio"),
        (Convicted, 5, "convicted", "Conviction", "Condena"),
        (Closed, 6, "closed", "Closed", "Cerrado"),
    }
}

vocabulary! {
    /// Where a case stands on mutual legal assistance (asistencia judicial
    /// recíproca; UNTOC Art. 18).
    pub enum MlaStatus ("MLA status") {
        (NoRequest, 1, "none", "No request", "Sin solicitud"),
        (Planned, 2, "planned", "Planned", "Prevista"),
        (Requested, 3, "requested", "Requested", "Solicitada"),
        (InProgress, 4, "in_progress", "In progress", "En trámite"),
        (Executed, 5, "executed", "Executed", "Ejecutada"),
        (PartiallyExecuted, 6, "partially_executed", "Partially executed", "Parcialmente ejecutada"),
        (Refused, 7, "refused", "Refused", "Denegada"),
        (MoreInformationNeeded, 8, "more_information_needed", "More information needed", "Se requiere más información"),
    }
}

vocabulary! {
    /// The answer to one mutual legal assistance request.
    pub enum MlaOutcome ("MLA outcome") {
        (Executed, 1, "executed", "Executed", "Ejecutada"),
        (Partial, 2, "partial", "Partially executed", "Parcialmente ejecutada"),
        (Refused, 3, "refused", "Refused", "Denegada"),
        (NeedInfo, 4, "need_info", "More information needed", "Se requiere más información"),
    }
}

vocabulary! {
    /// The kind of identifier a matching token was made from. The kind is
    /// part of the token's input, so a passport number never matches a
    /// phone number with the same digits.
    pub enum SelectorKind ("selector kind") {
        (Passport, 1, "passport", "Passport number", "Número de pasaporte"),
        (NationalId, 2, "national_id", "National identity document number", "Número de documento nacional de identidad"),
        (NameDob, 3, "name_dob", "Name and date of birth", "Nombre y fecha de nacimiento"),
        (Phone, 4, "phone", "Phone number", "Número de teléfono"),
        (Email, 5, "email", "E-mail address", "Correo electrónico"),
        (VehiclePlate, 6, "vehicle_plate", "Vehicle registration plate", "Placa de vehículo"),
        (BankAccount, 7, "bank_account", "Bank account", "Cuenta bancaria"),
        (Imei, 8, "imei", "Mobile device IMEI", "IMEI de dispositivo móvil"),
    }
}

vocabulary! {
    /// Sex, as counted in the UNODC data collection (SDG 16.2.2).
    pub enum Sex ("sex") {
        (Female, 1, "female", "Female", "Mujer"),
        (Male, 2, "male", "Male", "Hombre"),
        (Unknown, 3, "unknown", "Unknown", "Desconocido"),
    }
}

vocabulary! {
    /// Age group, as counted in the UNODC data collection (SDG 16.2.2).
    /// A child is anyone under 18 (Trafficking Protocol Art. 3(d)).
    pub enum AgeGroup ("age group") {
        (Child, 1, "child", "Child under 18", "Menor de 18"),
        (Adult, 2, "adult", "Adult", "Adulto"),
        (Unknown, 3, "unknown", "Age unknown", "Edad desconocida"),
    }
}

#[cfg(test)]
mod tests;
