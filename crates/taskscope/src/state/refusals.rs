//! Counts of the peers taskscope's servers turned away, by why: the live stream's client and
//! hello limits, its token and hello checks, and the Prometheus endpoint's limit and token.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why a peer was turned away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    ClientLimit,
    HelloLimit,
    WrongToken,
    BadHello,
    ScrapeLimit,
    ScrapeUnauthorized,
}

/// The counters, one per [`Refusal`], since the process started.
#[derive(Debug, Default)]
pub(crate) struct RefusalCounts([AtomicU64; 6]);

impl RefusalCounts {
    pub(crate) fn count(&self, why: Refusal) {
        self.0[why as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn load(&self) -> taskscope_wire::Refusals {
        let n = |why: Refusal| self.0[why as usize].load(Relaxed);
        taskscope_wire::Refusals {
            client_limit: n(Refusal::ClientLimit),
            hello_limit: n(Refusal::HelloLimit),
            wrong_token: n(Refusal::WrongToken),
            bad_hello: n(Refusal::BadHello),
            scrape_limit: n(Refusal::ScrapeLimit),
            scrape_unauthorized: n(Refusal::ScrapeUnauthorized),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_counts_on_its_own() {
        let counts = RefusalCounts::default();
        counts.count(Refusal::WrongToken);
        counts.count(Refusal::WrongToken);
        counts.count(Refusal::ScrapeUnauthorized);
        let refused = counts.load();
        assert_eq!((refused.wrong_token, refused.scrape_unauthorized), (2, 1));
        assert_eq!(refused.total(), 3);
    }
}
