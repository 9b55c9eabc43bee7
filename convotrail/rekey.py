"""`convotrail rekey`: move state keyed the old way (before account scoping) to its new keys.

Keys are `account|id` since account scoping (schemas/keys.py); state written before
is keyed by the bare id (`cnv-1`, `msg-1`) or by the ambiguous `account/address`.
The values carry the account, so each such record can be re-keyed, but its new key
hashes to another partition, which a worker restoring one partition cannot reach.
This command does it offline, with the workers stopped (it refuses while a
processor's consumer group has members):

for every compacted topic that holds state (the processors' changelogs and the
compacted outputs), the live value of each legacy key is produced under its new key
and the legacy key gets a tombstone, in one transaction per topic. Re-running it is
harmless: keys already new are left alone and tombstoned ones are gone. Restarted
workers restore the suffix after their checkpoints, which holds exactly these moves.

`plan` is pure (what to move, what cannot be resolved); `rekey` reads and writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

from convotrail import clients
from convotrail.errors import ConvotrailError
from convotrail.settings import Settings
from schemas import keys
from schemas import model as m

log = logging.getLogger(__name__)

# value bytes -> the new key, or None when the value does not say it
NewKey = Callable[[bytes, bytes], bytes | None]


class RekeyRefused(ConvotrailError):
    pass


@dataclass
class Plan:
    topic: str
    moves: list[tuple[bytes, bytes, bytes]] = field(default_factory=list)  # old, new, value
    current: int = 0  # live keys already in the new format
    unresolved: list[bytes] = field(default_factory=list)

    def describe(self) -> str:
        return (
            f"{self.topic}: {len(self.moves)} re-keyed, {self.current} already new, "
            f"{len(self.unresolved)} unresolved"
        )


def is_legacy(key: bytes) -> bool:
    return keys.SEPARATOR.encode() not in key


def plan(topic: str, records: Iterable[tuple[bytes | None, bytes | None]], new_key: NewKey) -> Plan:
    """What compaction would keep of `records` (in log order), and where each legacy
    key's live value goes."""
    live: dict[bytes, bytes | None] = {}
    for key, value in records:
        if key is not None:
            live[key] = value
    result = Plan(topic)
    for key, value in live.items():
        if value is None:
            continue
        if not is_legacy(key):
            result.current += 1
            continue
        try:
            target = new_key(key, value)
        except Exception as exc:  # an undecodable value is reported, never guessed
            log.warning("%s: cannot read the value of %r: %s", topic, key, exc)
            target = None
        if target is None:
            result.unresolved.append(key)
        else:
            result.moves.append((key, target, value))
    return result


# -- new keys, per kind of value ------------------------------------------------------------


def memory_key(_key: bytes, value: bytes) -> bytes | None:
    from processors.conversation.memory_codec import decode_memory

    state = decode_memory(value).state
    return None if state is None else keys.conversation(state.account_id, state.conversation_id)


def track_key(_key: bytes, value: bytes) -> bytes | None:
    from processors.receipts.codec import decode_track

    track = decode_track(value)
    return keys.message_track(track.account_id, track.message_id)


def health_key(key: bytes, value: bytes) -> bytes | None:
    """Legacy `account/address`: unambiguous when the value names the account (a
    suppression), or when the key has one `/`; otherwise unresolved."""
    from processors.delivery.recipients import decode_health

    text = key.decode()
    suppression = decode_health(value).suppression
    if suppression is not None and text.startswith(f"{suppression.account_id}/"):
        return keys.recipient(suppression.account_id, text[len(suppression.account_id) + 1 :])
    if text.count("/") == 1:
        account, address = text.split("/")
        return keys.recipient(account, address)
    return None


def output_key(decode: Callable[[bytes], Any], key_of: Callable[[Any], bytes]) -> NewKey:
    return lambda _key, value: key_of(decode(value))


# -- Kafka ------------------------------------------------------------------------------------


def _read_topic(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    consumer = clients.consumer(settings, "convotrail-rekey", guarantees={
        "enable.auto.commit": False, "isolation.level": "read_committed"})  # fmt: skip
    try:
        metadata = consumer.list_topics(topic, timeout=15).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            return []  # a topic that was never created holds nothing to move
        ends = {}
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 15)
            if high > low:
                ends[partition] = high
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        records: list[tuple[bytes | None, bytes | None]] = []
        positions = dict.fromkeys(ends, 0)
        while any(positions[p] < ends[p] for p in ends):
            for message in consumer.consume(1000, 1.0):
                if message.error() is not None:
                    raise RekeyRefused(f"reading {topic}: {message.error()}")
                records.append((message.key(), message.value()))
                positions[message.partition() or 0] = (message.offset() or 0) + 1
            # Transaction markers occupy offsets that no message shows: ask where we are.
            for tp in consumer.position([TopicPartition(topic, p) for p in ends]):
                positions[tp.partition] = max(positions[tp.partition], tp.offset)
        return records
    finally:
        consumer.close()


def _write(settings: Settings, topic_plan: Plan) -> None:
    producer = clients.producer(settings, guarantees={
        "transactional.id": f"convotrail-rekey-{topic_plan.topic}"})  # fmt: skip
    producer.init_transactions(30)
    producer.begin_transaction()
    for old, new, value in topic_plan.moves:
        producer.produce(topic_plan.topic, value, new)
        producer.produce(topic_plan.topic, None, old)  # the legacy key is gone
        producer.poll(0)
    producer.commit_transaction(60)


def _refuse_while_running(settings: Settings, groups: list[str]) -> None:
    admin = clients.admin(settings)
    try:
        described = admin.describe_consumer_groups(groups, request_timeout=15)
        busy = [g for g, future in described.items() if future.result().members]
    except KafkaException as exc:
        raise RekeyRefused(f"cannot tell whether the workers run: {exc}") from exc
    if busy:
        raise RekeyRefused(
            f"stop the workers first: {', '.join(busy)} still ha{'s' if len(busy) == 1 else 've'}"
            " members (re-keying under a running processor would race its writes)"
        )


def targets(settings: Settings, registry: Any) -> list[tuple[str, NewKey]]:
    """Every compacted topic that holds state keyed by account, with its new-key rule."""
    from processors.conversation.shell import MEMORY, ConversationOptions
    from processors.delivery.shell import HEALTH, BounceOptions
    from processors.receipts.shell import TRACKS, ReceiptsOptions
    from schemas.codecs import ModelCodec
    from schemas.serde import AvroSerde

    names = settings.topics
    serde = AvroSerde(registry)

    def decoder(topic: str, model: type) -> Callable[[bytes], Any]:
        return ModelCodec(serde, topic, model).decode

    prefix = names.prefix
    return [
        (f"{prefix}{ConversationOptions().app_id}-{MEMORY}-changelog", memory_key),
        (f"{prefix}{ReceiptsOptions().app_id}-{TRACKS}-changelog", track_key),
        (f"{prefix}{BounceOptions().app_id}-{HEALTH}-changelog", health_key),
        (names.conversation_state,
         output_key(decoder(names.conversation_state, m.ConversationState),
                    lambda s: keys.conversation(s.account_id, s.conversation_id))),
        (names.read_receipts,
         output_key(decoder(names.read_receipts, m.ReadReceipt), keys.read_receipt)),
        (names.delivery_status,
         output_key(decoder(names.delivery_status, m.DeliveryStatus), keys.delivery_status)),
        (names.suppressed_recipients,
         output_key(decoder(names.suppressed_recipients, m.SuppressedRecipient),
                    lambda s: keys.recipient(s.account_id, s.recipient))),
    ]  # fmt: skip


def rekey(settings: Settings, *, dry_run: bool = False) -> list[Plan]:
    from processors.conversation.shell import ConversationOptions
    from processors.delivery.shell import BounceOptions
    from processors.receipts.shell import ReceiptsOptions

    prefix = settings.topics.prefix
    groups = [f"{prefix}{o.app_id}" for o in
              (ConversationOptions(), ReceiptsOptions(), BounceOptions())]  # fmt: skip
    _refuse_while_running(settings, groups)
    plans = []
    for topic, new_key in targets(settings, clients.registry(settings)):
        topic_plan = plan(topic, _read_topic(settings, topic), new_key)
        if topic_plan.moves and not dry_run:
            _write(settings, topic_plan)
        plans.append(topic_plan)
    return plans
