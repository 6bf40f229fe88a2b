"""Records on an object store in batches, against moto's S3 server (`moto.server`'s WSGI app served in
a thread, the stand-in for S3 the other S3 tests use; pyarrow's real S3 filesystem talks HTTP to it),
with every HTTP request counted: several records per part object, parts merged as they pile up, a
resume in a bounded number of requests, and no finished trial lost when the driver dies between flushes."""

from __future__ import annotations

import json
import threading

import pytest
from helpers import require

from mleray.storage.backends import MERGE_FAN_IN, PARTS, open_sweep_storage
from mleray.storage.store import SweepStore

AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class Counted:
    """moto's S3 app behind a WSGI wrapper that counts requests."""

    def __init__(self):
        import logging

        try:
            from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
            from werkzeug.serving import make_server
        except ImportError:
            require(False, "moto[server] is not installed (pip install -e .[test])")
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        app = DomainDispatcherApplication(create_backend_app)
        self.requests = 0
        self._lock = threading.Lock()

        def counted(environ, start_response):
            with self._lock:
                self.requests += 1
            return app(environ, start_response)

        self.server = make_server("127.0.0.1", 0, counted, threaded=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        host, port = self.server.server_address[:2]
        self.root = f"s3://mleray-test/runs?endpoint_override={host}:{port}&scheme=http&allow_bucket_creation=true"

    def since(self, mark: int) -> int:
        return self.requests - mark


@pytest.fixture
def s3(monkeypatch):
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    server = Counted()
    yield server
    server.server.shutdown()


def _rec(i: int, attempt: int = 0) -> dict:
    return {"trial_id": f"t{i:05d}", "attempt": attempt, "status": "graded", "score": i / 1000, "pad": "x" * 500}


def test_batches_merge_and_a_resume_costs_a_bounded_number_of_requests(s3):
    storage = open_sweep_storage(s3.root, "batched")
    store = SweepStore(storage)
    n, per_flush = 600, 3
    mark = s3.requests
    for i in range(n):
        store.append(_rec(i), flush=False)
        if (i + 1) % per_flush == 0:
            store.flush()
    flushes = n // per_flush
    assert s3.since(mark) < flushes * 10  # a part object per flush (3 requests: a multipart upload), merges included
    parts = storage.list_dir(PARTS)
    assert 0 < len(parts) < 2 * MERGE_FAN_IN  # 200 parts written, merged 16 into one as they piled up
    mark = s3.requests
    resumed = SweepStore(open_sweep_storage(s3.root, "batched"))  # the driver died before compacting
    crash_resume = s3.since(mark)
    assert len(resumed.done) == n and crash_resume < 100
    assert storage.list_dir(PARTS) == []  # folded into trials.jsonl
    assert [r["trial_id"] for r in resumed.records] == [f"t{i:05d}" for i in range(n)]  # in order, once each
    mark = s3.requests
    again = SweepStore(open_sweep_storage(s3.root, "batched"))
    assert len(again.done) == n and s3.since(mark) < 20


def test_a_record_not_yet_flushed_when_the_driver_dies_is_recorded_from_result_json(s3):
    storage = open_sweep_storage(s3.root, "crash")
    store = SweepStore(storage)
    store.append(_rec(1))  # flushed
    for i in (2, 3):  # finished trials: their actors left result.json in the trial folder, then the
        storage.write_file(f"trials/t{i:05d}/result.json", json.dumps(_rec(i)))  # driver buffered their records
        store.append(_rec(i), flush=False)
    del store  # the driver dies before its next flush
    assert [json.loads(line)["trial_id"] for line in storage.read_lines()] == ["t00001"]
    resumed = SweepStore(open_sweep_storage(s3.root, "crash"))
    assert resumed.done == {"t00001", "t00002", "t00003"}  # recorded, not run again
    assert {r["trial_id"]: r["score"] for r in resumed.records} == {"t00001": 0.001, "t00002": 0.002, "t00003": 0.003}
