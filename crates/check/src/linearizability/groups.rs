//! Operations of unknown outcome grouped by what they do, for the search's `info`
//! phases.
//!
//! Two `info` operations with the same action (write the same value; cas with the same
//! expectation and new value) are interchangeable once both are invoked: neither has a
//! completion to respect, so swapping them in any linearization gives another. The
//! search therefore only ever linearizes the first not-yet-linearized member of a group
//! (in invocation order), which keeps each group's linearized members a prefix: the
//! group's next candidate is found by a counter, not a walk over the (possibly
//! thousands of) pending operations that timed out and never took effect.
//!
//! The search asks for candidates by the value they write (an operation waiting needs
//! that value), by the value a cas expects (a consumer of the current state), or for the
//! next member of every group (a cas that did not swap needs the state to change).

use super::model::{Action, RegisterOp, ValueId};
use std::collections::HashMap;

/// The groups of one key's `info` operations.
#[derive(Debug, Default)]
pub(crate) struct InfoGroups {
    /// Each group's members (operation indices, in invocation order).
    members: Vec<Vec<u32>>,
    /// How many of each group's first members are linearized.
    linearized: Vec<usize>,
    /// The group of each operation (`usize::MAX` for `ok` operations).
    group_of: Vec<usize>,
    /// The groups whose operations write each value.
    writing: HashMap<ValueId, Vec<usize>>,
    /// The groups of cas operations expecting each value.
    expecting: HashMap<ValueId, Vec<usize>>,
    /// The values some `info` cas expects and some `info` operation writes.
    expected_and_written: Vec<ValueId>,
}

impl InfoGroups {
    pub(crate) fn new(ops: &[RegisterOp]) -> InfoGroups {
        let mut groups = InfoGroups {
            group_of: vec![usize::MAX; ops.len()],
            ..InfoGroups::default()
        };
        let mut by_action: HashMap<Action, usize> = HashMap::new();
        for (index, op) in ops.iter().enumerate() {
            if op.is_ok() {
                continue;
            }
            let group = *by_action.entry(op.action).or_insert_with(|| {
                groups.members.push(Vec::new());
                groups.linearized.push(0);
                let group = groups.members.len() - 1;
                if let Some(written) = op.written() {
                    groups.writing.entry(written).or_default().push(group);
                }
                if let Action::Cas { expected, .. } = op.action {
                    groups.expecting.entry(expected).or_default().push(group);
                }
                group
            });
            groups.members[group]
                .push(u32::try_from(index).expect("fewer than 2^32 operations per key"));
            groups.group_of[index] = group;
        }
        let mut expected_and_written: Vec<ValueId> = groups
            .expecting
            .keys()
            .copied()
            .filter(|value| groups.writing.contains_key(value))
            .collect();
        expected_and_written.sort_unstable();
        groups.expected_and_written = expected_and_written;
        groups
    }

    /// Records that the `info` operation `op` was linearized (it must be its group's next).
    pub(crate) fn linearize(&mut self, op: u32) {
        let group = self.group_of[op as usize];
        debug_assert_eq!(
            self.members[group].get(self.linearized[group]),
            Some(&op),
            "groups are used in order"
        );
        self.linearized[group] += 1;
    }

    /// Undoes the last `linearize` of `op`'s group.
    pub(crate) fn unlinearize(&mut self, op: u32) {
        let group = self.group_of[op as usize];
        self.linearized[group] -= 1;
        debug_assert_eq!(self.members[group][self.linearized[group]], op);
    }

    /// The group's next member, if any.
    fn next_of(&self, group: usize) -> Option<u32> {
        self.members[group].get(self.linearized[group]).copied()
    }

    /// The next member of each group writing `value`.
    pub(crate) fn writing(&self, value: ValueId) -> impl Iterator<Item = u32> + '_ {
        self.writing
            .get(&value)
            .into_iter()
            .flatten()
            .filter_map(|&group| self.next_of(group))
    }

    /// The next member of each group of cas operations expecting `value`.
    pub(crate) fn expecting(&self, value: ValueId) -> impl Iterator<Item = u32> + '_ {
        self.expecting
            .get(&value)
            .into_iter()
            .flatten()
            .filter_map(|&group| self.next_of(group))
    }

    /// The next member of every group.
    pub(crate) fn all(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.members.len()).filter_map(|group| self.next_of(group))
    }

    /// The values some `info` cas expects and some `info` operation writes: a waiting
    /// `info` cas may need them (the search counts them as needed without checking which
    /// cas operations wait).
    pub(crate) fn expected_and_written(&self) -> &[ValueId] {
        &self.expected_and_written
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::UNSEEN;
    use super::*;

    #[test]
    fn each_group_hands_out_its_members_in_order() {
        let info = |action| RegisterOp {
            history_index: 0,
            invoke: 0,
            complete: None,
            action,
        };
        let cas = Action::Cas {
            expected: 2,
            new: 3,
            swapped: None,
        };
        let ops = [
            info(Action::Write(UNSEEN)),
            info(Action::Write(2)),
            info(Action::Write(UNSEEN)),
            info(cas),
            RegisterOp {
                complete: Some(1),
                ..info(Action::Read(2))
            },
        ];
        let mut groups = InfoGroups::new(&ops);
        assert_eq!(groups.all().collect::<Vec<_>>(), vec![0, 1, 3]);
        groups.linearize(0);
        assert_eq!(groups.writing(UNSEEN).collect::<Vec<_>>(), vec![2]);
        assert_eq!(groups.writing(2).collect::<Vec<_>>(), vec![1]);
        assert_eq!(groups.expecting(2).collect::<Vec<_>>(), vec![3]);
        assert_eq!(groups.expected_and_written(), &[2]);
        assert_eq!(groups.all().collect::<Vec<_>>(), vec![2, 1, 3]);
        groups.unlinearize(0);
        assert_eq!(groups.all().collect::<Vec<_>>(), vec![0, 1, 3]);
    }
}
