"""ONVIF Media ver10 service (``/onvif/media_service``): profiles, encoders, stream and snapshot URIs.

Two profiles, ``Profile_1`` (main, with PTZ when the camera has it) and ``Profile_2`` (sub).
SetVideoEncoderConfiguration behaves like a real camera: numbers are clamped to the options it
advertises, a resolution that is not among them is refused with ``ter:ConfigModify``, and what it
accepted is what later Get calls return.
"""

from __future__ import annotations

import logging

from camsim.onvif import ptz
from camsim.onvif.soap import NS, Request, Service, SoapFault, find_local, text_local, x
from camsim.onvif.state import CameraState, Profile, VideoEncoder

logger = logging.getLogger(__name__)

VIDEO_SOURCE = "VideoSource_1"
VIDEO_SOURCE_CONFIG = "VideoSourceConfigToken_1"
AUDIO_SOURCE = "AudioSource_1"
AUDIO_SOURCE_CONFIG = "AudioSourceConfigToken_1"
AUDIO_ENCODER = "AudioEncoderToken_1"
SNAPSHOT_PATH = "/onvif/snapshot"

_MULTICAST = (
    "<tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type><tt:IPv4Address>0.0.0.0</tt:IPv4Address>"
    "</tt:Address><tt:Port>0</tt:Port><tt:TTL>1</tt:TTL><tt:AutoStart>false</tt:AutoStart>"
    "</tt:Multicast>"
)


def service_capabilities(state: CameraState) -> str:
    return (
        '<trt:Capabilities SnapshotUri="true" Rotation="false" VideoSourceMode="false" OSD="false">'
        f'<trt:ProfileCapabilities MaximumNumberOfProfiles="{len(state.profiles)}"/>'
        '<trt:StreamingCapabilities RTPMulticast="false" RTP_TCP="true" RTP_RTSP_TCP="true" '
        'NonAggregateControl="false" NoRTSPStreaming="false"/></trt:Capabilities>'
    )


def video_source_config_xml(tag: str) -> str:
    return (
        f'<{tag} token="{VIDEO_SOURCE_CONFIG}"><tt:Name>VideoSourceConfig_1</tt:Name>'
        f"<tt:UseCount>2</tt:UseCount><tt:SourceToken>{VIDEO_SOURCE}</tt:SourceToken>"
        f'<tt:Bounds x="0" y="0" width="1920" height="1080"/></{tag}>'
    )


def audio_source_config_xml(tag: str) -> str:
    return (
        f'<{tag} token="{AUDIO_SOURCE_CONFIG}"><tt:Name>AudioSourceConfig_1</tt:Name>'
        f"<tt:UseCount>2</tt:UseCount><tt:SourceToken>{AUDIO_SOURCE}</tt:SourceToken></{tag}>"
    )


def video_encoder_xml(enc: VideoEncoder, tag: str) -> str:
    quality = f"{enc.quality:g}"
    return (
        f'<{tag} token="{x(enc.token)}"><tt:Name>{x(enc.name)}</tt:Name>'
        f"<tt:UseCount>{enc.use_count}</tt:UseCount><tt:Encoding>H264</tt:Encoding>"
        f"<tt:Resolution><tt:Width>{enc.width}</tt:Width><tt:Height>{enc.height}</tt:Height>"
        f"</tt:Resolution><tt:Quality>{quality}</tt:Quality>"
        f"<tt:RateControl><tt:FrameRateLimit>{enc.frame_rate_limit}</tt:FrameRateLimit>"
        f"<tt:EncodingInterval>{enc.encoding_interval}</tt:EncodingInterval>"
        f"<tt:BitrateLimit>{enc.bitrate_limit_kbps}</tt:BitrateLimit></tt:RateControl>"
        f"<tt:H264><tt:GovLength>{enc.gov_length}</tt:GovLength>"
        f"<tt:H264Profile>{enc.h264_profile}</tt:H264Profile></tt:H264>"
        f"{_MULTICAST}<tt:SessionTimeout>PT{enc.session_timeout_s}S</tt:SessionTimeout></{tag}>"
    )


def audio_encoder_xml(state: CameraState, tag: str) -> str:
    if state.audio == "aac":
        encoding, bitrate, rate = "AAC", 64, 16
    else:
        encoding, bitrate, rate = "G711", 64, 8
    return (
        f'<{tag} token="{AUDIO_ENCODER}"><tt:Name>AudioEncoder_1</tt:Name>'
        f"<tt:UseCount>2</tt:UseCount><tt:Encoding>{encoding}</tt:Encoding>"
        f"<tt:Bitrate>{bitrate}</tt:Bitrate><tt:SampleRate>{rate}</tt:SampleRate>"
        f"{_MULTICAST}<tt:SessionTimeout>PT60S</tt:SessionTimeout></{tag}>"
    )


def profile_xml(state: CameraState, profile: Profile, tag: str) -> str:
    ptz_xml = (
        ptz.configuration_xml("tt:PTZConfiguration")
        if profile.ptz and state.ptz is not None else ""
    )
    return (
        f'<{tag} token="{x(profile.token)}" fixed="true"><tt:Name>{x(profile.name)}</tt:Name>'
        + video_source_config_xml("tt:VideoSourceConfiguration")
        + audio_source_config_xml("tt:AudioSourceConfiguration")
        + video_encoder_xml(profile.encoder, "tt:VideoEncoderConfiguration")
        + audio_encoder_xml(state, "tt:AudioEncoderConfiguration")
        + ptz_xml
        + f"</{tag}>"
    )


def encoder_options_xml(enc: VideoEncoder) -> str:
    o = enc.options
    resolutions = "".join(
        f"<tt:ResolutionsAvailable><tt:Width>{w}</tt:Width><tt:Height>{h}</tt:Height>"
        "</tt:ResolutionsAvailable>"
        for w, h in o.resolutions
    )
    common = (
        resolutions
        + f"<tt:GovLengthRange><tt:Min>{o.gov_min}</tt:Min><tt:Max>{o.gov_max}</tt:Max>"
        "</tt:GovLengthRange>"
        f"<tt:FrameRateRange><tt:Min>{o.frame_rate_min}</tt:Min><tt:Max>{o.frame_rate_max}"
        "</tt:Max></tt:FrameRateRange>"
        f"<tt:EncodingIntervalRange><tt:Min>{o.encoding_interval_min}</tt:Min>"
        f"<tt:Max>{o.encoding_interval_max}</tt:Max></tt:EncodingIntervalRange>"
        + "".join(f"<tt:H264ProfilesSupported>{p}</tt:H264ProfilesSupported>" for p in o.h264_profiles)
    )
    return (
        "<trt:Options>"
        f"<tt:QualityRange><tt:Min>{int(o.quality_min)}</tt:Min><tt:Max>{int(o.quality_max)}</tt:Max>"
        "</tt:QualityRange>"
        f"<tt:H264>{common}</tt:H264>"
        f"<tt:Extension><tt:H264>{common}<tt:BitrateRange><tt:Min>{o.bitrate_min_kbps}</tt:Min>"
        f"<tt:Max>{o.bitrate_max_kbps}</tt:Max></tt:BitrateRange></tt:H264></tt:Extension>"
        "</trt:Options>"
    )


def _profile_or_fault(state: CameraState, req: Request) -> Profile:
    token = text_local(req.body, "ProfileToken")
    profile = state.profile(token)
    if profile is None:
        raise SoapFault(f"no profile {token!r}", subcodes=("ter:InvalidArgVal", "ter:NoProfile"))
    return profile


def _encoder_or_fault(state: CameraState, token: str | None) -> VideoEncoder:
    enc = state.encoder(token)
    if enc is None:
        raise SoapFault(f"no configuration {token!r}", subcodes=("ter:InvalidArgVal", "ter:NoConfig"))
    return enc


def _int(text: str | None, default: int) -> int:
    if text is None or text == "":
        return default
    try:
        return int(float(text))
    except ValueError:
        raise SoapFault(f"not a number: {text!r}", subcodes=("ter:InvalidArgVal",)) from None


def build(state: CameraState) -> Service:
    svc = Service("media", NS["trt"])

    async def get_service_capabilities(req: Request) -> str:
        return (
            "<trt:GetServiceCapabilitiesResponse>" + service_capabilities(state)
            + "</trt:GetServiceCapabilitiesResponse>"
        )

    async def get_profiles(req: Request) -> str:
        return (
            "<trt:GetProfilesResponse>"
            + "".join(profile_xml(state, p, "trt:Profiles") for p in state.profiles)
            + "</trt:GetProfilesResponse>"
        )

    async def get_profile(req: Request) -> str:
        profile = _profile_or_fault(state, req)
        return (
            "<trt:GetProfileResponse>" + profile_xml(state, profile, "trt:Profile")
            + "</trt:GetProfileResponse>"
        )

    async def get_stream_uri(req: Request) -> str:
        profile = _profile_or_fault(state, req)
        stream = text_local(req.body, "StreamSetup", "Stream", default="RTP-Unicast")
        protocol = text_local(req.body, "StreamSetup", "Transport", "Protocol", default="RTSP")
        if stream != "RTP-Unicast":
            raise SoapFault(f"stream type {stream!r} not supported (no multicast)",
                            subcodes=("ter:InvalidArgVal", "ter:InvalidStreamSetup"))
        if protocol not in ("RTSP", "UDP", "TCP"):
            raise SoapFault(f"transport {protocol!r} not supported",
                            subcodes=("ter:InvalidArgVal", "ter:InvalidStreamSetup"))
        uri = state.rtsp_url(profile.stream_path)
        return (
            f"<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>{x(uri)}</tt:Uri>"
            "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
            "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
            "<tt:Timeout>PT60S</tt:Timeout></trt:MediaUri></trt:GetStreamUriResponse>"
        )

    async def get_snapshot_uri(req: Request) -> str:
        profile = _profile_or_fault(state, req)
        uri = state.snapshot_uri or f"{state.base_url()}{SNAPSHOT_PATH}/{profile.token}"
        return (
            f"<trt:GetSnapshotUriResponse><trt:MediaUri><tt:Uri>{x(uri)}</tt:Uri>"
            "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
            "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>"
            "<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetSnapshotUriResponse>"
        )

    async def get_video_encoder_configurations(req: Request) -> str:
        return (
            "<trt:GetVideoEncoderConfigurationsResponse>"
            + "".join(video_encoder_xml(p.encoder, "trt:Configurations") for p in state.profiles)
            + "</trt:GetVideoEncoderConfigurationsResponse>"
        )

    async def get_video_encoder_configuration(req: Request) -> str:
        enc = _encoder_or_fault(state, text_local(req.body, "ConfigurationToken"))
        return (
            "<trt:GetVideoEncoderConfigurationResponse>"
            + video_encoder_xml(enc, "trt:Configuration")
            + "</trt:GetVideoEncoderConfigurationResponse>"
        )

    async def get_video_encoder_configuration_options(req: Request) -> str:
        config_token = text_local(req.body, "ConfigurationToken")
        profile_token = text_local(req.body, "ProfileToken")
        if config_token:
            enc = _encoder_or_fault(state, config_token)
        elif profile_token:
            enc = _profile_or_fault(state, req).encoder
        else:
            enc = state.profiles[0].encoder
        return (
            "<trt:GetVideoEncoderConfigurationOptionsResponse>" + encoder_options_xml(enc)
            + "</trt:GetVideoEncoderConfigurationOptionsResponse>"
        )

    async def set_video_encoder_configuration(req: Request) -> str:
        conf = find_local(req.body, "Configuration")
        if conf is None:
            raise SoapFault("no Configuration", subcodes=("ter:InvalidArgVal",))
        enc = _encoder_or_fault(state, conf.get("token"))
        encoding = text_local(conf, "Encoding", default="H264")
        if encoding != "H264":
            raise SoapFault(f"encoding {encoding!r} not supported",
                            subcodes=("ter:InvalidArgVal", "ter:ConfigModify"))
        quality_text = text_local(conf, "Quality")
        try:
            quality = float(quality_text) if quality_text else enc.quality
        except ValueError:
            raise SoapFault("Quality is not a number", subcodes=("ter:InvalidArgVal",)) from None
        try:
            enc.apply(
                width=_int(text_local(conf, "Resolution", "Width"), enc.width),
                height=_int(text_local(conf, "Resolution", "Height"), enc.height),
                quality=quality,
                frame_rate_limit=_int(text_local(conf, "RateControl", "FrameRateLimit"),
                                      enc.frame_rate_limit),
                encoding_interval=_int(text_local(conf, "RateControl", "EncodingInterval"),
                                       enc.encoding_interval),
                bitrate_limit_kbps=_int(text_local(conf, "RateControl", "BitrateLimit"),
                                        enc.bitrate_limit_kbps),
                gov_length=_int(text_local(conf, "H264", "GovLength"), enc.gov_length),
                h264_profile=text_local(conf, "H264", "H264Profile"),
                name=text_local(conf, "Name"),
            )
        except ValueError as exc:
            raise SoapFault(str(exc), subcodes=("ter:InvalidArgVal", "ter:ConfigModify")) from None
        logger.info("%s: encoder %s now %dx%d %d kbit/s gov %d", state.identity.name, enc.token,
                    enc.width, enc.height, enc.bitrate_limit_kbps, enc.gov_length)
        return "<trt:SetVideoEncoderConfigurationResponse/>"

    async def get_audio_encoder_configurations(req: Request) -> str:
        return (
            "<trt:GetAudioEncoderConfigurationsResponse>"
            + audio_encoder_xml(state, "trt:Configurations")
            + "</trt:GetAudioEncoderConfigurationsResponse>"
        )

    async def get_video_sources(req: Request) -> str:
        return (
            f'<trt:GetVideoSourcesResponse><trt:VideoSources token="{VIDEO_SOURCE}">'
            "<tt:Framerate>25</tt:Framerate><tt:Resolution><tt:Width>1920</tt:Width>"
            "<tt:Height>1080</tt:Height></tt:Resolution></trt:VideoSources>"
            "</trt:GetVideoSourcesResponse>"
        )

    async def get_video_source_configurations(req: Request) -> str:
        return (
            "<trt:GetVideoSourceConfigurationsResponse>"
            + video_source_config_xml("trt:Configurations")
            + "</trt:GetVideoSourceConfigurationsResponse>"
        )

    async def get_audio_sources(req: Request) -> str:
        return (
            f'<trt:GetAudioSourcesResponse><trt:AudioSources token="{AUDIO_SOURCE}">'
            "<tt:Channels>1</tt:Channels></trt:AudioSources></trt:GetAudioSourcesResponse>"
        )

    svc.op("GetServiceCapabilities", get_service_capabilities)
    svc.op("GetProfiles", get_profiles)
    svc.op("GetProfile", get_profile)
    svc.op("GetStreamUri", get_stream_uri)
    svc.op("GetSnapshotUri", get_snapshot_uri)
    svc.op("GetVideoEncoderConfigurations", get_video_encoder_configurations)
    svc.op("GetVideoEncoderConfiguration", get_video_encoder_configuration)
    svc.op("GetVideoEncoderConfigurationOptions", get_video_encoder_configuration_options)
    svc.op("SetVideoEncoderConfiguration", set_video_encoder_configuration)
    svc.op("GetAudioEncoderConfigurations", get_audio_encoder_configurations)
    svc.op("GetVideoSources", get_video_sources)
    svc.op("GetVideoSourceConfigurations", get_video_source_configurations)
    svc.op("GetAudioSources", get_audio_sources)
    return svc
