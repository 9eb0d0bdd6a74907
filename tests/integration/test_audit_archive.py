"""The audit archive's data path on moto: what the real handler publishes, through Firehose, lands in S3 as JSON
lines that the template's Athena table reads.

What moto can and cannot show (moto 5.2):
* moto's SNS does not deliver to ``firehose`` subscriptions (it delivers to sqs, http(s), lambda, sms and
  application endpoints only). The test therefore reads what SNS delivered to a raw SQS subscription of the
  results topic (the local stack's own; raw delivery hands every endpoint the published message as is, which
  is what the template's raw Firehose subscription receives) and puts those bytes into the delivery stream
  itself, as SNS would.
* moto's Firehose writes every PutRecordBatch straight to S3: no buffering, no GZIP, no processors, and it does
  not expand ``!{timestamp:...}`` in the prefix. The template's ``AppendDelimiterToRecord`` processor is
  applied here by hand (a newline after each record); the second test shows what the archive would hold
  without it. Partitions, compression and the Glue table are checked offline in tests/template.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import STREAM_ID

from devtools.template_loader import load_template

FIREHOSE_SUPPORTS_PROCESSORS = False  # moto 5.2: records are concatenated as sent


@pytest.fixture
def archive(stack) -> dict[str, Any]:
    """The template's bucket and delivery stream, created on moto with the template's S3 destination settings."""
    template = load_template()
    destination = dict(
        template["Resources"]["AuditArchiveStream"]["Properties"]["ExtendedS3DestinationConfiguration"]
    )
    s3, firehose = stack.client("s3"), stack.client("firehose")
    bucket = "campaign-stop-audit-archive"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    stream = "campaign-stop-AuditArchiveStream"
    firehose.create_delivery_stream(
        DeliveryStreamName=stream,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration={
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "RoleARN": "arn:aws:iam::123456789012:role/campaign-stop-AuditArchiveDeliveryRole",
            "Prefix": destination["Prefix"],
            "ErrorOutputPrefix": destination["ErrorOutputPrefix"],
            "BufferingHints": destination["BufferingHints"],
            "CompressionFormat": destination["CompressionFormat"],
            "ProcessingConfiguration": destination["ProcessingConfiguration"],
        },
    )
    return {"bucket": bucket, "stream": stream, "destination": destination, "template": template}


def _raw_deliveries(stack) -> list[bytes]:
    """What SNS delivered, raw, to the results subscriber queue: the bytes a raw Firehose subscription gets."""
    sqs = stack.client("sqs")
    bodies: list[bytes] = []
    while True:
        messages = sqs.receive_message(QueueUrl=stack.results_queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return bodies
        bodies += [message["Body"].encode("utf-8") for message in messages]
        for message in messages:
            sqs.delete_message(QueueUrl=stack.results_queue_url, ReceiptHandle=message["ReceiptHandle"])


def _deliver(stack, archive: dict[str, Any], records: list[bytes]) -> bytes:
    """SNS -> Firehose (PutRecordBatch, one record per message) -> the one S3 object moto writes for it."""
    stack.client("firehose").put_record_batch(
        DeliveryStreamName=archive["stream"], Records=[{"Data": record} for record in records]
    )
    s3 = stack.client("s3")
    (obj,) = s3.list_objects_v2(Bucket=archive["bucket"])["Contents"]
    assert obj["Key"].startswith(archive["destination"]["Prefix"])  # moto keeps the expressions unexpanded
    return s3.get_object(Bucket=archive["bucket"], Key=obj["Key"])["Body"].read()


def _with_delimiter(records: list[bytes], destination: dict[str, Any]) -> list[bytes]:
    """What the template's processors do to each record before Firehose writes it (moto does not run them)."""
    processors = [p["Type"] for p in destination["ProcessingConfiguration"]["Processors"]]
    if destination["ProcessingConfiguration"]["Enabled"] and "AppendDelimiterToRecord" in processors:
        return [record + b"\n" for record in records]
    return records


def _table_columns(template: dict[str, Any]) -> dict[str, str]:
    table = template["Resources"]["AuditArchiveResultsTable"]["Properties"]["TableInput"]
    return {column["Name"]: column["Type"] for column in table["StorageDescriptor"]["Columns"]}


def _struct_fields(hive_type: str) -> set[str]:
    inner = hive_type.removeprefix("struct<").removesuffix(">")
    return {field.split(":", 1)[0] for field in inner.split(",")}


def test_published_results_and_summary_reach_the_archive_as_json_lines_the_table_reads(
    invoke, stack, kore, sqs, archive
):
    # two campaigns (a stop and an already-stopped one: two results and a summary), and a rejected request
    invoke(sqs(
        {"streamId": STREAM_ID, "campaignIds": ["cd-1", "cd-done"], "campaignType": "sms",
         "requestId": "audit-archive-1", "reason": "audit archive test", "requestedBy": "tests"},
        {"streamId": STREAM_ID, "campaignId": "cd-2", "accountId": "acc-somebody-else", "requestId": "audit-archive-2"},
    ))
    published = _raw_deliveries(stack)
    assert len(published) == 4
    assert all(not body.endswith(b"\n") for body in published)  # hence the template's delimiter processor

    archived = _deliver(stack, archive, _with_delimiter(published, archive["destination"]))

    lines = archived.decode("utf-8").splitlines()
    assert [line.encode("utf-8") for line in lines] == published  # every event, byte for byte, one a line
    events = [json.loads(line) for line in lines]
    summaries = [e for e in events if e.get("eventType") == "summary"]
    results = [e for e in events if "eventType" not in e]
    assert len(summaries) == 1 and len(results) == 3
    assert sorted(r["outcome"] for r in results) == ["already_stopped", "rejected", "stopped"]
    assert summaries[0]["outcomes"] == {"stopped": 1, "already_stopped": 1}

    # Every field the archive holds has a column of the template's Athena table (JSON SerDe, case-insensitive).
    columns = _table_columns(archive["template"])
    for event in events:
        for key, value in event.items():
            assert key.lower() in columns, key
            if isinstance(value, dict) and columns[key.lower()].startswith("struct<"):
                assert {k.lower() for k in value} <= _struct_fields(columns[key.lower()]), key
    rejected = next(r for r in results if r["outcome"] == "rejected")
    assert rejected["error"]["code"] == "account_mismatch"
    assert {k.lower() for k in rejected["error"]} <= _struct_fields(columns["error"])


def test_without_the_delimiter_processor_the_archive_would_not_be_json_lines(invoke, stack, kore, sqs, archive):
    """Firehose concatenates records as they come; the function publishes no trailing newline. Without
    AppendDelimiterToRecord, an object would be one line of glued JSON objects that Athena cannot split."""
    assert not FIREHOSE_SUPPORTS_PROCESSORS
    invoke(sqs({"streamId": STREAM_ID, "campaignIds": ["cd-1", "cd-2"], "campaignType": "sms"}))
    published = _raw_deliveries(stack)
    assert len(published) == 3

    archived = _deliver(stack, archive, published)  # no processor applied

    (line,) = archived.decode("utf-8").splitlines()
    with pytest.raises(json.JSONDecodeError, match="Extra data"):
        json.loads(line)
