"""Per-rule hit counters.

The kernel counts hits per (generation, rule reference), per CPU. A rule
reference means nothing once its generation is replaced, so each apply
records every reference's identity (a keyed hash of policy name and rule
id), and folds the counts of the generation it retires into a table by
identity. A rule's hits are that carried count plus its current count.
"""
from __future__ import annotations

import os
import struct
from collections.abc import Iterator

from lsmguard import abi
from lsmguard.loader import Map
from lsmguard.policy import evaluate
from lsmguard.policy.compile import Compiled

DEFAULT_RULE = evaluate.DEFAULT_RULE             # refusals by a policy's default
UNATTRIBUTED_RULE = evaluate.UNATTRIBUTED_RULE   # refusals by a rule the kernel could not single out
DRIFT_RULE = evaluate.DRIFT_RULE                 # refusals and audits by a policy's drift option


def identity(hash_key: tuple[int, int], policy: str, rule: str) -> int:
    return abi.path_hash(hash_key, os.fsencode(policy) + b"\0" + os.fsencode(rule))


def hit_key(reference: int, generation: int) -> bytes:
    return abi.RULE_HIT_KEY.pack(reference, generation)


def identities(compiled: Compiled, hash_key: tuple[int, int], generation: int) -> Iterator[tuple[bytes, bytes]]:
    """(lg_rule_identities key, value) for every rule reference of a generation."""
    for policy_id, (name, rules) in enumerate(zip(compiled.names, compiled.rules, strict=True)):
        specials: tuple[tuple[int, str], ...] = ((abi.RULE_INDEX_DEFAULT, DEFAULT_RULE),
                                                 (abi.RULE_INDEX_UNATTRIBUTED, UNATTRIBUTED_RULE))
        if compiled.policies[policy_id].drift is not None:   # its identity also tells the engine it had drift
            specials += ((abi.RULE_INDEX_DRIFT, DRIFT_RULE),)
        for index, rule in [*enumerate(rules), *specials]:
            yield (hit_key(abi.rule_reference(policy_id, index), generation),
                   struct.pack("=Q", identity(hash_key, name, rule)))


def _generation_of(key: bytes) -> int:
    return abi.key_generation("struct lg_rule_hit_key", key)


def _count(hits: Map, key: bytes) -> int:
    return sum(struct.unpack("=Q", v)[0] for v in hits.lookup_percpu(key))


def retire(hits: Map, identities_map: Map, carried: Map, generation: int) -> None:
    """Fold the counts of a retired generation into `carried` and drop them. Its identities
    are deleted with the generation's other entries, after this."""
    for key in [k for k in hits.keys() if _generation_of(k) == generation]:
        count = _count(hits, key)
        raw = identities_map.lookup(key)
        if raw is not None and count:
            previous = carried.lookup(raw)
            total = count + (struct.unpack("=Q", previous)[0] if previous else 0)
            carried.update(raw, struct.pack("=Q", total))
        hits.delete(key)


def by_identity(hits: Map, identities_map: Map, carried: Map, generation: int) -> dict[int, int]:
    """Every rule identity with hits: carried plus the generation in force."""
    totals = {struct.unpack("=Q", k)[0]: struct.unpack("=Q", carried.lookup(k) or bytes(8))[0]
              for k in carried.keys()}
    for key in hits.keys():
        if _generation_of(key) != generation:
            continue
        raw = identities_map.lookup(key)
        if raw is not None:
            ident = struct.unpack("=Q", raw)[0]
            totals[ident] = totals.get(ident, 0) + _count(hits, key)
    return totals
