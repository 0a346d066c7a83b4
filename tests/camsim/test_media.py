"""camsim's pre-encoded clips and capture-time SEI: encoding, packetisation, the SEI wire format."""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import av
import pytest

from camsim.media import (
    MAIN_SPEC,
    RTP_MTU_PAYLOAD,
    SUB_SPEC,
    ClipSpec,
    default_cache_dir,
    ensure_clip,
    ensure_snapshot,
    fragment_nal,
    snapshot_jpeg,
)
from camsim.sei import (
    VMS_SEI_UUID,
    add_emulation_prevention,
    build_sei_nal,
    find_capture_times,
    parse_sei_nal,
    read_capture_times,
    remove_emulation_prevention,
)

SMALL = ClipSpec(width=320, height=180, bitrate_kbps=300, seconds=2)
SMALL_PCMU = ClipSpec(width=320, height=180, bitrate_kbps=300, seconds=2, audio="pcmu")


def test_default_cache_dir_follows_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VMS_CAMSIM_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("VMS_CAMSIM_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "vms-camsim"


@pytest.mark.parametrize(
    "value", [0, 1, -1, 1_700_000_000_123_456, 0x0000_0001_0000_0203, -(2**63), 2**63 - 1]
)
def test_sei_roundtrip_and_layout(value: int) -> None:
    nal = build_sei_nal(value)
    assert nal[0] == 0x06
    # No start-code emulation may survive inside the NAL.
    assert b"\x00\x00\x00" not in nal and b"\x00\x00\x01" not in nal and b"\x00\x00\x02" not in nal
    rbsp = remove_emulation_prevention(nal[1:])
    assert rbsp[0] == 5 and rbsp[1] == 24
    assert rbsp[2:18] == VMS_SEI_UUID
    assert struct.unpack(">q", rbsp[18:26])[0] == value
    assert rbsp[26:] == b"\x80"
    assert parse_sei_nal(nal) == value
    # Annex B and AVCC framings both work.
    assert find_capture_times(b"\x00\x00\x00\x01" + nal + b"\x00\x00\x01\x65\x88") == [value]
    assert find_capture_times(struct.pack(">I", len(nal)) + nal + b"\x00\x00\x00\x02\x65\x88") == [
        value
    ]


def test_emulation_prevention_inverse() -> None:
    raw = b"\x00\x00\x00\x00\x01\x00\x00\x02\x00\x00\x03\x00\x00\x04"
    escaped = add_emulation_prevention(raw)
    assert escaped == b"\x00\x00\x03\x00\x00\x03\x01\x00\x00\x03\x02\x00\x00\x03\x03\x00\x00\x04"
    assert remove_emulation_prevention(escaped) == raw


def test_foreign_sei_is_ignored() -> None:
    other_uuid = bytes(16)
    rbsp = bytes((5, 24)) + other_uuid + struct.pack(">q", 42) + b"\x80"
    assert parse_sei_nal(b"\x06" + add_emulation_prevention(rbsp)) is None


def test_fu_a_fragments_reassemble() -> None:
    nal = bytes((0x65,)) + bytes(range(256)) * 20
    fragments = fragment_nal(nal)
    assert len(fragments) > 1
    assert all(len(f) <= RTP_MTU_PAYLOAD for f in fragments)
    assert fragments[0][1] & 0x80 and not fragments[0][1] & 0x40
    assert fragments[-1][1] & 0x40 and not fragments[-1][1] & 0x80
    assert all(f[0] & 0x1F == 28 and f[1] & 0x1F == 5 for f in fragments)
    rebuilt = bytes(((fragments[0][0] & 0xE0) | (fragments[0][1] & 0x1F),)) + b"".join(
        f[2:] for f in fragments
    )
    assert rebuilt == nal
    assert fragment_nal(b"\x41\x9a") == [b"\x41\x9a"]


def test_small_clip_is_packetised_once_and_memoised() -> None:
    clip = ensure_clip(SMALL)
    assert ensure_clip(SMALL) is clip
    assert len(clip.aus) == SMALL.fps * SMALL.seconds
    idr = [i for i, au in enumerate(clip.aus) if au.is_idr]
    assert idr == list(range(0, len(clip.aus), SMALL.fps)), "one IDR per second, GOP = fps"
    sps_b64, pps_b64 = clip.sprop_parameter_sets.split(",")
    assert base64.b64decode(sps_b64) == clip.sps and clip.sps[0] & 0x1F == 7
    assert base64.b64decode(pps_b64) == clip.pps and clip.pps[0] & 0x1F == 8
    assert clip.profile_level_id == clip.sps[1:4].hex().upper()
    for au in clip.aus:
        tpl = au.template
        assert len(tpl.offsets) == len(tpl.lengths) >= 1
        for off, length in zip(tpl.offsets, tpl.lengths, strict=True):
            assert tpl.blob[off] == 0x24
            assert struct.unpack(">H", tpl.blob[off + 2 : off + 4])[0] == length
            assert length - 12 <= RTP_MTU_PAYLOAD
    audio = clip.audio
    assert audio is not None and audio.codec == "aac" and audio.clock_rate == 16_000
    assert audio.fmtp is not None and "config=1408" in audio.fmtp and "AAC-hbr" in audio.fmtp
    assert len(audio.payloads) == SMALL.seconds * 16_000 // 1024
    for payload in audio.payloads:
        assert payload[:2] == b"\x00\x10"
        assert struct.unpack(">H", payload[2:4])[0] >> 3 == len(payload) - 4


def test_pcmu_clip() -> None:
    clip = ensure_clip(SMALL_PCMU)
    audio = clip.audio
    assert audio is not None and audio.codec == "pcmu" and audio.payload_type == 0
    assert audio.rtpmap == "PCMU/8000" and audio.fmtp is None
    assert len(audio.payloads) == SMALL_PCMU.seconds * 50
    assert all(len(p) == 160 for p in audio.payloads)


def test_cache_dir_argument_and_concurrent_reuse(tmp_path: Path) -> None:
    spec = ClipSpec(width=160, height=90, bitrate_kbps=100, seconds=1, audio=None)
    clip = ensure_clip(spec, tmp_path)
    assert clip.audio is None
    files = sorted(p.name for p in tmp_path.iterdir())
    assert f"{spec.stem()}.h264" in files
    assert not [f for f in files if f.endswith(".tmp")]
    mtime = (tmp_path / f"{spec.stem()}.h264").stat().st_mtime_ns
    # A different cache dir key is a different clip; the same dir reuses the file.
    from camsim import media

    media._clips.clear()
    assert len(ensure_clip(spec, tmp_path).aus) == len(clip.aus)
    assert (tmp_path / f"{spec.stem()}.h264").stat().st_mtime_ns == mtime


async def test_snapshot_is_a_jpeg(tmp_path: Path) -> None:
    spec = ClipSpec(width=320, height=180, bitrate_kbps=200, seconds=1)
    jpeg = await snapshot_jpeg(spec, tmp_path)
    assert jpeg[:3] == b"\xff\xd8\xff" and jpeg[-2:] == b"\xff\xd9"
    assert ensure_snapshot(spec, tmp_path) == jpeg
    path = tmp_path / "snap.jpg"
    path.write_bytes(jpeg)
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        assert (frame.width, frame.height) == (320, 180)


def test_main_clip_is_1080p_at_about_4_mbps() -> None:
    clip = ensure_clip(MAIN_SPEC)
    assert len(clip.aus) == 250
    mbps = clip.bytes_per_loop * 8 / MAIN_SPEC.seconds / 1e6
    assert 3.0 < mbps < 4.8, mbps
    sub = ensure_clip(SUB_SPEC)
    assert 0.3 < sub.bytes_per_loop * 8 / SUB_SPEC.seconds / 1e6 < 0.7


def test_read_capture_times_from_annexb_ts(tmp_path: Path) -> None:
    """read_capture_times handles MPEG-TS (Annex B packets) as well as MP4 (AVCC)."""
    clip = ensure_clip(SMALL)
    stream = bytearray()
    for i in range(3):
        stream += b"\x00\x00\x00\x01\x09\xf0"
        if i == 0:
            stream += b"\x00\x00\x00\x01" + clip.sps + b"\x00\x00\x00\x01" + clip.pps
        stream += b"\x00\x00\x00\x01" + build_sei_nal(1000 + i)
        tpl = clip.aus[i].template
        nal = bytearray()
        for off, length in zip(tpl.offsets, tpl.lengths, strict=True):
            payload = tpl.blob[off + 16 : off + 4 + length]
            if payload[0] & 0x1F == 28:
                if payload[1] & 0x80:
                    nal += bytes(((payload[0] & 0xE0) | (payload[1] & 0x1F),))
                nal += payload[2:]
            else:
                nal += payload
        stream += b"\x00\x00\x00\x01" + nal
    raw = tmp_path / "three.h264"
    raw.write_bytes(bytes(stream))
    for fmt in ("mpegts", "mp4"):
        out = tmp_path / f"three.{'ts' if fmt == 'mpegts' else 'mp4'}"
        with av.open(str(raw), format="h264") as src, av.open(str(out), "w", format=fmt) as dst:
            ins = src.streams.video[0]
            ost = dst.add_stream_from_template(ins)
            for i, packet in enumerate(src.demux(ins)):
                if packet.size == 0:
                    continue
                packet.stream = ost
                packet.time_base = ost.time_base if fmt == "mpegts" else packet.time_base
                packet.pts = packet.dts = i * 3600 if fmt == "mpegts" else i * 512
                dst.mux(packet)
        assert [c for _, c in read_capture_times(out)] == [1000, 1001, 1002], fmt
