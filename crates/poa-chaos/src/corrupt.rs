//! The corruption fault's I/O: writes one kind of garbage straight into the producer's keys on
//! the chosen Redis servers (never through the fault proxies), records exactly what it wrote,
//! and at the heal removes exactly that again: the entries and members it added, the keys it
//! retyped (the originals come back from where it renamed them), the values it overwrote (put
//! back, unless the producer has written its own since). What the garbage is comes from
//! `corrupt::forge`; which kind, where and when from the schedule.
//!
//! Every change is one Lua script on the server, so a producer's script never sees half of it.

mod forge;

use std::time::Duration;

use adapter_chain::SealedBlock;
use poa_test_support::{RedisServer, RespValue};

use crate::schedule::{Anchor, Garbage, ProducerKey, Servers};
use crate::streams::LEASE_KEY;
use forge::{EntryFields, Forge, GARBAGE_EPOCH};

/// Bound of one write or removal: a huge entry is several MiB and every server fsyncs it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// Appends one entry and indexes it under `<prefix><entry id>`, atomically.
/// `KEYS[1]` stream, `KEYS[2]` index; `ARGV[1]` height, `ARGV[2]` member prefix, `ARGV[3..]` fields.
const ADD_ENTRY: &str = "local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3)) \
    local member = ARGV[2] .. id \
    redis.call('ZADD', KEYS[2], ARGV[1], member) \
    return {id, member}";
/// Moves the key aside (unless `ARGV[3]` is `drop`, then deletes it) and creates one of type
/// `ARGV[1]` holding `ARGV[2]`. `KEYS[1]` key, `KEYS[2]` where the original goes. Returns 1 when there
/// was an original.
const RETYPE: &str = "local existed = redis.call('EXISTS', KEYS[1]) \
    if existed == 1 then \
      if ARGV[3] == 'drop' then redis.call('DEL', KEYS[1]) \
      else redis.call('RENAME', KEYS[1], KEYS[2]) end \
    end \
    if ARGV[1] == 'hash' then redis.call('HSET', KEYS[1], 'chaos', ARGV[2]) \
    elseif ARGV[1] == 'string' then redis.call('SET', KEYS[1], ARGV[2]) \
    elseif ARGV[1] == 'list' then redis.call('RPUSH', KEYS[1], ARGV[2]) \
    else redis.call('SADD', KEYS[1], ARGV[2]) end \
    return existed";
/// Deletes the key if it still has the type `ARGV[1]` the fault gave it, then brings the original
/// back from `KEYS[2]` if the key is free. Returns 1 when the garbage was still there.
const UNRETYPE: &str = "local ours = 0 \
    if redis.call('TYPE', KEYS[1]).ok == ARGV[1] then redis.call('DEL', KEYS[1]) ours = 1 end \
    if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('EXISTS', KEYS[2]) == 1 then \
      redis.call('RENAME', KEYS[2], KEYS[1]) \
    end \
    return ours";
/// Sets the key to `ARGV[1]` and returns what it held (GET and SET at once).
const OVERWRITE: &str = "local previous = redis.call('GET', KEYS[1]) \
    redis.call('SET', KEYS[1], ARGV[1]) \
    return previous";
/// If the key still holds the garbage `ARGV[1]`: puts `ARGV[3]` back when `ARGV[2]` is `restore`,
/// else deletes the key. Returns 1 when the garbage was still there.
const UNDO_OVERWRITE: &str = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end \
    if ARGV[2] == 'restore' then redis.call('SET', KEYS[1], ARGV[3]) \
    else redis.call('DEL', KEYS[1]) end \
    return 1";

/// The chain's highest head when the fault starts: what garbage "at the next height" is placed
/// above and forgeries are built on.
#[derive(Debug, Clone)]
pub(crate) struct ChainTip {
    /// Its height.
    pub(crate) height: u64,
    /// The block there, as the node serves it raw.
    pub(crate) block: SealedBlock,
}

/// One write of garbage on one server, with what undoes exactly it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Written {
    /// A stream entry and the index member naming it.
    Entry { entry_id: Vec<u8>, member: Vec<u8> },
    /// An index member alone.
    Member { member: Vec<u8> },
    /// The key replaced by one of `redis_type`; the original, if there was one and it is to
    /// come back, moved to `backup`.
    Retyped {
        key: String,
        backup: String,
        redis_type: &'static str,
    },
    /// A string key overwritten with `garbage`; `previous` goes back at the removal, `None`
    /// deletes the key.
    Overwritten {
        key: String,
        garbage: Vec<u8>,
        previous: Option<Vec<u8>>,
    },
}

/// What one corruption fault wrote.
#[derive(Debug, Clone, Default)]
pub(crate) struct Planted {
    /// The height it landed at, for garbage at a height.
    pub(crate) height: Option<u64>,
    /// Per server, what was written there.
    writes: Vec<(usize, Written)>,
    /// Servers where another member already held the height when the garbage landed: the
    /// leader's own block got there first.
    pub(crate) late_on: Vec<usize>,
    /// Servers the garbage could not be written to, and why.
    pub(crate) failed: Vec<(usize, String)>,
}

impl Planted {
    /// A line for the timeline: where it landed, and where it came too late or failed.
    pub(crate) fn describe(&self) -> String {
        let mut text = self
            .height
            .map_or_else(|| "the whole key".to_owned(), |h| format!("height {h}"));
        if !self.late_on.is_empty() {
            let late: Vec<String> = self.late_on.iter().map(|r| format!("r{r}")).collect();
            text.push_str(&format!(
                "; the leader's block got there first on {}",
                late.join(", ")
            ));
        }
        for (redis, error) in &self.failed {
            text.push_str(&format!("; not written on r{redis}: {error}"));
        }
        text
    }
}

/// Writes `garbage` on every server in `servers`, the same bytes on each (drawn from `salt`),
/// above `tip` for garbage at a height.
///
/// # Errors
/// Fails, writing nothing, when garbage at a height is asked for without a chain tip.
pub(crate) fn plant(
    redis: &[RedisServer],
    garbage: Garbage,
    servers: Servers,
    salt: u64,
    tip: Option<&ChainTip>,
) -> Result<Planted, String> {
    let mut forge = Forge::new(salt);
    let height = match (garbage.anchor(), tip) {
        (Anchor::Key, _) => None,
        (Anchor::AboveHead { .. }, Some(tip)) => garbage.height(tip.height),
        (Anchor::AboveHead { .. }, None) => {
            return Err("no node showed its head block".to_owned());
        }
    };
    let plan = Plan::of(garbage, &mut forge, tip, height);
    let mut planted = Planted {
        height,
        ..Planted::default()
    };
    for server in servers.iter().filter(|r| *r < redis.len()) {
        match plan.write(&redis[server]) {
            Ok(written) => planted.writes.push((server, written)),
            Err(error) => planted.failed.push((server, error)),
        }
        if let (Some(height), Some((_, written))) = (height, planted.writes.last())
            && another_member_at(&redis[server], height, written)
        {
            planted.late_on.push(server);
        }
    }
    Ok(planted)
}

/// Removes everything `planted` wrote; returns how many writes were still there to undo.
///
/// # Errors
/// Fails when a server cannot be reached or refuses the removal, naming each.
pub(crate) fn remove(redis: &[RedisServer], planted: &Planted) -> Result<usize, String> {
    let mut undone = 0;
    let mut failures = Vec::new();
    for (server, written) in &planted.writes {
        match undo(&redis[*server], written) {
            Ok(true) => undone += 1,
            Ok(false) => {}
            Err(error) => failures.push(format!("r{server}: {error}")),
        }
    }
    if failures.is_empty() {
        Ok(undone)
    } else {
        Err(failures.join("; "))
    }
}

/// The garbage of one fault, ready to be written on any server.
enum Plan {
    Entry {
        fields: EntryFields,
        /// Member prefix, `<height>:<id>:`; the entry id completes it.
        prefix: Vec<u8>,
    },
    Member {
        height: u64,
        member: Vec<u8>,
    },
    Retype {
        key: ProducerKey,
        redis_type: &'static str,
        value: Vec<u8>,
    },
    Overwrite {
        key: ProducerKey,
        value: Vec<u8>,
        restore: bool,
    },
}

impl Plan {
    fn of(
        garbage: Garbage,
        forge: &mut Forge,
        tip: Option<&ChainTip>,
        height: Option<u64>,
    ) -> Self {
        let height = height.unwrap_or_default();
        let entry = |fields: EntryFields| Self::Entry {
            prefix: format!("{}:{}:", fields.height, fields.id).into_bytes(),
            fields,
        };
        match (garbage, tip) {
            (Garbage::ForgedNext, Some(tip)) => {
                entry(forge.forged_block(&tip.block, height, tip.block.id()))
            }
            (Garbage::ForgedFarAbove { .. }, Some(tip)) => {
                let parent = forge.unknown_parent();
                entry(forge.forged_block(&tip.block, height, parent))
            }
            (Garbage::FieldsDisagree, Some(tip)) => {
                entry(Forge::fields_disagreeing(&tip.block, height))
            }
            (Garbage::HugeEntry, _) => entry(forge.huge_entry(height)),
            (Garbage::UnparsableMember, _) => Self::Member {
                height,
                member: forge.unparsable_member(height),
            },
            (Garbage::MemberWithoutStreamId, _) => Self::Member {
                height,
                member: forge.member_without_stream_id(height),
            },
            (Garbage::HugeMember, _) => Self::Member {
                height,
                member: Forge::huge_member(height),
            },
            (Garbage::HugeLeaseValue, _) => Self::Overwrite {
                key: ProducerKey::Lease,
                value: forge.huge_lease_value(),
                restore: false,
            },
            (Garbage::WrongType { key }, _) => Self::Retype {
                key,
                redis_type: match key {
                    ProducerKey::Lease | ProducerKey::Index => "hash",
                    ProducerKey::Epoch => "list",
                    ProducerKey::Stream => "string",
                    ProducerKey::Floor => "set",
                },
                value: forge.wrong_type_value(),
            },
            (Garbage::EpochNotANumber, _) => Self::Overwrite {
                key: ProducerKey::Epoch,
                value: forge.not_a_number(),
                restore: true,
            },
            (Garbage::FloorNotANumber, _) => Self::Overwrite {
                key: ProducerKey::Floor,
                value: forge.not_a_number(),
                restore: true,
            },
            // An undecodable entry needs no tip; the kinds built on the tip never get here
            // without one (`plant` refuses them), and would get the closest garbage.
            (
                Garbage::UndecodableEntry
                | Garbage::ForgedNext
                | Garbage::ForgedFarAbove { .. }
                | Garbage::FieldsDisagree,
                _,
            ) => entry(forge.undecodable_entry(height)),
        }
    }

    fn write(&self, server: &RedisServer) -> Result<Written, String> {
        match self {
            Self::Entry { fields, prefix } => {
                let stream = ProducerKey::Stream.under(LEASE_KEY);
                let index = ProducerKey::Index.under(LEASE_KEY);
                let height = fields.height.to_string();
                let reply = eval(
                    server,
                    ADD_ENTRY,
                    &[stream.as_bytes(), index.as_bytes()],
                    &[
                        height.as_bytes(),
                        prefix,
                        b"height",
                        height.as_bytes(),
                        b"id",
                        fields.id.as_bytes(),
                        b"epoch",
                        GARBAGE_EPOCH.as_bytes(),
                        b"data",
                        &fields.data,
                        b"timestamp",
                        b"0",
                    ],
                )?;
                let parts = reply.as_array().unwrap_or_default();
                match (
                    parts.first().and_then(RespValue::as_bytes),
                    parts.get(1).and_then(RespValue::as_bytes),
                ) {
                    (Some(entry_id), Some(member)) => Ok(Written::Entry {
                        entry_id: entry_id.to_vec(),
                        member: member.to_vec(),
                    }),
                    _ => Err(format!("unexpected reply {reply:?}")),
                }
            }
            Self::Member { height, member } => {
                let index = ProducerKey::Index.under(LEASE_KEY);
                let height = height.to_string();
                command(
                    server,
                    &[b"ZADD", index.as_bytes(), height.as_bytes(), member],
                )?;
                Ok(Written::Member {
                    member: member.clone(),
                })
            }
            Self::Retype {
                key,
                redis_type,
                value,
            } => {
                let name = key.under(LEASE_KEY);
                let backup = format!("{LEASE_KEY}:chaos:saved:{}", key.name());
                // The lease never comes back: an old owner's token revived would be a lease
                // nobody asked for.
                let mode: &[u8] = if *key == ProducerKey::Lease {
                    b"drop"
                } else {
                    b"keep"
                };
                eval(
                    server,
                    RETYPE,
                    &[name.as_bytes(), backup.as_bytes()],
                    &[redis_type.as_bytes(), value, mode],
                )?;
                Ok(Written::Retyped {
                    key: name,
                    backup,
                    redis_type,
                })
            }
            Self::Overwrite {
                key,
                value,
                restore,
            } => {
                let name = key.under(LEASE_KEY);
                let previous = eval(server, OVERWRITE, &[name.as_bytes()], &[value])?;
                Ok(Written::Overwritten {
                    key: name,
                    garbage: value.clone(),
                    previous: restore
                        .then(|| previous.as_bytes().map(<[u8]>::to_vec))
                        .flatten(),
                })
            }
        }
    }
}

fn undo(server: &RedisServer, written: &Written) -> Result<bool, String> {
    let stream = ProducerKey::Stream.under(LEASE_KEY);
    let index = ProducerKey::Index.under(LEASE_KEY);
    let reply = match written {
        Written::Entry { entry_id, member } => {
            let members = command(server, &[b"ZREM", index.as_bytes(), member])?;
            let entries = command(server, &[b"XDEL", stream.as_bytes(), entry_id])?;
            return Ok(members.as_integer().unwrap_or(0) + entries.as_integer().unwrap_or(0) > 0);
        }
        Written::Member { member } => command(server, &[b"ZREM", index.as_bytes(), member])?,
        Written::Retyped {
            key,
            backup,
            redis_type,
        } => eval(
            server,
            UNRETYPE,
            &[key.as_bytes(), backup.as_bytes()],
            &[redis_type.as_bytes()],
        )?,
        Written::Overwritten {
            key,
            garbage,
            previous,
        } => {
            let (mode, value): (&[u8], &[u8]) = match previous {
                Some(previous) => (b"restore", previous),
                None => (b"delete", b""),
            };
            eval(
                server,
                UNDO_OVERWRITE,
                &[key.as_bytes()],
                &[garbage, mode, value],
            )?
        }
    };
    Ok(reply.as_integer().unwrap_or(0) > 0)
}

/// Whether the index at `height` holds a member other than the one `written` added.
fn another_member_at(server: &RedisServer, height: u64, written: &Written) -> bool {
    let ours = match written {
        Written::Entry { member, .. } | Written::Member { member } => member,
        Written::Retyped { .. } | Written::Overwritten { .. } => return false,
    };
    let index = ProducerKey::Index.under(LEASE_KEY);
    let height = height.to_string();
    let Ok(RespValue::Array(members)) = server.try_command(
        &[
            b"ZRANGEBYSCORE",
            index.as_bytes(),
            height.as_bytes(),
            height.as_bytes(),
        ],
        COMMAND_TIMEOUT,
    ) else {
        return false;
    };
    members
        .iter()
        .filter_map(RespValue::as_bytes)
        .any(|member| member != ours.as_slice())
}

fn eval(
    server: &RedisServer,
    script: &str,
    keys: &[&[u8]],
    args: &[&[u8]],
) -> Result<RespValue, String> {
    let count = keys.len().to_string();
    let mut command_args: Vec<&[u8]> = vec![b"EVAL", script.as_bytes(), count.as_bytes()];
    command_args.extend_from_slice(keys);
    command_args.extend_from_slice(args);
    command(server, &command_args)
}

fn command(server: &RedisServer, args: &[&[u8]]) -> Result<RespValue, String> {
    match server.try_command(args, COMMAND_TIMEOUT) {
        Ok(RespValue::Error(error)) => Err(error),
        Ok(reply) => Ok(reply),
        Err(error) => Err(error.to_string()),
    }
}

#[cfg(test)]
#[allow(non_snake_case)]
mod tests;
