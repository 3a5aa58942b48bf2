//! Per-deployment admission: Azure answers 429 once a deployment has more than
//! `2 × max_concurrent_requests_per_instance × instances` requests in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many requests a deployment takes at once before it answers 429.
pub fn in_flight_limit(max_concurrent_requests_per_instance: u32, instances: usize) -> usize {
    2usize
        .saturating_mul(max_concurrent_requests_per_instance as usize)
        .saturating_mul(instances)
}

/// Requests in flight to one deployment. Kept by deployment name across config reloads, so
/// requests admitted under the old config still count against the new limit.
#[derive(Debug, Default)]
pub struct InFlight {
    count: AtomicUsize,
}

/// One admitted request; dropping it (response sent, timed out, or the caller went away)
/// frees its place.
#[derive(Debug)]
pub struct Admitted {
    in_flight: Arc<InFlight>,
}

impl InFlight {
    pub fn current(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Takes a place if fewer than `limit` are taken; `None` means answer 429.
    pub fn try_admit(self: &Arc<Self>, limit: usize) -> Option<Admitted> {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                (current < limit).then_some(current + 1)
            })
            .ok()
            .map(|_| Admitted {
                in_flight: Arc::clone(self),
            })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.in_flight.count.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_twice_concurrency_times_instances() {
        assert_eq!(in_flight_limit(1, 1), 2);
        assert_eq!(in_flight_limit(4, 3), 24);
        assert_eq!(in_flight_limit(1, 0), 0);
    }

    #[test]
    fn admits_up_to_the_limit_and_frees_on_drop() {
        let in_flight = Arc::new(InFlight::default());
        let first = in_flight.try_admit(2).unwrap();
        let second = in_flight.try_admit(2).unwrap();
        assert_eq!(in_flight.current(), 2);
        assert!(
            in_flight.try_admit(2).is_none(),
            "third request must be refused"
        );
        assert_eq!(in_flight.current(), 2, "a refusal takes no place");
        drop(first);
        assert_eq!(in_flight.current(), 1);
        let third = in_flight.try_admit(2).unwrap();
        drop((second, third));
        assert_eq!(in_flight.current(), 0);
    }

    #[test]
    fn a_lower_limit_after_reload_refuses_until_enough_finish() {
        let in_flight = Arc::new(InFlight::default());
        let held: Vec<_> = (0..4).map(|_| in_flight.try_admit(4).unwrap()).collect();
        assert!(in_flight.try_admit(2).is_none());
        drop(held);
        assert!(in_flight.try_admit(2).is_some());
    }

    #[test]
    fn concurrent_admission_never_exceeds_the_limit() {
        let in_flight = Arc::new(InFlight::default());
        let admitted: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        (0..100)
                            .filter_map(|_| in_flight.try_admit(50))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        assert_eq!(admitted.len(), 50);
        assert_eq!(in_flight.current(), 50);
    }
}
