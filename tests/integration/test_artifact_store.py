"""The artifact store on both backends (a folder; S3 on a moto server): atomic, content-addressed,
never silently replaced; a process killed mid-write leaves nothing visible; and the residency
guard refuses, audits and writes nothing to a bucket outside the allowed regions."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time

import boto3
import pytest

from pipelines.alerting.incidents import Incidents
from pipelines.errors import ArtifactExists, ArtifactMissing, ResidencyViolation
from pipelines.security.audit import audit_ledger
from pipelines.security.store import S3Store, artifact_store, bucket_region, check_residency_at_startup, content_key
from pipelines.settings import load_settings
from tests.integration.conftest import s3_connection

UAE, VIRGINIA, IRELAND = "me-central-1", "us-east-1", "eu-west-1"
BIG = 12 * 1024 * 1024  # over the 8 MiB multipart chunk


@pytest.fixture(scope="module")
def buckets(moto_endpoint):
    """One bucket per region, created through the S3 API as a cloud account would."""
    names = {}
    for region in (UAE, VIRGINIA, IRELAND):
        client = boto3.client("s3", region_name=region, endpoint_url=moto_endpoint,
                              aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
        name = f"models-{region}"
        if region == VIRGINIA:
            client.create_bucket(Bucket=name)
        else:
            client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
        names[region] = name
    return names


@pytest.fixture(params=["local", "s3"])
def settings(request, tmp_path, openbao):
    if request.param == "local":
        return load_settings(data_root=tmp_path / "var")
    endpoint, names = request.getfixturevalue("moto_endpoint"), request.getfixturevalue("buckets")
    s3_connection(openbao, "artifacts_uae", endpoint, UAE)
    prefix = f"run-{tmp_path.name}"
    return load_settings(data_root=tmp_path / "var", artifact_store_uri=f"s3://{names[UAE]}/{prefix}",
                         artifact_conn_id="artifacts_uae")  # fmt: skip


def test_put_get_and_content_addressing(settings):
    store = artifact_store(settings)
    digest = store.put_content(b"model bytes")
    assert digest == hashlib.sha256(b"model bytes").hexdigest()
    assert store.get(content_key(digest)) == b"model bytes"
    store.put("registry/flight_delay/1/manifest.json", b"{}")
    store.put("registry/flight_delay/1/manifest.json", b"{}")  # the same bytes again: a no-op
    with pytest.raises(ArtifactExists, match="already holds different bytes"):
        store.put("registry/flight_delay/1/manifest.json", b'{"changed": true}')
    assert store.get("registry/flight_delay/1/manifest.json") == b"{}"
    assert store.keys("registry") == ["registry/flight_delay/1/manifest.json"]
    assert store.keys() == sorted([content_key(digest), "registry/flight_delay/1/manifest.json"])
    with pytest.raises(ArtifactMissing):
        store.get("registry/flight_delay/2/manifest.json")
    for bad in ("../escape", "/abs", "a//b", ""):
        with pytest.raises(ValueError):
            store.put(bad, b"x")


def test_a_writer_killed_mid_write_leaves_no_visible_object(settings):
    """A process streaming a large artifact is SIGKILLed half way: readers see no object, then a retry works."""
    script = textwrap.dedent("""
        import sys
        from pipelines.security.store import artifact_store
        from pipelines.settings import load_settings
        artifact_store(load_settings()).put("models/big.bin", sys.stdin.buffer)
    """)
    env = {**os.environ, "PLATFORM_DATA_ROOT": str(settings.data_root), "PLATFORM_ARTIFACT_STORE_URI":
           settings.artifact_uri, "PLATFORM_ARTIFACT_CONN_ID": settings.artifact_conn_id}  # fmt: skip
    writer = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, env=env)
    store = artifact_store(settings)
    try:
        writer.stdin.write(os.urandom(BIG))  # more than one part, never the end of the stream
        writer.stdin.flush()
        deadline = time.monotonic() + 60
        while not _write_in_progress(store):
            assert writer.poll() is None, "the writer exited before it was killed"
            assert time.monotonic() < deadline, "the write never started"
            time.sleep(0.1)
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    finally:
        if writer.poll() is None:
            writer.kill()
    assert not store.exists("models/big.bin")
    assert store.keys() == []
    data = os.urandom(BIG)
    store.put("models/big.bin", data)
    assert store.get("models/big.bin") == data


def _write_in_progress(store) -> bool:
    if isinstance(store, S3Store):  # a multipart upload has begun and taken a part
        uploads = store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])
        return any(
            store.client.list_parts(Bucket=store.bucket, Key=u["Key"], UploadId=u["UploadId"]).get("Parts")
            for u in uploads
        )
    partial = store.root / ".partial"
    return partial.exists() and any(p.stat().st_size >= 8 * 1024 * 1024 for p in partial.iterdir())


def test_bucket_region_reads_get_bucket_location_including_us_east_1(moto_endpoint, buckets):
    client = boto3.client("s3", region_name=UAE, endpoint_url=moto_endpoint,
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    assert client.get_bucket_location(Bucket=buckets[VIRGINIA]).get("LocationConstraint") is None
    assert {region: bucket_region(client, name) for region, name in buckets.items()} == {
        UAE: UAE, VIRGINIA: VIRGINIA, IRELAND: IRELAND}  # fmt: skip


@pytest.mark.parametrize("region", [VIRGINIA, IRELAND])
def test_a_bucket_outside_the_allowed_regions_is_refused_audited_and_untouched(
    tmp_path, openbao, moto_endpoint, buckets, region
):
    # The connection claims the UAE; the bucket itself is elsewhere. The bucket's own answer decides.
    s3_connection(openbao, "artifacts_mislabelled", moto_endpoint, UAE)
    settings = load_settings(data_root=tmp_path / "var", artifact_store_uri=f"s3://{buckets[region]}/models",
                             artifact_conn_id="artifacts_mislabelled")  # fmt: skip
    store = artifact_store(settings)
    with pytest.raises(ResidencyViolation) as raised:
        store.put("sealed/ab/model", b"model bytes")
    message = str(raised.value)
    assert buckets[region] in message and region in message and UAE in message
    assert "nothing was written" in message
    listing = store.client.list_objects_v2(Bucket=buckets[region])
    assert listing.get("KeyCount", 0) == 0
    assert not store.client.list_multipart_uploads(Bucket=buckets[region]).get("Uploads")
    record, opened = list(audit_ledger(settings).records())
    assert (record.action, record.subject) == ("residency.violation", f"s3://{buckets[region]}")
    assert record.details == {"bucket": buckets[region], "region": region, "allowed_regions": [UAE]}
    with pytest.raises(ResidencyViolation):  # and it is caught at start-up too
        check_residency_at_startup(settings)
    [incident] = Incidents(settings).list()  # one place, one incident: the second refusal repeats it
    assert opened.action == "incident.opened" and opened.subject == f"incident/{incident.id}"
    assert (incident.kind, incident.severity, incident.occurrences, incident.cause) == (
        "ResidencyViolation", "page", 2, f"residency:s3://{buckets[region]}")  # fmt: skip
    assert incident.summary == message and incident.runbook_url == "docs/runbooks/residency_violation.md"


def test_a_store_declared_in_another_region_is_refused_at_startup(tmp_path, openbao, moto_endpoint, buckets):
    s3_connection(openbao, "artifacts_ireland", moto_endpoint, IRELAND)
    settings = load_settings(data_root=tmp_path / "var", artifact_store_uri=f"s3://{buckets[IRELAND]}/models",
                             artifact_conn_id="artifacts_ireland")  # fmt: skip
    with pytest.raises(ResidencyViolation, match=f"declares region {IRELAND}.*{UAE}"):
        check_residency_at_startup(settings)
    assert [r.action for r in audit_ledger(settings).records()] == ["residency.violation", "incident.opened"]
    [incident] = Incidents(settings).list()
    assert incident.kind == "ResidencyViolation" and f"declares region {IRELAND}" in incident.summary


def test_an_allowed_region_can_be_added_by_settings(tmp_path, openbao, moto_endpoint, buckets):
    s3_connection(openbao, "artifacts_ireland_ok", moto_endpoint, IRELAND)
    settings = load_settings(data_root=tmp_path / "var", artifact_store_uri=f"s3://{buckets[IRELAND]}/ok",
                             artifact_conn_id="artifacts_ireland_ok", allowed_regions=[UAE, IRELAND])  # fmt: skip
    check_residency_at_startup(settings)
    artifact_store(settings).put("x", b"y")
    assert artifact_store(settings).get("x") == b"y"
