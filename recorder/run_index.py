"""Indexing one stream's segments: what the run's segment list says becomes ``Segment`` rows.

:class:`SegmentIndexer` is the second half of :class:`recorder.run.StreamRecorder`: it consumes
the queue a run's :class:`recorder.run_watch.RunWatch` fills with ffmpeg's segment-list lines,
places each segment in wall-clock time (:mod:`recorder.runclock`), probes it with PyAV, fsyncs it
and inserts its row (under the cluster lease, ``StreamConfig.fence``); in mode ``event`` it keeps
closed segments in the pre-roll ring instead and indexes those an event keeps
(:mod:`recorder.preroll`). When a run ends it indexes the file ffmpeg was writing (partial), and
after a full disk re-probes the last segments so no row claims more than its file holds. Every
file-system call runs on the volume's threads (:meth:`VolumeMonitor.io`).
"""

from __future__ import annotations

import logging
import time
from functools import partial
from pathlib import Path
from typing import Protocol

from recorder import index
from recorder.ffmpeg import SegmentLine
from recorder.preroll import KeepWindows, PendingSegment, ring_horizon_us
from recorder.run_watch import FLUSH, RunState
from recorder.segments import (
    SEGMENT_RE,
    discard_unplayable,
    fsync_path,
    move_to_lost_and_found,
    probe_segment,
    run_files,
)
from recorder.stats import StreamStats
from recorder.volumes import VolumeMonitor
from vms.clock import Clock
from vms.db.gateway import Gateway

log = logging.getLogger(__name__)

TRUNCATED_TOLERANCE_US = 100_000
"""A re-probed segment shorter than its row by more than this is truncated to what it holds."""
RECENT_SEGMENTS = 3
"""Segments of a run re-probed in full when it ends on a full disk."""


class IndexedStream(Protocol):
    """The part of :class:`recorder.run.StreamConfig` indexing reads."""

    @property
    def camera_id(self) -> int: ...

    @property
    def kind(self) -> str: ...

    @property
    def pre_roll_s(self) -> float: ...

    @property
    def fence(self) -> index.Fence | None: ...


class RingOptions(Protocol):
    @property
    def ring_margin_s(self) -> float: ...


class IndexingRecorder(Protocol):
    """What indexing needs of the stream recorder (:class:`recorder.run.StreamRecorder`); a
    protocol, so this module does not import the one that imports it."""

    name: str
    gw: Gateway
    clock: Clock
    volumes: VolumeMonitor
    stats: StreamStats

    @property
    def config(self) -> IndexedStream: ...

    @property
    def options(self) -> RingOptions: ...

    @property
    def is_event(self) -> bool: ...

    @property
    def keeps(self) -> KeepWindows: ...

    def set_recording(self) -> None: ...

    def lease_lost(self) -> None: ...


class SegmentIndexer:
    """Indexes the segments of one stream's runs, one run at a time (``state``)."""

    def __init__(self, recorder: IndexingRecorder) -> None:
        self.rec = recorder

    async def consume(self, state: RunState) -> None:
        while True:
            item = await state.queue.get()
            if item is None:
                return
            try:
                if item == FLUSH:
                    await self.flush_ring(state)
                    continue
                assert not isinstance(item, str)
                line, seen_us = item
                await self.index_line(state, line, seen_us)
            except Exception:  # an index failure must not stop the recording
                log.exception("%s: cannot index segment %s", self.rec.name, item)

    async def index_line(self, state: RunState, line: SegmentLine, seen_us: int) -> None:
        path = state.folder / Path(line.name).name
        match = SEGMENT_RE.match(path.name)
        seq = int(match["seq"]) if match else state.last_seq + 1
        first = state.run_clock.anchor_us is None
        placed = state.run_clock.place(seen_us, round(line.start_s * 1_000_000),
                                   round(line.end_s * 1_000_000))
        start_us, end_us = placed.start_us, placed.end_us
        if placed.shift_us > 0:
            log.warning("%s: media time fell %.1fs behind the wall clock (the camera's clock "
                        "paused or went back); re-anchored from segment %s", self.rec.name,
                        placed.shift_us / 1e6, path.name)
        elif placed.shift_us < 0:
            log.warning("%s: media time jumped %.1fs ahead of the wall clock; re-anchored from "
                        "segment %s", self.rec.name, -placed.shift_us / 1e6, path.name)
        if placed.late:
            end_us = await self.frames_end(state, path, start_us, end_us)
            state.run_clock.truncate_last(end_us)
            log.info("%s: segment %s closed %.1fs after its last frame (the camera stopped "
                     "sending)", self.rec.name, path.name, (seen_us - end_us) / 1e6)
        if first and not self.rec.is_event:
            await self.rec.gw.write(index.update_run_start, state.run_id, start_us)
        state.closed += 1
        if self.rec.is_event and not self.rec.keeps.keeping(start_us, end_us):
            state.ring.add(PendingSegment(path, seq, start_us, end_us))
            state.last_seq = max(state.last_seq, seq)
            if not state.media_seen:
                state.media_seen = True
                self.rec.set_recording()
            await self.prune_ring(state, end_us)
            return
        await self.index_file(state, path, seq, start_us, end_us, "ok")

    async def frames_end(self, state: RunState, path: Path, start_us: int, end_us: int) -> int:
        """The end of a segment closed late (a stall), checked against the frames in its file: a
        list line's end may reach up to the keyframe that closed it, after the stall."""
        probe = await self.rec.volumes.io(state.volume, probe_segment, path)
        if probe.playable and start_us + probe.duration_us < end_us - TRUNCATED_TOLERANCE_US:
            return start_us + probe.duration_us
        return end_us

    async def flush_ring(self, state: RunState) -> None:
        """Index the ring segments an event now keeps (pre-roll), oldest first."""
        for p in state.ring.take_kept(self.rec.keeps):
            await self.index_file(state, p.path, p.seq, p.start_us, p.end_us, "ok")

    async def prune_ring(self, state: RunState, latest_end_us: int) -> None:
        """Delete the ring files too old for any pre-roll, and the keep windows ended before them."""
        horizon_us = ring_horizon_us(latest_end_us, self.rec.config.pre_roll_s,
                                     self.rec.options.ring_margin_s)
        old = state.ring.count_ending_before(horizon_us)
        if old:
            await self.rec.volumes.io(state.volume, state.ring.drop_oldest, old)
        self.rec.keeps.prune(horizon_us)

    async def index_file(self, state: RunState, path: Path, seq: int, start_us: int,
                          end_us: int | None, seg_state: str) -> bool:
        probe = await self.rec.volumes.io(state.volume, partial(probe_segment, quick=end_us is not None),
                                     path)
        if not probe.playable:
            await self.rec.volumes.io(state.volume, discard_unplayable, self.rec.name, state.volume,
                                  path, probe.video_packets, probe.error)
            return False
        if end_us is None:
            end_us = start_us + probe.duration_us
        await self.rec.volumes.io(state.volume, fsync_path, path)
        row = index.SegmentRow(
            camera_id=self.rec.config.camera_id, stream=self.rec.config.kind, run_id=state.run_id,
            volume=state.volume.name, path=str(path.relative_to(state.volume.path)),
            start_us=start_us, end_us=end_us, size_bytes=probe.size_bytes,
            video_codec=probe.video_codec, audio_codec=probe.audio_codec, width=probe.width,
            height=probe.height, state=seg_state,
            kind="event" if self.rec.is_event or self.rec.keeps.keeping(start_us, end_us) else "continuous",
        )
        if self.rec.is_event and state.segments == 0:
            await self.rec.gw.write(index.update_run_start, state.run_id, start_us)
        insert_start = time.perf_counter()
        try:
            seg_id = await self.rec.gw.write(index.insert_segment, row, self.rec.config.fence)
        except index.LeaseLost as exc:  # fenced: another node records this camera now
            log.warning("%s: segment %s not indexed: %s; set aside in lost+found", self.rec.name,
                        path.name, exc)
            await self.rec.volumes.io(state.volume, move_to_lost_and_found, state.volume, row.path)
            self.rec.lease_lost()  # the run ends: the supervisor's lease loop stops ffmpeg
            return False
        self.rec.stats.segment_indexed(row.size_bytes, time.perf_counter() - insert_start,
                                   self.rec.clock.monotonic_us())
        state.recent = [*state.recent[1 - RECENT_SEGMENTS:], (seg_id, path, start_us, end_us)]
        state.last_end_us = end_us
        state.last_seq = max(state.last_seq, seq)
        state.segments += 1
        if not state.media_seen:
            state.media_seen = True
            self.rec.set_recording()
        if not self.rec.is_event:
            # segments come in time order: a window that ended before this one began can no
            # longer mark one (without this, continuous mode kept every event's window forever)
            self.rec.keeps.prune(start_us)
        return True

    async def index_leftovers(self, state: RunState) -> None:
        """Index the file ffmpeg was writing when it died (no list line came for it)."""
        leftovers = await self.rec.volumes.io(state.volume, run_files, state.folder, state.run_uuid)
        for path in leftovers:
            match = SEGMENT_RE.match(path.name)
            assert match is not None
            seq = int(match["seq"])
            if seq <= state.last_seq:
                continue
            start_us = state.run_clock.next_start_us(
                state.progress_anchor_us or state.provisional_start_us)
            if self.rec.is_event and not self.rec.keeps.keeping(start_us, self.rec.clock.now_us()):
                await self.rec.volumes.io(state.volume, path.unlink, True)
                continue
            if await self.index_file(state, path, seq, start_us, None, "partial"):
                log.info("%s: indexed partial segment %s", self.rec.name, path.name)

    async def verify_recent(self, state: RunState) -> None:
        """After a full disk, re-probe the last indexed segments in full: ffmpeg lists the segment
        it failed to finish, so its row may claim more than the file holds."""
        for seg_id, path, start_us, end_us in list(state.recent):
            probe = await self.rec.volumes.io(state.volume, probe_segment, path)
            if not probe.playable:
                log.warning("%s: segment %s is not playable after the disk filled (%s); "
                            "removing its row", self.rec.name, path.name, probe.error)
                await self.rec.gw.write(index.delete_segment, seg_id)
                await self.rec.volumes.io(state.volume, discard_unplayable, self.rec.name, state.volume,
                                      path, probe.video_packets, probe.error)
                state.segments -= 1
                state.recent.remove((seg_id, path, start_us, end_us))
            elif start_us + probe.duration_us < end_us - TRUNCATED_TOLERANCE_US:
                new_end = start_us + probe.duration_us
                log.warning("%s: segment %s holds %.2fs, not %.2fs (truncated by the full disk); "
                            "indexed as partial", self.rec.name, path.name, probe.duration_us / 1e6,
                            (end_us - start_us) / 1e6)
                await self.rec.gw.write(index.truncate_segment, seg_id, start_us, new_end,
                                    probe.size_bytes)
                idx = state.recent.index((seg_id, path, start_us, end_us))
                state.recent[idx] = (seg_id, path, start_us, new_end)
        if state.recent:
            state.last_end_us = max(r[3] for r in state.recent)
