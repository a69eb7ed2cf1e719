//! A stored process list parsed once, when it is loaded, into the steps the engine runs. The
//! stored text stays the list's only persisted form (the catalog keeps it and the API returns
//! it); this is its in-memory form.

use super::catalog::{ArgType, Context, ProcessDef, lookup};
use super::list::{MAX_STEPS, RawStep, parse_stored};
use super::typed::Process;

/// One step of a list.
#[derive(Debug, Clone)]
pub struct Step {
    /// The key as stored (`2`, `process__scale`): what a run that stops here reports.
    key: String,
    /// `None` for a key the catalog does not know: a run stops there, as in emoncms, so the
    /// steps before it still run.
    known: Option<Known>,
}

#[derive(Debug, Clone)]
struct Known {
    /// Kept for the contexts the process may run in.
    def: &'static ProcessDef,
    process: Process,
}

impl Step {
    fn parse(raw: RawStep) -> Self {
        let known = lookup(&raw.key).and_then(|def| {
            Process::from_def(def, &raw.args).map(|process| Known { def, process })
        });
        Self {
            key: raw.key,
            known,
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The process, whatever the context; `None` for an unknown key.
    pub fn process(&self) -> Option<&Process> {
        self.known.as_ref().map(|k| &k.process)
    }

    /// The process when it may run in `ctx`; `None` stops the list.
    pub fn runnable_in(&self, ctx: Context) -> Option<&Process> {
        self.known
            .as_ref()
            .filter(|k| k.def.allowed_in(ctx))
            .map(|k| &k.process)
    }
}

/// A parsed process list.
#[derive(Debug, Clone, Default)]
pub struct ProcessList {
    steps: Vec<Step>,
    /// The stored text it was parsed from (a change of it is made only if it is still this).
    source: String,
    /// See [`ProcessList::feed_args`]; read from the text, where the rule is defined.
    feed_args: Vec<u32>,
}

impl ProcessList {
    /// Parses a stored list (`1:5,2:0.1`). Nothing is refused: unknown keys and odd arguments
    /// are kept as a run treats them. Steps past [`MAX_STEPS`] (only a list stored by other
    /// means than ynni's API, which refuses it) are not run.
    pub fn parse(stored: &str) -> Self {
        let mut raw = parse_stored(stored);
        if raw.len() > MAX_STEPS {
            tracing::warn!(
                steps = raw.len(),
                kept = MAX_STEPS,
                "a stored process list is longer than ynni runs; its last steps are left out"
            );
            raw.truncate(MAX_STEPS);
        }
        let feed_args = raw.iter().filter_map(plain_feed_arg).collect();
        let steps = raw.into_iter().map(Step::parse).collect();
        Self {
            steps,
            source: stored.to_string(),
            feed_args,
        }
    }

    /// The stored text this list was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// How many steps the list has (a run takes at most twice as many, see the loop guard).
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Whether a step's result depends on earlier values (see [`Process::is_stateful`]).
    pub fn has_stateful_steps(&self) -> bool {
        self.steps
            .iter()
            .filter_map(Step::process)
            .any(Process::is_stateful)
    }

    /// The feeds named as the first argument of a step that takes a feed there, in list order
    /// (repeats included), when written as a plain unsigned integer: the feeds a virtual feed
    /// reads as its sources.
    pub fn feed_args(&self) -> &[u32] {
        &self.feed_args
    }
}

fn plain_feed_arg(step: &RawStep) -> Option<u32> {
    let takes_feed = lookup(&step.key)
        .and_then(|d| d.args.first())
        .is_some_and(|a| a.kind == ArgType::FeedId);
    if !takes_feed {
        return None;
    }
    step.args.first().and_then(|a| a.trim().parse::<u32>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn processes(list: &ProcessList) -> Vec<Option<Process>> {
        list.steps().iter().map(|s| s.process().cloned()).collect()
    }

    #[test]
    fn parses_once_into_typed_steps() {
        let list = ProcessList::parse("1:5,2:0.1,process__log_to_feed:7,24:,71:30:7,999:1,");
        assert_eq!(
            processes(&list),
            vec![
                Some(Process::LogToFeed(5)),
                Some(Process::Scale(0.1)),
                Some(Process::LogToFeed(7)),
                Some(Process::AllowPositive),
                Some(Process::PowerToKwhCustom {
                    minutes: 30,
                    feed: 7
                }),
                None,
                None,
            ]
        );
        let keys: Vec<&str> = list.steps().iter().map(Step::key).collect();
        assert_eq!(
            keys,
            ["1", "2", "process__log_to_feed", "24", "71", "999", ""]
        );
        assert!(ProcessList::parse("").is_empty());
        assert!(!ProcessList::parse(",").is_empty());
    }

    #[test]
    fn contexts_and_state() {
        let list = ProcessList::parse("53:1,1:2");
        let in_input: Vec<bool> = list
            .steps()
            .iter()
            .map(|s| s.runnable_in(Context::Input).is_some())
            .collect();
        let in_virtual: Vec<bool> = list
            .steps()
            .iter()
            .map(|s| s.runnable_in(Context::VirtualFeed).is_some())
            .collect();
        assert_eq!(in_input, [false, true]);
        assert_eq!(in_virtual, [true, false]);
        assert!(!list.has_stateful_steps());
        assert!(ProcessList::parse("2:1,999:1,34:6").has_stateful_steps());
    }

    #[test]
    fn feed_args_are_plain_ids_of_feed_arguments() {
        let list = ProcessList::parse("53:1,55: 2 ,2:3,56:4.0,57:1,71:30:5,29:-1,58:+6");
        assert_eq!(list.feed_args(), [1, 2, 1, 6]);
    }
}
