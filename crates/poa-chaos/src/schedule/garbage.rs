//! The garbage a corruption fault writes straight into the producer's keys on some Redis
//! servers, and which servers: pure data, drawn by the schedule.
//!
//! Each kind is something the producer's scripts and decoders can meet in a store anyone can
//! write to (docs/protocol.md section 3: "every key is untrusted input"). What the bytes are,
//! how they are written and how they are removed again is `corrupt`'s job; this module only
//! names the kinds, says which key each lands in and at which height, and what a quorum of it
//! may legitimately do to production.

use std::fmt;

use serde::Serialize;

/// A key every Redis server holds for the producer (docs/protocol.md section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ProducerKey {
    /// `P`: the leader's owner token.
    Lease,
    /// `P:epoch:token`: the fencing epoch.
    Epoch,
    /// `P:block:stream`: the block stream.
    Stream,
    /// `P:heights:index`: the heights index.
    Index,
    /// `P:heights:floor`: the trim floor.
    Floor,
}

impl ProducerKey {
    /// Every key, in the order of docs/protocol.md section 3.
    pub(crate) const ALL: [Self; 5] = [
        Self::Lease,
        Self::Epoch,
        Self::Stream,
        Self::Index,
        Self::Floor,
    ];

    /// The key's name under the prefix `prefix` (the nodes' `--lease-key`).
    pub(crate) fn under(self, prefix: &str) -> String {
        match self {
            Self::Lease => prefix.to_owned(),
            Self::Epoch => format!("{prefix}:epoch:token"),
            Self::Stream => format!("{prefix}:block:stream"),
            Self::Index => format!("{prefix}:heights:index"),
            Self::Floor => format!("{prefix}:heights:floor"),
        }
    }

    /// The key's short name, as in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Lease => "lease",
            Self::Epoch => "epoch",
            Self::Stream => "stream",
            Self::Index => "index",
            Self::Floor => "floor",
        }
    }
}

/// What a corruption fault writes. "The next height" is resolved when the fault starts, from
/// the highest head any node reports (see [`Garbage::height`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "garbage")]
pub(crate) enum Garbage {
    /// A stream entry at the next height, indexed by a well-formed member, whose `data` decodes
    /// to no sealed block.
    UndecodableEntry,
    /// An index member at the next height that is not `<height>:<hex>:<entry id>` at all.
    UnparsableMember,
    /// An index member at the next height whose entry-id part is not a stream id.
    MemberWithoutStreamId,
    /// The head block's own bytes stored under the next height's fields: the entry's fields
    /// disagree with its data.
    FieldsDisagree,
    /// A well-formed block at the height above the head, on the honest parent, sealed by a key
    /// that is not the authority's.
    ForgedNext,
    /// A well-formed block `above` heights above the head, on a parent the chain never had,
    /// sealed by a key that is not the authority's.
    ForgedFarAbove {
        /// Heights above the head.
        above: u64,
    },
    /// A stream entry of several MiB at the next height.
    HugeEntry,
    /// An index member of several hundred KiB at the next height.
    HugeMember,
    /// A value of a MiB in the lease key, without a time to live: a foreign owner that never
    /// expires.
    HugeLeaseValue,
    /// The key holds another type than the producer's (a hash where the lease string is, a
    /// string where the stream is, a hash where the index is, a list where the epoch is, a set
    /// where the floor is).
    WrongType {
        /// The key.
        key: ProducerKey,
    },
    /// The epoch key holds a string that is not a number.
    EpochNotANumber,
    /// The trim floor holds a string that is not a number.
    FloorNotANumber,
}

/// Where a kind of garbage lands, in heights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchor {
    /// `lead` heights above the head when it is written: the leader meets it within a block or
    /// two, before its own block at that height is written there.
    AboveHead {
        /// Heights above the head.
        lead: u64,
    },
    /// At no height: the key as a whole.
    Key,
}

/// Heights above the head at which garbage "at the next height" is written: the head is read a
/// few milliseconds before the write while the leader produces every block time, so the height
/// right above the head may already be on its way; the one above that is met within two blocks.
pub(crate) const NEXT_HEIGHT_LEAD: u64 = 2;

impl Garbage {
    /// How many kinds there are: [`Garbage::drawn`] gives each of `0..KINDS` one of them.
    pub(crate) const KINDS: usize = 16;

    /// The kind drawn for `ticket` in `0..KINDS`, with `above` heights for the far-above
    /// forgery.
    pub(crate) fn drawn(ticket: usize, above: u64) -> Self {
        match ticket {
            0 => Self::UndecodableEntry,
            1 => Self::UnparsableMember,
            2 => Self::MemberWithoutStreamId,
            3 => Self::FieldsDisagree,
            4 => Self::ForgedNext,
            5 => Self::ForgedFarAbove { above },
            6 => Self::HugeEntry,
            7 => Self::HugeMember,
            8 => Self::HugeLeaseValue,
            9..=13 => Self::WrongType {
                key: ProducerKey::ALL[ticket - 9],
            },
            14 => Self::EpochNotANumber,
            _ => Self::FloorNotANumber,
        }
    }

    /// The kind's name, as in reports.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::UndecodableEntry => "undecodable_entry",
            Self::UnparsableMember => "unparsable_member",
            Self::MemberWithoutStreamId => "member_without_stream_id",
            Self::FieldsDisagree => "fields_disagree",
            Self::ForgedNext => "forged_next",
            Self::ForgedFarAbove { .. } => "forged_far_above",
            Self::HugeEntry => "huge_entry",
            Self::HugeMember => "huge_member",
            Self::HugeLeaseValue => "huge_lease_value",
            Self::WrongType { key } => match key {
                ProducerKey::Lease => "wrong_type_lease",
                ProducerKey::Epoch => "wrong_type_epoch",
                ProducerKey::Stream => "wrong_type_stream",
                ProducerKey::Index => "wrong_type_index",
                ProducerKey::Floor => "wrong_type_floor",
            },
            Self::EpochNotANumber => "epoch_not_a_number",
            Self::FloorNotANumber => "floor_not_a_number",
        }
    }

    /// The key it is written into.
    pub(crate) fn key(&self) -> ProducerKey {
        match self {
            Self::UndecodableEntry
            | Self::FieldsDisagree
            | Self::ForgedNext
            | Self::ForgedFarAbove { .. }
            | Self::HugeEntry => ProducerKey::Stream,
            Self::UnparsableMember | Self::MemberWithoutStreamId | Self::HugeMember => {
                ProducerKey::Index
            }
            Self::HugeLeaseValue => ProducerKey::Lease,
            Self::WrongType { key } => *key,
            Self::EpochNotANumber => ProducerKey::Epoch,
            Self::FloorNotANumber => ProducerKey::Floor,
        }
    }

    /// At which height it lands.
    pub(crate) fn anchor(&self) -> Anchor {
        match self {
            Self::ForgedNext => Anchor::AboveHead { lead: 1 },
            Self::ForgedFarAbove { above } => Anchor::AboveHead { lead: *above },
            Self::UndecodableEntry
            | Self::UnparsableMember
            | Self::MemberWithoutStreamId
            | Self::FieldsDisagree
            | Self::HugeEntry
            | Self::HugeMember => Anchor::AboveHead {
                lead: NEXT_HEIGHT_LEAD,
            },
            Self::HugeLeaseValue
            | Self::WrongType { .. }
            | Self::EpochNotANumber
            | Self::FloorNotANumber => Anchor::Key,
        }
    }

    /// The height it lands at, for a chain whose highest reported head is `head`; `None` for
    /// garbage that is a whole key.
    pub(crate) fn height(&self, head: u64) -> Option<u64> {
        match self.anchor() {
            Anchor::AboveHead { lead } => Some(head.saturating_add(lead)),
            Anchor::Key => None,
        }
    }
}

impl fmt::Display for Garbage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ForgedFarAbove { above } => write!(f, "{} +{above}", self.name()),
            _ => write!(f, "{} in {}", self.name(), self.key().name()),
        }
    }
}

/// A set of Redis servers, by index (at most 32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub(crate) struct Servers(u32);

impl Servers {
    /// `count` servers from `first` on, wrapping around `total`.
    pub(crate) fn consecutive(first: usize, count: usize, total: usize) -> Self {
        let mut set = 0_u32;
        for offset in 0..count.min(total) {
            set |= 1 << ((first + offset) % total);
        }
        Self(set)
    }

    /// Whether server `redis` is in the set.
    pub(crate) fn contains(self, redis: usize) -> bool {
        redis < 32 && self.0 & (1 << redis) != 0
    }

    /// How many servers are in the set.
    pub(crate) fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The servers, lowest first.
    pub(crate) fn iter(self) -> impl Iterator<Item = usize> {
        (0..32).filter(move |redis| self.contains(*redis))
    }
}

impl fmt::Display for Servers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.iter().map(|redis| format!("r{redis}")).collect();
        f.write_str(&names.join("+"))
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests {
    use super::*;

    #[test]
    fn drawn__for_every_ticket__then_gives_each_kind_once() {
        // given / when
        let names: std::collections::BTreeSet<&str> = (0..Garbage::KINDS)
            .map(|ticket| Garbage::drawn(ticket, 30).name())
            .collect();

        // then
        assert_eq!(names.len(), Garbage::KINDS);
    }

    #[test]
    fn height__when_the_head_is_known__then_next_height_kinds_land_above_it_and_keys_nowhere() {
        // given / when / then
        assert_eq!(Garbage::UndecodableEntry.height(10), Some(12));
        assert_eq!(Garbage::ForgedNext.height(10), Some(11));
        assert_eq!(Garbage::ForgedFarAbove { above: 30 }.height(10), Some(40));
        assert_eq!(Garbage::EpochNotANumber.height(10), None);
    }

    #[test]
    fn consecutive__when_the_run_wraps__then_takes_the_first_servers_again() {
        // given / when
        let servers = Servers::consecutive(2, 2, 3);

        // then
        assert_eq!(servers.iter().collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers.to_string(), "r0+r2");
    }
}
