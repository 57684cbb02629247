//! Fault injection: what goes wrong with one request.

use std::time::Duration;

use super::config::FaultConfig;
use super::resource::Resource;

/// The faults drawn for one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// Whether to close the connection before the response is complete.
    pub drop_connection: bool,
    /// Error status to return instead of the page.
    pub status: Option<u16>,
    /// Delay on top of the configured latency.
    pub extra_delay: Duration,
    /// Whether to return 403 because the resource is configured as forbidden.
    pub forbidden: bool,
    /// Whether to return the request's own cursor in `Link`.
    pub repeat_cursor: bool,
}

/// Statuses drawn by `error_rate`, in equal parts.
const ERROR_STATUSES: [u16; 3] = [500, 502, 503];

/// Draws the faults of one `/v3/<resource>` request and consumes one-shot faults.
pub fn draw(faults: &mut FaultConfig, resource: Resource, is_cursor_request: bool) -> FaultPlan {
    let mut plan = FaultPlan { forbidden: faults.forbidden_resource.as_deref() == Some(resource.name()), ..FaultPlan::default() };

    if let Some(fail) = faults.fail_next.as_mut() {
        plan.status = Some(fail.status);
        fail.count = fail.count.saturating_sub(1);
        if fail.count == 0 {
            faults.fail_next = None;
        }
    }
    if plan.status.is_none() && rand::random::<f64>() < faults.error_rate {
        plan.status = Some(ERROR_STATUSES[rand::random_range(0..ERROR_STATUSES.len())]);
    }
    plan.drop_connection = rand::random::<f64>() < faults.drop_rate;
    if rand::random::<f64>() < faults.slow_rate {
        plan.extra_delay = Duration::from_millis(faults.slow_ms);
    }
    if is_cursor_request && faults.repeat_cursor.as_deref() == Some(resource.name()) {
        plan.repeat_cursor = true;
        faults.repeat_cursor = None;
    }
    plan
}

/// Checks a fault configuration sent to `POST /_sim/faults`.
pub fn validate(faults: &FaultConfig) -> Result<(), String> {
    for (name, rate) in [("error_rate", faults.error_rate), ("drop_rate", faults.drop_rate), ("slow_rate", faults.slow_rate)] {
        if !(0.0..=1.0).contains(&rate) {
            return Err(format!("invalid {name} {rate}: expected a fraction from 0.0 to 1.0"));
        }
    }
    for name in [&faults.forbidden_resource, &faults.repeat_cursor].into_iter().flatten() {
        name.parse::<Resource>().map_err(|error| error.to_string())?;
    }
    if let Some(fail) = faults.fail_next {
        if !(400..=599).contains(&fail.status) {
            return Err(format!("invalid fail_next.status {}: expected an HTTP error status from 400 to 599", fail.status));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::config::FailNext;

    #[test]
    fn fail_next_runs_out() {
        let mut faults = FaultConfig { fail_next: Some(FailNext { count: 2, status: 503 }), ..FaultConfig::default() };
        assert_eq!(draw(&mut faults, Resource::Jobs, false).status, Some(503));
        assert_eq!(draw(&mut faults, Resource::Jobs, false).status, Some(503));
        assert_eq!(draw(&mut faults, Resource::Jobs, false).status, None);
    }

    #[test]
    fn repeat_cursor_fires_once_on_cursor_pages() {
        let mut faults = FaultConfig { repeat_cursor: Some("jobs".to_owned()), ..FaultConfig::default() };
        assert!(!draw(&mut faults, Resource::Jobs, false).repeat_cursor);
        assert!(!draw(&mut faults, Resource::Users, true).repeat_cursor);
        assert!(draw(&mut faults, Resource::Jobs, true).repeat_cursor);
        assert!(!draw(&mut faults, Resource::Jobs, true).repeat_cursor);
    }

    #[test]
    fn invalid_configs_rejected() {
        assert!(validate(&FaultConfig { error_rate: 1.5, ..FaultConfig::default() }).is_err());
        assert!(validate(&FaultConfig { forbidden_resource: Some("widgets".to_owned()), ..FaultConfig::default() }).is_err());
        assert!(validate(&FaultConfig { fail_next: Some(FailNext { count: 1, status: 200 }), ..FaultConfig::default() }).is_err());
        assert!(validate(&FaultConfig { error_rate: 0.5, forbidden_resource: Some("jobs".to_owned()), ..FaultConfig::default() }).is_ok());
    }
}
