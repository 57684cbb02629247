//! Word pools for generated records: names with accents and emoji, companies, long notes.
//!
//! Notes deliberately contain `<`, `>` and `&`, which Greenhouse escapes as `\u003c` and so on
//! in webhook bodies, so the escaping path is exercised by ordinary data.

use crate::sim::rng::Rng;

pub const FIRST_NAMES: &[&str] = &[
    "José", "Zoë", "Łukasz", "Søren", "Anaïs", "Björn", "Chloé", "Siobhán", "Renée", "Nguyễn",
    "Ayşe", "François", "Maëlle", "Jürgen", "Ólafur", "Dvořák", "Aiko", "Priya", "Kwame", "Mia",
    "Pete", "Hank", "Giuseppe", "Trisha", "Hector", "Amélie", "Noël", "Ève", "Tomás", "Ingrid",
];

pub const LAST_NAMES: &[&str] = &[
    "Müller", "García", "O'Brien", "Øyen", "Núñez", "Kowalczyk", "Smith", "Van der Berg",
    "Nakamura", "Çelik", "Ferreira", "Håkansson", "Lefèvre", "Đorđević", "Mensah", "Iyer",
    "Porter", "Hurley", "Troy", "Von Diablo", "Schäfer", "Ruiz-Peña", "Ó Súilleabháin", "Lee",
];

/// Emoji that real profiles carry in preferred names and tags.
pub const EMOJI: &[&str] = &["🚀", "🌱", "✨", "🎯", "🧪", "🦀", "👩‍💻", "🇧🇷"];

pub const COMPANIES: &[&str] = &[
    "Ghbili Studio", "Acme & Sons", "Zürich Analytics AG", "Café Olé", "Nordlys AS",
    "Société Générale de Test", "Kaiju Robotics", "Pirate Shipping", "Example", "Ōtsuka Labs",
];

pub const TITLES: &[&str] = &[
    "Producer", "Staff Data Engineer", "Director of Strategic Initiatives", "Window Washer",
    "Ingénieure logiciel", "Product Designer", "Site Reliability Engineer", "Recruiter",
    "Head of People", "Backend Developer (Rust)",
];

pub const JOB_NAMES: &[&str] = &[
    "Staff Data Engineer", "Window Washer - Seasonal", "Product Designer", "Account Executive",
    "Développeur Rust", "QA Intern", "Customer Success Manager", "Site Reliability Engineer",
    "Head of Finance", "Recruiting Coordinator",
];

pub const DEPARTMENT_NAMES: &[&str] = &[
    "Engineering", "Design", "Sales", "Customer Success", "Finance", "People", "Marketing",
    "Legal", "Data Science", "Opérations", "Research & Development", "Support",
];

pub const OFFICE_LOCATIONS: &[(&str, &str)] = &[
    ("New York", "New York, NY, USA"),
    ("San Francisco", "San Francisco, CA, USA"),
    ("London", "London, United Kingdom"),
    ("São Paulo", "São Paulo, Brazil"),
    ("Kraków", "Kraków, Poland"),
    ("Zürich", "Zürich, Switzerland"),
    ("Tōkyō", "Tōkyō, Japan"),
    ("Remote", "Anywhere"),
];

pub const STAGE_NAMES: &[&str] = &[
    "Application Review",
    "Preliminary Phone Screen",
    "Take Home Test",
    "Onsite Interview",
    "Offer",
];

pub const TAGS: &[&str] = &[
    "current", "tagged", "Ruby", "Comp Sci", "Import from Previous ATS", "Rust 🦀", "referral",
    "silver medalist", "relocation", "C++ & Go",
];

pub const TIME_ZONES: &[&str] = &[
    "Eastern Time (US & Canada)",
    "Pacific Time (US & Canada)",
    "London",
    "Europe/Berlin",
    "Asia/Tokyo",
];

const NOTE_SENTENCES: &[&str] = &[
    "Strong on distributed systems & storage engines.",
    "Asked about the <on-call> rotation and remote work.",
    "Salary expectation > band; discuss with the hiring manager.",
    "Références vérifiées ; très bon retour de l'équipe précédente.",
    "Prefers async communication 🚀 and small teams.",
    "Follow up after the take-home test < 48 h.",
    "Mentioned a competing offer from Acme & Sons.",
    "Great questions about the product roadmap and the data model.",
];

/// Builds a note of roughly `sentences` sentences. Some notes run to several kilobytes, as
/// real interview notes do.
pub fn note(rng: &mut Rng, sentences: u64) -> String {
    let mut text = String::new();
    for i in 0..sentences {
        if i > 0 {
            text.push(if rng.chance(1, 6) { '\n' } else { ' ' });
        }
        let sentence: &&str = rng.pick(NOTE_SENTENCES);
        text.push_str(sentence);
    }
    text
}

/// Turns a name into the local part of an e-mail address.
pub fn email_local_part(first: &str, last: &str, id: i64) -> String {
    let simplified: String = format!("{first}.{last}")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    format!("{}.{id}", simplified.to_lowercase())
}
