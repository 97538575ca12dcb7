"""End to end: Microsoft's IoTHubJobManager (azure-iot-hub 2.7.0) runs export and import jobs
against `registryd serve` with `file://` containers under a configured job root; an exported
file imported into an empty registry reproduces every identity, keys included."""

import json
import os
import subprocess
import tempfile
import time

import pytest
from azure.iot.hub import IoTHubJobManager, IoTHubRegistryManager
from azure.iot.hub.models import JobProperties
from msrest.exceptions import HttpOperationError
from registryd_helpers import BINARY, free_port, wait_until_serving


def start(data, root):
    config = os.path.join(data + "-config.json")
    with open(config, "w") as f:
        json.dump({"jobs": {"roots": [root]}}, f)
    port = free_port()
    log = open(data + "-serve.log", "w")
    os.makedirs(data, exist_ok=True)
    proc = subprocess.Popen([BINARY, "serve", "--data-dir", data, "--listen", f"127.0.0.1:{port}", "--config", config], stdout=log, stderr=subprocess.STDOUT)
    try:
        ca = wait_until_serving(proc, data, port)
    except RuntimeError:
        proc.kill()
        raise RuntimeError(open(data + "-serve.log").read())
    os.environ["REQUESTS_CA_BUNDLE"] = ca
    cs = subprocess.check_output([BINARY, "connection-string", "--data-dir", data]).decode().strip()
    return proc, cs


def wait_for(jobs, job_id):
    for _ in range(600):
        job = jobs.get_import_export_job(job_id)
        if job.status in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def test_export_and_import_jobs_round_trip_through_the_sdk():
    base = tempfile.mkdtemp(prefix="registryd-jobs-")
    root = os.path.join(base, "containers")
    os.makedirs(os.path.join(root, "exports"))
    source, cs = start(os.path.join(base, "source"), root)
    try:
        registry = IoTHubRegistryManager.from_connection_string(cs)
        jobs = IoTHubJobManager.from_connection_string(cs)
        for i in range(20):
            registry.create_device_with_sas(f"job-{i:02d}", None, None, "disabled" if i % 4 == 0 else "enabled")
        registry.create_module_with_sas("job-03", "edge", None, None, None)
        originals = {d.device_id: d for d in registry.get_devices()}
        keys = {i: registry.get_device(i).authentication.symmetric_key.primary_key for i in originals}

        created = jobs.create_import_export_job(JobProperties(type="export", output_blob_container_uri=f"file://{root}/exports", exclude_keys_in_export=False))
        assert created.status in ("enqueued", "running") and created.job_id
        # A second job while one is active is refused (403 JobQuotaExceeded), unless the first already ended.
        try:
            jobs.create_import_export_job(JobProperties(type="export", output_blob_container_uri=f"file://{root}/exports"))
            assert jobs.get_import_export_job(created.job_id).status == "completed"
        except HttpOperationError as error:
            assert error.response.status_code == 403
            assert error.response.headers["iothub-errorcode"] == "JobQuotaExceeded"
        done = wait_for(jobs, created.job_id)
        assert done.status == "completed" and done.progress == 100
        assert created.job_id in [j.job_id for j in jobs.get_import_export_jobs()]
        lines = open(os.path.join(root, "exports", "devices.txt")).read().splitlines()
        assert len(lines) == 21

        # A container outside the root is refused before anything runs.
        with pytest.raises(HttpOperationError) as info:
            jobs.create_import_export_job(JobProperties(type="export", output_blob_container_uri=f"file://{base}"))
        assert info.value.response.status_code == 400
    finally:
        source.terminate()
        assert source.wait(timeout=30) == 0

    target, cs2 = start(os.path.join(base, "target"), root)
    try:
        jobs2 = IoTHubJobManager.from_connection_string(cs2)
        job = jobs2.create_import_export_job(JobProperties(type="import", input_blob_container_uri=f"file://{root}/exports", output_blob_container_uri=f"file://{root}/exports"))
        assert wait_for(jobs2, job.job_id).status == "completed"
        assert os.path.getsize(os.path.join(root, "exports", "importErrors.log")) == 0
        registry2 = IoTHubRegistryManager.from_connection_string(cs2)
        copies = {d.device_id: d for d in registry2.get_devices()}
        assert copies.keys() == originals.keys()
        for device_id, original in originals.items():
            copy = registry2.get_device(device_id)
            assert copy.status == original.status
            assert copy.authentication.symmetric_key.primary_key == keys[device_id]
        assert [m.module_id for m in registry2.get_modules("job-03")] == ["edge"]
    finally:
        target.terminate()
        assert target.wait(timeout=30) == 0
