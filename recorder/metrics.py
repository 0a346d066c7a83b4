"""The server's own metrics, read at scrape time from the services' plain counters.

:class:`ServerCollector` is registered on the app's registry by the composition root (``vms/app.py``)
and reads, each time ``/metrics`` is served, what the services keep in memory: the recorder
supervisor's per-stream :class:`recorder.stats.StreamStats` and states, the export service's queue,
running jobs and :class:`recorder.stats.ExportStats`, and the discovery scans. Nothing here holds
per-camera state, so the series of a removed camera are gone with its counters. Names follow the
Prometheus conventions (prefix ``vms_``, base units, ``_total``, ``_seconds``, ``_bytes``); the
dashboard in ``docs/grafana/vms.json`` is built on exactly these, and the HTTP metrics of
``web/middleware.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, get_args

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from recorder.stats import JOB_BUCKETS_S, Buckets
from recorder.status import State
from vms.clock import Clock

RECORDING_STATES: tuple[str, ...] = get_args(State)
STREAM_LABELS = ["camera_id", "stream"]
MAX_SCAN_IDS = 10_000
"""Bound on the finished scan ids remembered (they are also forgotten once the jobs are pruned)."""


class ScanCounter:
    """Discovery scans finished, counted as they are seen finished at scrape time (the scan jobs
    are kept for an hour or the last 20, far longer than a scrape interval)."""

    def __init__(self) -> None:
        self.finished: dict[str, int] = {}
        self.seconds = Buckets(JOB_BUCKETS_S)
        self._seen: set[str] = set()

    def update(self, jobs: Any) -> int:
        """Count the newly finished jobs of ``jobs`` (the ScanJobs service); the running ones."""
        running = 0
        present = set()
        for job in list(getattr(jobs, "jobs", {}).values()):
            present.add(job.id)
            if job.finished_us is None:
                running += 1
                continue
            if job.id in self._seen:
                continue
            self._seen.add(job.id)
            self.finished[job.state] = self.finished.get(job.state, 0) + 1
            self.seconds.observe(max(0, job.finished_us - job.started_us) / 1e6)
        self._seen &= present
        if len(self._seen) > MAX_SCAN_IDS:
            self._seen.clear()
        return running


class ServerCollector(Collector):
    """Metrics of the recorder, exports and discovery scans (``services``: ``app[SERVICES]``)."""

    def __init__(self, services: dict[str, Any], clock: Clock) -> None:
        self.services = services
        self.clock = clock
        self.scans = ScanCounter()

    def collect(self) -> Iterator[Metric]:
        yield from self._recording()
        yield from self._exports()
        yield from self._scans()

    def _recording(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "vms_recording_state", "Recording state of a camera stream: 1 for its current state",
            labels=[*STREAM_LABELS, "state"])
        segments = CounterMetricFamily(
            "vms_recording_segments", "Segments recorded and indexed", labels=STREAM_LABELS)
        written = CounterMetricFamily(
            "vms_recording_bytes", "Bytes of the segments recorded and indexed",
            labels=STREAM_LABELS)
        runs = CounterMetricFamily(
            "vms_recording_runs_started", "ffmpeg sessions (runs) started", labels=STREAM_LABELS)
        exits = CounterMetricFamily(
            "vms_recording_ffmpeg_exits", "ffmpeg sessions (runs) ended, by end reason",
            labels=[*STREAM_LABELS, "reason"])
        age = GaugeMetricFamily(
            "vms_recording_seconds_since_last_segment",
            "Seconds since the last segment of a stream was indexed", labels=STREAM_LABELS)
        latency = HistogramMetricFamily(
            "vms_recording_index_insert_seconds", "Time to insert one segment row into the index",
            labels=STREAM_LABELS)
        recorder = self.services.get("recorder")
        now_us = self.clock.monotonic_us()
        for camera_id, stream, current, stats in (recorder.stream_metrics() if recorder else []):
            labels = [str(camera_id), stream]
            for name in RECORDING_STATES:
                state.add_metric([*labels, name], 1.0 if name == current else 0.0)
            segments.add_metric(labels, stats.segments)
            written.add_metric(labels, stats.bytes)
            runs.add_metric(labels, stats.runs_started)
            for reason, n in sorted(stats.exits.items()):
                exits.add_metric([*labels, reason], n)
            if stats.last_segment_mono_us is not None:
                age.add_metric(labels, max(0, now_us - stats.last_segment_mono_us) / 1e6)
            latency.add_metric(labels, buckets=stats.index_seconds.cumulative(),
                               sum_value=stats.index_seconds.sum)
        yield from (state, segments, written, runs, exits, age, latency)

    def _exports(self) -> Iterator[Metric]:
        exports = self.services.get("exports")
        queued = GaugeMetricFamily("vms_exports_queued", "Export jobs waiting for a worker")
        running = GaugeMetricFamily("vms_exports_running", "Export jobs being written")
        written = CounterMetricFamily("vms_export_written_bytes",
                                      "Bytes of the export files finished")
        finished = CounterMetricFamily("vms_exports_finished", "Export jobs ended, by final state",
                                       labels=["state"])
        duration = HistogramMetricFamily("vms_export_duration_seconds",
                                         "Time to write an export that finished done")
        if exports is not None:
            queued.add_metric([], exports.queued_count())
            running.add_metric([], exports.running_count())
            stats = exports.stats
            written.add_metric([], stats.written_bytes)
            for state_name, n in sorted(stats.finished.items()):
                finished.add_metric([state_name], n)
            duration.add_metric([], buckets=stats.seconds.cumulative(),
                                sum_value=stats.seconds.sum)
        yield from (queued, running, written, finished, duration)

    def _scans(self) -> Iterator[Metric]:
        jobs = self.services.get("discovery_jobs")
        running = self.scans.update(jobs) if jobs is not None else 0
        active = GaugeMetricFamily("vms_discovery_scans_running", "Discovery scans running")
        active.add_metric([], running)
        finished = CounterMetricFamily("vms_discovery_scans", "Discovery scans ended, by state",
                                       labels=["state"])
        for state_name, n in sorted(self.scans.finished.items()):
            finished.add_metric([state_name], n)
        duration = HistogramMetricFamily("vms_discovery_scan_duration_seconds",
                                         "Duration of the discovery scans ended")
        duration.add_metric([], buckets=self.scans.seconds.cumulative(),
                            sum_value=self.scans.seconds.sum)
        yield from (active, finished, duration)
