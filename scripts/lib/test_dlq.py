"""Unit tests of scripts/lib/dlq.py's record decoding (no broker needed):
python3 -m unittest discover -s scripts/lib -p 'test_*.py'

The Knative envelope below has the attributes the KafkaSource gives a record
that is not a Kafka-binding CloudEvent (knative-extensions/
eventing-kafka-broker knative-v1.23.0, InvalidCloudEventInterceptor.java:
id "partition:P/offset:O", the record key as `key` and `partitionkey`,
Kafka headers as `kafkaheader*`), plus the source's `ceOverrides` extension
`pushtoken` and the dispatcher's `knativeerror*` extensions
(RecordDispatcherImpl.java), which is what the scale-to-zero dead-letter
sink writes.
"""
import base64
import json
import unittest

import dlq

ORIGINAL = {
    "specversion": "1.0",
    "id": "4f6c1c1e-0d7b-4a51-9a57-3a1f0e0c9b11",
    "source": "task-api",
    "type": "com.todo.task.created",
    "time": "2026-11-30T08:00:00Z",
    "datacontenttype": "application/json",
    "data": {"user_id": "u-1", "task_id": "7d0d1c7e-7a0e-4f51-8f57-3a1f0e0c9b12", "sequence": 1},
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "pubsubname": "pubsub",
    "topic": "task-events",
}


def envelope(**data):
    event = {
        "specversion": "1.0",
        "id": "partition:3/offset:42",
        "source": "/apis/v1/namespaces/todo-audit/kafkasources/audit-task-events#task-events",
        "type": dlq.KNATIVE_KAFKA_EVENT,
        "subject": "partition:3#42",
        "time": "2026-11-30T08:00:01Z",
        "key": "u-1",
        "partitionkey": "u-1",
        "pushtoken": "the-push-token",
        "knativeerrorcode": "500",
        "knativeerrordest": "http://audit.todo-audit.svc.cluster.local/events/task-events",
    }
    event.update(data)
    return json.dumps(event)


class ParseTest(unittest.TestCase):
    def test_a_dapr_dead_letter_is_the_event_itself(self):
        event, key = dlq.parse(json.dumps(ORIGINAL), "u-1")
        self.assertEqual(event["id"], ORIGINAL["id"])
        self.assertEqual(key, "u-1")

    def test_a_knative_envelope_with_json_data_yields_the_original_event(self):
        event, key = dlq.parse(envelope(data=ORIGINAL, datacontenttype="application/json"), "u-1")
        self.assertEqual(event, ORIGINAL)
        self.assertEqual(key, "u-1")

    def test_a_knative_envelope_with_base64_data_yields_the_original_event(self):
        raw = base64.b64encode(json.dumps(ORIGINAL).encode()).decode()
        event, _ = dlq.parse(envelope(data_base64=raw), "u-1")
        self.assertEqual(event, ORIGINAL)

    def test_a_knative_envelope_with_string_data_yields_the_original_event(self):
        event, _ = dlq.parse(envelope(data=json.dumps(ORIGINAL)), "u-1")
        self.assertEqual(event, ORIGINAL)

    def test_the_push_token_never_survives(self):
        inner = dict(ORIGINAL, pushtoken="leaked-into-the-event")
        event, _ = dlq.parse(envelope(data=inner), "u-1")
        self.assertNotIn("pushtoken", event)
        self.assertNotIn("knativeerrorcode", event)
        self.assertNotIn("the-push-token", json.dumps(event))

    def test_without_a_record_key_the_envelope_names_the_partition_key(self):
        _, key = dlq.parse(envelope(data=ORIGINAL), "null")
        self.assertEqual(key, "u-1")
        _, key = dlq.parse(envelope(data=ORIGINAL, partitionkey=None, key="u-2"), None)
        self.assertEqual(key, "u-2")

    def test_an_envelope_without_an_event_inside_is_not_replayable(self):
        for broken in [envelope(data="not json"), envelope(data_base64="!!"), envelope(),
                       envelope(data={"no": "id"})]:
            event, _ = dlq.parse(broken, "u-1")
            self.assertIsNone(event, broken)

    def test_what_is_not_a_cloud_event_is_not_replayable(self):
        for value in ["", "plain text", "[1, 2]", json.dumps({"type": "x"})]:
            self.assertIsNone(dlq.parse(value, None)[0], value)


class PublishBodyTest(unittest.TestCase):
    def test_the_replayed_body_drops_what_dapr_adds_and_the_push_token(self):
        sent = {}

        class Response:
            status = 204

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

        def urlopen(request, timeout):
            sent["body"] = json.loads(request.data)
            sent["url"] = request.full_url
            sent["traceparent"] = request.get_header("Traceparent")
            return Response()

        original, dlq.urllib.request.urlopen = dlq.urllib.request.urlopen, urlopen
        dlq.os.environ.setdefault("DAPR_HTTP_ENDPOINT", "http://127.0.0.1:3500")
        try:
            event, key = dlq.parse(envelope(data=dict(ORIGINAL, pushtoken="t")), "u-1")
            self.assertEqual(dlq.publish("task-events", key, event), 204)
        finally:
            dlq.urllib.request.urlopen = original
        for dropped in ("pushtoken", "pubsubname", "topic", "traceparent"):
            self.assertNotIn(dropped, sent["body"])
        self.assertEqual(sent["body"]["id"], ORIGINAL["id"])
        self.assertIn("metadata.partitionKey=u-1", sent["url"])
        self.assertEqual(sent["traceparent"], ORIGINAL["traceparent"])


class ReplayTest(unittest.TestCase):
    def replay(self, records, topic):
        """(published ids, positions recorded) of a replay over `records`
        on partition 0."""
        published, moved = [], []
        patched = {
            "offsets": lambda topic, time: {0: 0 if time == -2 else len(records)},
            "committed": lambda group, topic: {},
            "read": lambda topic, partition, start, count: records[start:start + count],
            "publish": lambda topic, key, event: published.append(event["id"]) or 204,
            "kafka": lambda *args: moved.append(args[args.index("--to-offset") + 1]) or (0, ""),
        }
        originals = {name: getattr(dlq, name) for name in patched}
        for name, function in patched.items():
            setattr(dlq, name, function)
        try:
            with self.assertRaises(SystemExit) as exit:
                dlq.replay(topic)
        finally:
            for name, function in originals.items():
                setattr(dlq, name, function)
        self.assertEqual(exit.exception.code, 0)
        return published, moved

    def test_a_failed_delivery_report_is_skipped_and_passed_over(self):
        report = dict(ORIGINAL, id="r-1", type="com.todo.notification.failed", source="notification")
        reminder = dict(ORIGINAL, id="e-1", type="com.todo.reminder.scheduled")
        records = [("u-1", json.dumps(report)), ("u-1", json.dumps(reminder))]
        published, moved = self.replay(records, "reminders")
        self.assertEqual(published, ["e-1"])
        self.assertEqual(moved, ["2"], "the position moves past the report too")
        self.assertFalse(dlq.replayable(report))
        self.assertTrue(dlq.replayable(reminder))

    def test_each_subscribers_copy_of_one_event_is_sent_once(self):
        # audit and recurring each dead-letter their own copy.
        poison = dict(ORIGINAL, id="p-1")
        other = dict(ORIGINAL, id="p-2")
        records = [("u-1", json.dumps(poison)), ("u-1", json.dumps(poison)), ("u-1", json.dumps(other))]
        published, moved = self.replay(records, "task-events")
        self.assertEqual(published, ["p-1", "p-2"])
        self.assertEqual(moved, ["3"], "the position moves past every copy")


if __name__ == "__main__":
    unittest.main()
