//! The Harvest v3 resources the simulator serves, and how their ids are laid out.

use std::fmt;
use std::str::FromStr;

/// A Harvest v3 list resource, named as in its `/v3/<name>` path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

impl Resource {
    /// Every resource, in the order parents come before children.
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

    /// Returns the path segment under `/v3/`.
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

    fn ordinal(self) -> u64 {
        Resource::ALL
            .iter()
            .position(|r| *r == self)
            .expect("every resource is listed in Resource::ALL") as u64
    }

    /// Returns the id of the record at `index` (0-based, in creation order).
    ///
    /// Ids grow with the index, as Greenhouse ids grow with creation time, start above 2^32 so
    /// that a client storing them in 32 bits fails at once, and end in `002` like the ids of a
    /// real tenant.
    pub fn id_of(self, index: u64) -> i64 {
        (ID_BASE + self.ordinal() * RESOURCE_ID_SPAN + index * ID_STEP) as i64
    }

    /// Returns the index of the record with `id`, or `None` when `id` is not one of this resource's.
    pub fn index_of(self, id: i64) -> Option<u64> {
        let start = ID_BASE + self.ordinal() * RESOURCE_ID_SPAN;
        let id = u64::try_from(id).ok()?;
        let offset = id.checked_sub(start)?;
        if offset >= RESOURCE_ID_SPAN || offset % ID_STEP != 0 {
            return None;
        }
        Some(offset / ID_STEP)
    }
}

/// First id of the first resource: above 2^32 (4,294,967,296).
const ID_BASE: u64 = 5_000_000_002;

/// Distance between consecutive ids of one resource.
const ID_STEP: u64 = 1_000;

/// Id range reserved for each resource, room for a billion records each.
const RESOURCE_ID_SPAN: u64 = 1_000_000_000_000;

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Resource {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl FromStr for Resource {
    type Err = UnknownResource;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Resource::ALL
            .into_iter()
            .find(|r| r.name() == name)
            .ok_or_else(|| UnknownResource(name.to_owned()))
    }
}

/// A resource name that the simulator does not serve.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown resource '{0}': expected one of departments, offices, users, jobs, job_posts, job_interview_stages, candidates, applications, offers, interviews, scorecards")]
pub struct UnknownResource(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for resource in Resource::ALL {
            for index in [0, 1, 99_999, 1_000_000] {
                let id = resource.id_of(index);
                assert!(id > u32::MAX as i64);
                assert_eq!(resource.index_of(id), Some(index));
            }
        }
    }

    #[test]
    fn foreign_ids_are_rejected() {
        let id = Resource::Candidates.id_of(5);
        assert_eq!(Resource::Applications.index_of(id), None);
        assert_eq!(Resource::Candidates.index_of(id + 1), None);
        assert_eq!(Resource::Candidates.index_of(-1), None);
    }

    #[test]
    fn names_parse() {
        for resource in Resource::ALL {
            assert_eq!(resource.name().parse::<Resource>().ok(), Some(resource));
        }
        assert!("widgets".parse::<Resource>().is_err());
    }
}
