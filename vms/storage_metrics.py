"""Prometheus figures of storage, computed when scraped: ``vms_storage_used_bytes{volume}`` (bytes
of the indexed segments on the volume), ``vms_storage_free_bytes{volume}`` (free bytes of its file
system; left out while it cannot be read) and ``vms_recording_oldest_age_seconds{camera_id}`` (age
of each camera's oldest kept footage).

A custom collector: ``collect`` reads the index and the file systems itself, so it must not run on
the event loop — ``/metrics`` renders the registry on a gateway reader thread (web/views_system.py),
which also gives it a database connection.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import peewee as pw
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from vms.clock import US_PER_S
from vms.storage import StorageService, oldest_per_camera, volume_index_bytes

log = logging.getLogger(__name__)


class StorageCollector(Collector):
    def __init__(self, service: StorageService) -> None:
        self.service = service

    def describe(self) -> list[GaugeMetricFamily]:
        """Declared without reading anything (registering must not touch the database)."""
        return [GaugeMetricFamily("vms_storage_used_bytes", "", labels=["volume"]),
                GaugeMetricFamily("vms_storage_free_bytes", "", labels=["volume"]),
                GaugeMetricFamily("vms_recording_oldest_age_seconds", "", labels=["camera_id"])]

    def collect(self) -> Iterator[GaugeMetricFamily]:
        volumes = self.service.settings.volumes
        try:
            used_by = volume_index_bytes()
            oldest = oldest_per_camera()
        except pw.DatabaseError as exc:  # the other metrics are still worth serving
            log.warning("storage metrics left out: database unavailable (%s)", exc)
            return
        now_us = self.service.clock.now_us()
        fs = self.service.fs.usage_sync(volumes)
        used = GaugeMetricFamily("vms_storage_used_bytes",
                                 "Bytes of the indexed recordings on the volume", labels=["volume"])
        free = GaugeMetricFamily("vms_storage_free_bytes",
                                 "Free bytes of the volume's file system", labels=["volume"])
        for volume in volumes:
            used.add_metric([volume.name], used_by.get(volume.name, 0))
            free_bytes = fs[volume.name].free_bytes
            if free_bytes is not None:
                free.add_metric([volume.name], free_bytes)
        age = GaugeMetricFamily("vms_recording_oldest_age_seconds",
                                "Age of the camera's oldest kept recording", labels=["camera_id"])
        for camera_id, start_us in sorted(oldest.items()):
            age.add_metric([str(camera_id)], max(0, now_us - start_us) / US_PER_S)
        yield used
        yield free
        yield age
