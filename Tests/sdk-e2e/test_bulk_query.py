"""End to end: bulk-by-query jobs (issue 22, item 1) through Microsoft's IoTHubJobManager against
`registryd serve` on LMDB and on PostgreSQL. The SDK's JobProperties model carries only Azure's
fields, so the request goes through a subclass that adds ours (`query`, `change`, `dryRun`) to
its attribute map: the SDK's own serializer and HTTP pipeline send it. What the SDK's model drops
on the way back (the counts) is read over HTTPS, as curl would."""

import subprocess
import time

import requests
from azure.iot.hub import IoTHubJobManager, IoTHubRegistryManager
from azure.iot.hub.models import JobProperties, Twin
from msrest.exceptions import HttpOperationError
from registryd_helpers import BINARY
from test_sdk_registry import BACKENDS, daemon, storage_args  # noqa: F401 (fixtures)


class BulkByQueryJob(JobProperties):
    _attribute_map = dict(
        JobProperties._attribute_map,
        query={"key": "query", "type": "str"},
        change={"key": "change", "type": "object"},
        dry_run={"key": "dryRun", "type": "bool"},
    )

    def __init__(self, query=None, change=None, dry_run=None, **kwargs):
        super().__init__(type="bulkByQuery", **kwargs)
        self.query = query
        self.change = change
        self.dry_run = dry_run


def wait_for(jobs, job_id):
    for _ in range(1200):
        job = jobs.get_import_export_job(job_id)
        if job.status in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def http(daemon):
    session = requests.Session()
    token = subprocess.check_output([BINARY, "sas-token", "--data-dir", daemon["data"]] + daemon["storage"]).decode().strip()
    session.headers["Authorization"] = token
    session.verify = daemon["ca"]
    return session, f"https://localhost:{daemon['port']}"


def test_disable_by_query_through_the_job_manager(daemon):
    registry = IoTHubRegistryManager.from_connection_string(daemon["cs"])
    jobs = IoTHubJobManager.from_connection_string(daemon["cs"])
    session, base = http(daemon)
    for i in range(30):
        device_id = f"fleet-{i:02d}"
        registry.create_device_with_sas(device_id, None, None, "enabled")
        twin = registry.get_twin(device_id)
        registry.update_twin(device_id, Twin(tags={"fleet": "north" if i % 3 == 0 else "south"}), twin.etag)
    north = [f"fleet-{i:02d}" for i in range(30) if i % 3 == 0]
    query = "SELECT * FROM devices WHERE tags.fleet = 'north'"
    change = {"action": "disable", "statusReason": "recall 2026-12"}

    # A dry run counts what would change and changes nothing.
    dry = jobs.create_import_export_job(BulkByQueryJob(query=query, change=change, dry_run=True))
    assert dry.type == "bulkByQuery" and dry.status == "enqueued"
    assert wait_for(jobs, dry.job_id).status == "completed"
    record = session.get(f"{base}/jobs/{dry.job_id}?api-version=2021-04-12").json()
    assert record["matched"] == len(north) and record["changed"] == 0 and record["dryRun"] is True
    assert all(registry.get_device(d).status == "enabled" for d in north)

    created = jobs.create_import_export_job(BulkByQueryJob(query=query, change=change))
    done = wait_for(jobs, created.job_id)
    assert done.status == "completed" and done.progress == 100
    record = session.get(f"{base}/jobs/{created.job_id}?api-version=2021-04-12").json()
    assert (record["matched"], record["changed"], record["skipped"], record["failed"]) == (len(north), len(north), 0, 0)
    for i in range(30):
        device = registry.get_device(f"fleet-{i:02d}")
        if i % 3 == 0:
            assert device.status == "disabled" and device.status_reason == "recall 2026-12"
        else:
            assert device.status == "enabled"
    # One actor in the log for every change the job made.
    history = session.get(f"{base}/registry/devices/{north[0]}/history?api-version=2021-04-12").json()
    assert history[-1]["actor"] == f"job:{created.job_id}"

    # Regenerate the secondary key of the south fleet: the SDK reads the new keys.
    south = [f"fleet-{i:02d}" for i in range(30) if i % 3 != 0]
    before = {d: registry.get_device(d).authentication.symmetric_key for d in south}
    regenerated = jobs.create_import_export_job(
        BulkByQueryJob(query="SELECT deviceId FROM devices WHERE tags.fleet = 'south'", change={"action": "regenerateKeys", "keys": "secondary"})
    )
    assert wait_for(jobs, regenerated.job_id).status == "completed"
    for d in south:
        keys = registry.get_device(d).authentication.symmetric_key
        assert keys.primary_key == before[d].primary_key and keys.secondary_key != before[d].secondary_key


def test_bulk_requests_the_registry_cannot_run_are_refused_in_azure_error_shape(daemon):
    jobs = IoTHubJobManager.from_connection_string(daemon["cs"])
    session, base = http(daemon)
    before = len(jobs.get_import_export_jobs())
    # Through the SDK: an aggregate selects groups, not identities.
    try:
        jobs.create_import_export_job(BulkByQueryJob(query="SELECT COUNT() AS n FROM devices", change={"action": "delete"}))
        raise AssertionError("an aggregate query must be refused")
    except HttpOperationError as error:
        assert error.response.status_code == 400
        assert error.response.headers["iothub-errorcode"] == "ArgumentInvalid"
    # Over HTTPS: modules have no status.
    reply = session.post(
        f"{base}/jobs/create?api-version=2021-04-12",
        json={"type": "bulkByQuery", "query": "SELECT * FROM devices.modules", "change": {"action": "disable"}},
    )
    assert reply.status_code == 400
    assert reply.headers["iothub-errorcode"] == "ArgumentInvalid"
    assert reply.json()["Message"].startswith("ErrorCode:ArgumentInvalid;") and "Modules" in reply.json()["Message"]
    # Neither created a job.
    assert len(jobs.get_import_export_jobs()) == before
