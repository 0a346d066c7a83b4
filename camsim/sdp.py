"""The session description (RFC 4566) a virtual camera answers to DESCRIBE.

This module owns the SDP text for one stream: an H.264 video track (RFC 6184, packetization-mode
1, with ``profile-level-id`` and ``sprop-parameter-sets``) and, when the clip has sound, an AAC
(RFC 3640 ``mpeg4-generic`` AAC-hbr) or G.711 PCMU audio track; with ``backchannel``, also the
ONVIF backchannel's ``sendonly`` PCMU track (:mod:`camsim.backchannel`). Track ``i`` is
controlled by the relative URL ``trackID=i``.
"""

from __future__ import annotations

from camsim.backchannel import BACKCHANNEL_SDP, BACKCHANNEL_TRACK
from camsim.media import VIDEO_CLOCK_RATE, Clip

VIDEO_PAYLOAD_TYPE = 96
VIDEO_TRACK = 0
AUDIO_TRACK = 1


def track_control(track: int) -> str:
    return f"trackID={track}"


def build_sdp(clip: Clip, session_id: int, host: str, name: str = "camsim", *,
              backchannel: bool = False, parameter_sets: bool = True) -> str:
    """SDP for ``clip``; ``host`` is the address the server answers on (for the ``o=`` line).
    ``backchannel`` adds the ONVIF backchannel track (only for a DESCRIBE that required it);
    ``parameter_sets=False`` leaves ``sprop-parameter-sets`` out (cameras that send SPS/PPS only
    in band)."""
    family = "IP6" if ":" in host else "IP4"
    any_addr = "::" if family == "IP6" else "0.0.0.0"  # noqa: S104 - SDP connection line, not a bind
    lines = [
        "v=0",
        f"o=- {session_id} 1 IN {family} {host}",
        f"s={name}",
        f"c=IN {family} {any_addr}",
        "t=0 0",
        "a=control:*",
        "a=range:npt=0-",
        f"m=video 0 RTP/AVP {VIDEO_PAYLOAD_TYPE}",
        f"a=rtpmap:{VIDEO_PAYLOAD_TYPE} H264/{VIDEO_CLOCK_RATE}",
        f"a=fmtp:{VIDEO_PAYLOAD_TYPE} {clip.video_fmtp if parameter_sets else clip.video_fmtp_bare}",
        f"a=framerate:{clip.spec.fps}",
        f"a=x-dimensions:{clip.spec.width},{clip.spec.height}",
        f"a=control:{track_control(VIDEO_TRACK)}",
    ]
    audio = clip.audio
    if audio is not None:
        pt = audio.payload_type
        lines += [f"m=audio 0 RTP/AVP {pt}", f"a=rtpmap:{pt} {audio.rtpmap}"]
        if audio.fmtp:
            lines.append(f"a=fmtp:{pt} {audio.fmtp}")
        lines.append(f"a=control:{track_control(AUDIO_TRACK)}")
    if backchannel:
        lines += [*BACKCHANNEL_SDP, f"a=control:{track_control(BACKCHANNEL_TRACK)}"]
    return "\r\n".join(lines) + "\r\n"
