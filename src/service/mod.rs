//! The long-running side of `backhome serve`: the run manager (backups on the service's runtime,
//! their live progress and history), the scheduler, the repository label used to relink tasks,
//! and the clock they share.

pub mod clock;
pub mod history;
pub mod label;
pub mod runs;
pub mod scheduler;

pub use clock::{Clock, FakeClock, SystemClock};
pub use history::{History, HistoryError, RunItemError, RunRecord, RunStatus};
pub use runs::{LiveRun, LiveState, ProgressView, RunManager, StartError};
pub use scheduler::Scheduler;
