//! The Greenhouse record types we store, and the typed columns of each table.
//!
//! Column names are Harvest v3 field names, so a v3 object maps to a row by name. Webhook
//! payloads (shaped like the retired v1 objects) are first rewritten into v3 field names by
//! `greenhouse::webhook_payload`, then stored through the same mapping.

use std::fmt;
use std::str::FromStr;

/// A synced record type. Its table and its Harvest v3 list path share this name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    Departments,
    Offices,
    Users,
    Jobs,
    JobPosts,
    JobInterviewStages,
    Candidates,
    Applications,
    Offers,
    Interviews,
    Scorecards,
}

/// Conversion of a typed column from the record's JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// 64-bit integer: Greenhouse ids exceed 2^31 and may exceed 2^53.
    Int,
    Text,
    Bool,
    /// RFC 3339 timestamp, stored in UTC.
    Time,
}

/// A typed column copied out of the record's JSON field of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnKind,
}

const fn int(name: &'static str) -> Column {
    Column { name, kind: ColumnKind::Int }
}
const fn text(name: &'static str) -> Column {
    Column { name, kind: ColumnKind::Text }
}
const fn boolean(name: &'static str) -> Column {
    Column { name, kind: ColumnKind::Bool }
}
const fn time(name: &'static str) -> Column {
    Column { name, kind: ColumnKind::Time }
}

const DEPARTMENTS: &[Column] = &[text("name"), int("parent_id"), text("external_id"), time("created_at"), time("updated_at")];
const OFFICES: &[Column] =
    &[text("name"), text("location"), int("parent_id"), text("external_id"), time("created_at"), time("updated_at")];
const USERS: &[Column] = &[
    text("first_name"),
    text("last_name"),
    text("name"),
    text("primary_email"),
    text("employee_id"),
    boolean("deactivated"),
    boolean("site_admin"),
    time("created_at"),
    time("updated_at"),
];
const JOBS: &[Column] = &[
    text("name"),
    text("requisition_id"),
    text("status"),
    boolean("confidential"),
    boolean("is_template"),
    int("department_id"),
    time("opened_at"),
    time("closed_at"),
    time("created_at"),
    time("updated_at"),
];
const JOB_POSTS: &[Column] = &[
    int("job_id"),
    text("title"),
    boolean("live"),
    boolean("active"),
    boolean("internal"),
    time("first_published_at"),
    time("created_at"),
    time("updated_at"),
];
const JOB_INTERVIEW_STAGES: &[Column] =
    &[int("job_id"), text("name"), boolean("active"), int("sort_order"), time("created_at"), time("updated_at")];
const CANDIDATES: &[Column] = &[
    text("first_name"),
    text("last_name"),
    text("company"),
    text("title"),
    boolean("private"),
    boolean("can_email"),
    time("last_activity_at"),
    time("created_at"),
    time("updated_at"),
];
const APPLICATIONS: &[Column] = &[
    int("candidate_id"),
    int("job_id"),
    boolean("prospect"),
    text("status"),
    int("job_interview_stage_id"),
    text("stage_name"),
    int("source_id"),
    time("rejected_at"),
    time("last_activity_at"),
    time("created_at"),
    time("updated_at"),
];
const OFFERS: &[Column] = &[
    int("application_id"),
    int("candidate_id"),
    int("job_id"),
    int("version"),
    text("status"),
    // `sent_on` and `starts_on` are dates in v1 payloads ("2013-03-22", "04/15/2013") and
    // timestamps in v3, so they are kept as the text Greenhouse sent.
    text("sent_on"),
    text("starts_on"),
    time("resolved_at"),
    time("created_at"),
    time("updated_at"),
];
const INTERVIEWS: &[Column] = &[
    int("application_id"),
    int("job_id"),
    int("job_interview_id"),
    text("status"),
    time("starts_at"),
    time("ends_at"),
    int("organizer_id"),
    time("created_at"),
    time("updated_at"),
];
const SCORECARDS: &[Column] = &[
    int("application_id"),
    int("candidate_id"),
    int("interviewer_id"),
    int("submitter_id"),
    text("status"),
    text("candidate_rating"),
    time("interviewed_at"),
    time("submitted_at"),
    time("created_at"),
    time("updated_at"),
];

impl Resource {
    pub const ALL: [Resource; 11] = [
        Resource::Departments,
        Resource::Offices,
        Resource::Users,
        Resource::Jobs,
        Resource::JobPosts,
        Resource::JobInterviewStages,
        Resource::Candidates,
        Resource::Applications,
        Resource::Offers,
        Resource::Interviews,
        Resource::Scorecards,
    ];

    /// Table name, also the Harvest v3 list path (`/v3/<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Resource::Departments => "departments",
            Resource::Offices => "offices",
            Resource::Users => "users",
            Resource::Jobs => "jobs",
            Resource::JobPosts => "job_posts",
            Resource::JobInterviewStages => "job_interview_stages",
            Resource::Candidates => "candidates",
            Resource::Applications => "applications",
            Resource::Offers => "offers",
            Resource::Interviews => "interviews",
            Resource::Scorecards => "scorecards",
        }
    }

    /// Typed columns besides the keys and bookkeeping columns every table has.
    pub fn columns(self) -> &'static [Column] {
        match self {
            Resource::Departments => DEPARTMENTS,
            Resource::Offices => OFFICES,
            Resource::Users => USERS,
            Resource::Jobs => JOBS,
            Resource::JobPosts => JOB_POSTS,
            Resource::JobInterviewStages => JOB_INTERVIEW_STAGES,
            Resource::Candidates => CANDIDATES,
            Resource::Applications => APPLICATIONS,
            Resource::Offers => OFFERS,
            Resource::Interviews => INTERVIEWS,
            Resource::Scorecards => SCORECARDS,
        }
    }

    /// Returns the JSON field whose timestamp orders versions of a record.
    ///
    /// Applications use `last_activity_at` because that is the one timestamp their webhook
    /// payloads carry; v3 objects carry both.
    pub fn version_field(self) -> &'static str {
        match self {
            Resource::Applications => "last_activity_at",
            _ => "updated_at",
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Resource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Resource::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| format!("unknown resource '{s}'; expected one of: {}", Resource::ALL.map(Resource::name).join(", ")))
    }
}
