//! How one call to a node ended, as the metrics label it and the status page shows it.

use poa_ports::NodeOutcome;

use crate::scripts::NodeError;

/// How a call ended, for metrics and the status page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CallClass {
    Ok,
    Refused,
    TimedOut,
    Failed,
}

impl CallClass {
    pub(super) fn of_error(error: &NodeError) -> Self {
        if error.is_timeout() {
            Self::TimedOut
        } else {
            Self::Failed
        }
    }

    pub(super) fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Refused => "refused",
            Self::TimedOut => "timeout",
            Self::Failed => "error",
        }
    }

    pub(super) fn from_code(code: u8) -> NodeOutcome {
        match code {
            1 => NodeOutcome::Ok,
            2 => NodeOutcome::Refused,
            3 => NodeOutcome::TimedOut,
            4 => NodeOutcome::Failed,
            _ => NodeOutcome::Unknown,
        }
    }

    pub(super) fn code(self) -> u8 {
        match self {
            Self::Ok => 1,
            Self::Refused => 2,
            Self::TimedOut => 3,
            Self::Failed => 4,
        }
    }
}
