//! The controller against a real on-disk store, with the server's create paths replaced by
//! a recorder (the seam `Submit` exists for): fires are written before they are submitted,
//! a fire left unsubmitted by a dead server is submitted under the same run id, and a run
//! that already exists counts as submitted.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::*;
use crate::schedule::trigger::{Frequency, TriggerSpec, Window};

#[derive(Default)]
struct Recorder {
    submitted: Mutex<Vec<String>>,
    exists: Mutex<Vec<String>>,
}

impl Submit for Recorder {
    fn submit(&self, job: ScheduledJob) -> Result<String, SubmitError> {
        let ScheduledJob::Command(j) = job else {
            return Err(SubmitError::Other("a command job was expected".into()));
        };
        let id = j.name.clone().unwrap();
        if self.exists.lock().unwrap().contains(&id) {
            return Err(SubmitError::Exists);
        }
        assert_eq!(
            j.command,
            format!("echo {id}"),
            "`${{{{name}}}}` is the run id"
        );
        self.submitted.lock().unwrap().push(id.clone());
        Ok(id)
    }
    fn check(&self, _: &ScheduledJob) -> Result<(), String> {
        Ok(())
    }
}

fn job() -> ScheduledJob {
    let mut j = crate::store::tests::submission();
    j.name = Some("fixed-in-the-file".into());
    j.command = "echo ${{name}}".into();
    ScheduledJob::Command(Box::new(j))
}

fn every_minute(name: &str, start: &str) -> ScheduleSubmission {
    ScheduleSubmission {
        name: name.into(),
        display_name: None,
        description: None,
        tags: BTreeMap::new(),
        trigger: TriggerSpec::Recurrence {
            frequency: Frequency::Minute,
            interval: 1,
            schedule: None,
            window: Window {
                start_time: Some(start.into()),
                ..Window::default()
            },
        },
        job: job(),
        source: None,
        job_source: None,
    }
}

fn setup() -> (tempfile::TempDir, Arc<Store>, Arc<Recorder>, Controller) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("t.db")).unwrap());
    let rec = Arc::new(Recorder::default());
    let c = Controller::new(store.clone(), rec.clone());
    (dir, store, rec, c)
}

#[test]
fn a_due_schedule_fires_once_and_waits_for_its_next_occurrence() {
    let (_d, store, rec, c) = setup();
    let (made, created) = c.put(every_minute("m", "2020-01-01T00:00:00Z")).unwrap();
    assert!(created);
    assert_eq!(c.enabled(), 1);
    // Its next fire is the first minute ahead, not 2020.
    let next: Timestamp = made.next_fire.unwrap().parse().unwrap();
    assert!(next >= Timestamp::now() - jiff::SignedDuration::from_secs(1));
    assert!(next <= Timestamp::now() + jiff::SignedDuration::from_secs(60));

    // Pretend the server was down for ten minutes past it.
    let later = next + jiff::SignedDuration::from_secs(600);
    let rec_row = store.schedule("m").unwrap();
    let after = c.fire_if_due(&rec_row, next, later).unwrap().unwrap();
    assert_eq!(after, next + jiff::SignedDuration::from_secs(660));
    let fires = store.schedule_fires("m", 10).unwrap();
    assert_eq!(fires.len(), 1);
    assert_eq!(fires[0].cause, FireCause::CatchUp);
    assert_eq!(fires[0].missed, 10);
    assert_eq!(fires[0].state, FireState::Submitted);
    let occurrence = next + jiff::SignedDuration::from_secs(600);
    assert_eq!(fires[0].run_id, fire_run_id("m", occurrence));
    assert_eq!(
        *rec.submitted.lock().unwrap(),
        vec![fires[0].run_id.clone()]
    );
    let note = store.schedule("m").unwrap().note.unwrap();
    assert!(note.starts_with("11 occurrences from"), "{note}");
    // Not due again until its next occurrence.
    let row = store.schedule("m").unwrap();
    assert_eq!(row.next_fire.as_deref(), Some(after.to_string().as_str()));
    assert_eq!(c.fire_if_due(&row, after, later).unwrap(), Some(after));
    assert_eq!(store.schedule_fires("m", 10).unwrap().len(), 1);
}

#[tokio::test]
async fn a_fire_a_dead_server_left_unsubmitted_is_submitted_under_its_own_id() {
    let (_d, store, rec, c) = setup();
    c.put(every_minute("m", "2020-01-01T00:00:00Z")).unwrap();
    // A server wrote two fires and died before submitting them; one run had been made.
    for (id, at) in [
        ("m-a", "2026-01-01T00:00:00Z"),
        ("m-b", "2026-01-01T00:01:00Z"),
    ] {
        store
            .begin_fire(
                "m",
                &NewFire {
                    occurrence: at,
                    run_id: id,
                    missed: 0,
                    cause: FireCause::Schedule,
                    next_fire: None,
                    note: None,
                },
            )
            .unwrap();
    }
    rec.exists.lock().unwrap().push("m-a".into());
    let c = Arc::new(c);
    assert_eq!(c.start().unwrap(), 2);
    assert_eq!(*rec.submitted.lock().unwrap(), vec!["m-b".to_string()]);
    assert!(store.unfinished_fires().unwrap().is_empty());
    let states: Vec<FireState> = store
        .schedule_fires("m", 10)
        .unwrap()
        .iter()
        .map(|f| f.state)
        .collect();
    assert_eq!(states, [FireState::Submitted, FireState::Submitted]);
}

#[test]
fn delete_wants_a_disabled_schedule_and_a_manual_fire_keeps_the_next_occurrence() {
    let (_d, store, rec, c) = setup();
    c.put(every_minute("m", "2020-01-01T00:00:00Z")).unwrap();
    let before = store.schedule("m").unwrap().next_fire;
    let fire = c.trigger("m").unwrap();
    assert_eq!(fire.cause, FireCause::Manual);
    assert_eq!(fire.state, FireState::Submitted);
    assert_eq!(store.schedule("m").unwrap().next_fire, before);
    assert_eq!(rec.submitted.lock().unwrap().len(), 1);
    assert!(matches!(c.delete("m"), Err(Error::Enabled(_))));
    c.disable("m").unwrap();
    assert_eq!(c.enabled(), 0);
    c.delete("m").unwrap();
    assert!(store.schedule_fires("m", 10).unwrap().is_empty());
    assert!(matches!(
        c.trigger("m"),
        Err(Error::Store(crate::store::Error::NoSchedule(_)))
    ));
}
