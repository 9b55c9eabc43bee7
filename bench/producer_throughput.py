"""Producer throughput: EventPublisher against a bare confluent-kafka producer, one run.

Scenario: the same realistic events (connectors.traffic, fixed seed) are sent to
a fresh conversation-events topic on the real broker, keyed by conversation:

  (a) baseline: a bare confluent-kafka Producer with the same settings
      (idempotent, acks=all, lz4, linger 5 ms) sending bytes encoded beforehand;
  (b) EventPublisher.publish(event): validation, Avro encoding (fastavro) and
      Confluent framing included, delivery reports resolving futures.

Both include flush (every event acknowledged). Ratio b/a says what our SDK costs.
In-process timings of validation and encoding alone show where the time goes.

    python -m bench.producer_throughput [--conversations 2000] [--runs 3] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
from datetime import UTC, datetime

from confluent_kafka import Producer

from bench.common import bench_settings, fresh_topics, save, timed
from connectors.publisher import GUARANTEES, PRODUCER_DEFAULTS, EventPublisher
from connectors.traffic import generate
from schemas.codecs import ModelCodec
from schemas.model import ConversationEvent
from schemas.registry import Registry
from schemas.serde import AvroSerde
from schemas.validation import check_event

START = datetime(2026, 11, 1, tzinfo=UTC)


def send_bare(producer: Producer, topic: str, encoded: list[tuple[bytes, bytes]]) -> None:
    """The ceiling: produce pre-encoded bytes and wait for every acknowledgement."""
    for key, value in encoded:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(60) == 0


def send_with_publisher(publisher: EventPublisher, events: list[ConversationEvent]) -> None:
    for event in events:
        publisher.publish(event)
    assert publisher.flush(60) == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smoke sizes: 300 conversations")
    args = parser.parse_args()
    if args.quick:
        args.conversations = min(args.conversations, 300)

    settings, local = bench_settings()
    events = generate(seed=7, conversations=args.conversations, start=START)
    now = max(event.occurred_at for event in events)
    count = len(events)
    print(f"{count} events from {args.conversations} conversations, {args.runs} runs each")

    def clock() -> datetime:
        return now

    baseline_rates: list[float] = []
    publisher_rates: list[float] = []
    for _ in range(args.runs):
        topics = fresh_topics(settings, "producer")
        codec = ModelCodec(
            AvroSerde(Registry(topics.registry_url)),
            topics.topics.conversation_events,
            ConversationEvent,
        )
        encoded = [(e.conversation_id.encode(), codec.encode(e)) for e in events]
        producer = Producer(topics.kafka_config({**PRODUCER_DEFAULTS, **GUARANTEES}))
        topic = topics.topics.conversation_events

        baseline_rates.append(count / timed(send_bare, producer, topic, encoded))

        sdk_topics = fresh_topics(settings, "publisher")
        publisher = EventPublisher(sdk_topics, clock=clock)

        publisher_rates.append(count / timed(send_with_publisher, publisher, events))
        publisher.close()

    validate_s = timed(lambda: [check_event(e, now) for e in events])
    encode_s = timed(lambda: [codec.encode(e) for e in events])
    baseline = statistics.median(baseline_rates)
    sdk_rate = statistics.median(publisher_rates)
    result = {
        "quick": args.quick,
        "events": count,
        "runs": args.runs,
        "baseline_events_per_s": baseline,
        "publisher_events_per_s": sdk_rate,
        "ratio_publisher_over_baseline": sdk_rate / baseline,
        "baseline_runs": baseline_rates,
        "publisher_runs": publisher_rates,
        "in_process_validate_events_per_s": count / validate_s,
        "in_process_encode_events_per_s": count / encode_s,
    }
    print(f"(a) bare producer, pre-encoded bytes : {baseline:>10,.0f} events/s")
    print(f"(b) EventPublisher.publish           : {sdk_rate:>10,.0f} events/s")
    print(f"    ratio b/a                         : {sdk_rate / baseline:>10.2f}")
    print(f"    validation alone (in process)     : {count / validate_s:>10,.0f} events/s")
    print(f"    to_avro + fastavro encode alone   : {count / encode_s:>10,.0f} events/s")
    print(f"results: {save('producer', result)}")
    if local is not None:
        print("(the local stack is left running: `convotrail stack stop` stops it)")


if __name__ == "__main__":
    main()
