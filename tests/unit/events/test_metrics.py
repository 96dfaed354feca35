"""The daemon's metrics file, served by a real prometheus-node-exporter (its textfile
collector) on 127.0.0.1 and scraped over HTTP, as a fleet's Prometheus would."""
from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lsmguard import abi
from lsmguard.daemon import Daemon
from lsmguard.events import metrics
from lsmguard.state.paths import Paths
from lsmguard.state.policy_set import prepare
from tests.journald import Journald
from tests.unit.events.test_journal import path_event

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
POLICY = """\
apiVersion: lsmguard.example.org/v1
kind: Policy
metadata: {name: metrics}
spec:
  mode: enforce
  rules: [{id: no-tmp-exec, action: deny, exec: {paths: ["/tmp/**"]}}]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A node exporter serving only its textfile collector, from a directory of the test's."""
    assert Path(NODE_EXPORTER).exists(), "prometheus-node-exporter is missing: make deps installs it"
    directory, port = tmp_path / "textfile", free_port()
    directory.mkdir()
    proc = subprocess.Popen([NODE_EXPORTER, "--collector.disable-defaults", "--collector.textfile",
                             f"--collector.textfile.directory={directory}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/metrics"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"node exporter did not serve: {proc.communicate()[1].decode()[-500:]}") from None
            time.sleep(0.1)
    try:
        yield directory, url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_the_daemons_counters_are_served_by_the_node_exporter(exporter: tuple[Path, str], journald: Journald,
                                                               tmp_path: Path) -> None:
    directory, url = exporter
    paths = Paths(tmp_path / "policies.d", tmp_path / "run", tmp_path / "pins", directory)
    paths.run_dir.mkdir()
    daemon = Daemon(paths)
    daemon.book.record(0, prepare([("metrics.yaml", POLICY)]))
    for i in range(3):
        daemon.on_event(path_event(f"/tmp/x{i}".encode()))                    # distinct: journaled
    for _ in range(5):
        daemon.on_event(path_event(b"/tmp/same", decision=abi.Decision.WOULD_DENY))   # 1 journaled, 4 repeats
    daemon.pump.tick(kernel_lost=0)
    daemon.pump.tick(kernel_lost=2)                                             # the ring was full twice
    daemon.pump.drain()
    old_umask = os.umask(0o077)                                                 # the unit's UMask=
    try:
        daemon.write_status()
    finally:
        os.umask(old_umask)
    assert daemon.status.metrics_error == ""
    assert (directory / "lsmguard.prom").stat().st_mode & 0o777 == 0o644     # the exporter's user reads it

    got = scrape(url)
    assert got[("lsmguard_events_total", (("decision", "deny"), ("operation", "exec")))] == 3
    assert got[("lsmguard_events_total", (("decision", "would-deny"), ("operation", "exec")))] == 5
    assert got[("lsmguard_events_generated_total", ())] == 10
    assert got[("lsmguard_events_journaled_total", ())] == 4
    assert got[("lsmguard_events_coalesced_total", ())] == 4
    assert got[("lsmguard_events_lost_total", (("cause", "ring_full"),))] == 2
    assert got[("lsmguard_events_lost_total", (("cause", "journald_rate_limit"),))] == 0
    assert got[("lsmguard_events_pending", ())] == 0
    assert ("lsmguard_ring_fill_ratio", ()) in got and ("lsmguard_policy_generation", ()) in got
    assert got[("lsmguard_policy_apply_errors_total", ())] == 0
    # the collector read the file without complaint
    assert got[("node_textfile_scrape_error", ())] == 0

    # and the same books are in daemon.json, for `lsmguard status --json`
    books = daemon.status.books
    assert books["generated"] == 10 and books["journaled"] == 4 and books["coalesced"] == 4
    assert books["lost"]["ring_full"] == 2


def test_no_exporter_directory_no_file_and_no_error(tmp_path: Path) -> None:
    assert metrics.write(metrics.Snapshot(), tmp_path / "absent") == ""
    assert not (tmp_path / "absent").exists()


def test_a_directory_it_cannot_write_is_reported_not_raised(tmp_path: Path) -> None:
    target = tmp_path / "file-not-dir"
    (target).mkdir()
    (target / "lsmguard.prom").mkdir()        # os.replace onto a directory fails
    error = metrics.write(metrics.Snapshot(), target)
    assert error.startswith(f"writing {target / 'lsmguard.prom'}: ")
