"""camsim Media service: profiles, URIs, snapshot, encoder options and clamping."""

from __future__ import annotations

import aiohttp
import pytest
from onvif import ONVIFCamera
from zeep.exceptions import Fault

from camsim.pytest_plugin import raw_soap

TRT = "http://www.onvif.org/ver10/media/wsdl"


async def media_of(cam):  # type: ignore[no-untyped-def]
    onvif = ONVIFCamera("127.0.0.1", cam.http_port, cam.username, cam.password)
    await onvif.update_xaddrs()
    return onvif, await onvif.create_media_service()


def subcodes(fault: Fault) -> list[str]:
    out = []
    for code in fault.subcodes or []:
        out.append(getattr(code, "localname", str(code)))
    return out


async def test_profiles_main_and_sub(camsim_factory) -> None:
    fleet = await camsim_factory(count=2, rtsp=False, per_camera=[{}, {"audio": "pcmu", "ptz": False}])
    onvif, media = await media_of(fleet.cameras[0])
    try:
        profiles = await media.GetProfiles()
        assert [p.token for p in profiles] == ["Profile_1", "Profile_2"]
        main, sub = profiles
        assert main.VideoSourceConfiguration.SourceToken == "VideoSource_1"
        enc = main.VideoEncoderConfiguration
        assert enc.Encoding == "H264"
        assert (enc.Resolution.Width, enc.Resolution.Height) == (1920, 1080)
        assert enc.RateControl.FrameRateLimit == 25
        assert enc.RateControl.BitrateLimit == 4096
        assert enc.RateControl.EncodingInterval == 1
        assert enc.H264.GovLength == 50 and enc.H264.H264Profile == "Main"
        assert main.AudioEncoderConfiguration.Encoding == "AAC"
        assert main.PTZConfiguration.NodeToken == "PTZNodeToken_1"
        assert sub.PTZConfiguration is None
        assert sub.VideoEncoderConfiguration.Resolution.Width == 640
        one = await media.GetProfile({"ProfileToken": "Profile_2"})
        assert one.Name == "subStream"
        with pytest.raises(Fault) as caught:
            await media.GetProfile({"ProfileToken": "nope"})
        assert "NoProfile" in subcodes(caught.value)
        assert len(await media.GetVideoSources()) == 1
        assert len(await media.GetVideoSourceConfigurations()) == 1
        assert len(await media.GetVideoEncoderConfigurations()) == 2
        assert (await media.GetAudioEncoderConfigurations())[0].Encoding == "AAC"
    finally:
        await onvif.close()
    onvif, media = await media_of(fleet.cameras[1])
    try:
        profiles = await media.GetProfiles()
        assert profiles[0].AudioEncoderConfiguration.Encoding == "G711"
        assert profiles[0].PTZConfiguration is None
    finally:
        await onvif.close()


async def test_stream_uri_comes_from_rtsp_server(camsim_camera) -> None:
    cam = camsim_camera
    onvif, media = await media_of(cam)
    try:
        for protocol in ("RTSP", "UDP", "TCP"):
            uri = await media.GetStreamUri({
                "ProfileToken": "Profile_1",
                "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": protocol}},
            })
            assert uri.Uri == cam.info()["rtsp"]["main"]
        sub = await media.GetStreamUri({
            "ProfileToken": "Profile_2",
            "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
        })
        assert sub.Uri == cam.info()["rtsp"]["sub"]
        if cam.rtsp is not None:
            assert sub.Uri == cam.rtsp.url("/sub")
        with pytest.raises(Fault) as caught:
            await media.GetStreamUri({
                "ProfileToken": "Profile_1",
                "StreamSetup": {"Stream": "RTP-Multicast", "Transport": {"Protocol": "UDP"}},
            })
        assert "InvalidStreamSetup" in subcodes(caught.value)
    finally:
        await onvif.close()


async def test_snapshot_uri_needs_http_auth(camsim_camera) -> None:
    cam = camsim_camera
    onvif, media = await media_of(cam)
    try:
        uri = (await media.GetSnapshotUri({"ProfileToken": "Profile_1"})).Uri
        assert uri.startswith(f"http://127.0.0.1:{cam.http_port}/")
        async with aiohttp.ClientSession() as session:
            async with session.get(uri) as resp:
                assert resp.status == 401
                assert resp.headers["WWW-Authenticate"].startswith("Digest ")
            wrong = {"Authorization": aiohttp.encode_basic_auth(cam.username, "wrong")}
            right = {"Authorization": aiohttp.encode_basic_auth(cam.username, cam.password)}
            async with session.get(uri, headers=wrong) as resp:
                assert resp.status == 401
            async with session.get(uri, headers=right) as resp:
                assert resp.status == 200 and resp.content_type == "image/jpeg"
                assert (await resp.read())[:2] == b"\xff\xd8"
        # the ONVIF client's own snapshot path (HTTP Digest)
        jpeg = await onvif.get_snapshot("Profile_2")
        assert jpeg is not None and jpeg[:2] == b"\xff\xd8"
    finally:
        await onvif.close()


async def test_encoder_options_and_clamping(camsim_factory) -> None:
    fleet = await camsim_factory(count=1, rtsp=False)
    cam = fleet.cameras[0]
    onvif, media = await media_of(cam)
    try:
        options = await media.GetVideoEncoderConfigurationOptions({"ProfileToken": "Profile_1"})
        sizes = [(r.Width, r.Height) for r in options.H264.ResolutionsAvailable]
        assert (1920, 1080) in sizes and (1280, 720) in sizes
        assert options.H264.GovLengthRange.Max == 150
        assert options.QualityRange.Min == 1
        assert "High" in options.H264.H264ProfilesSupported
        # tt:VideoEncoderOptionsExtension opens with xs:any, so zeep may leave H264 unparsed
        ext_h264 = options.Extension.H264 or options.Extension._value_1[0]
        if hasattr(ext_h264, "BitrateRange"):
            assert ext_h264.BitrateRange.Max == 8192
        else:
            assert ext_h264.findtext("{*}BitrateRange/{*}Max") == "8192"

        config = await media.GetVideoEncoderConfiguration(
            {"ConfigurationToken": "VideoEncoderToken_1"})
        config.Resolution.Width, config.Resolution.Height = 1280, 720
        config.RateControl.BitrateLimit = 100_000
        config.RateControl.FrameRateLimit = 60
        config.H264.GovLength = 1000
        config.H264.H264Profile = "High"
        config.Quality = 50
        await media.SetVideoEncoderConfiguration({"Configuration": config, "ForcePersistence": True})
        stored = await media.GetVideoEncoderConfiguration(
            {"ConfigurationToken": "VideoEncoderToken_1"})
        assert (stored.Resolution.Width, stored.Resolution.Height) == (1280, 720)
        assert stored.RateControl.BitrateLimit == 8192
        assert stored.RateControl.FrameRateLimit == 25
        assert stored.H264.GovLength == 150
        assert stored.H264.H264Profile == "High"
        assert stored.Quality == 10
        stored.RateControl.BitrateLimit = 1
        await media.SetVideoEncoderConfiguration({"Configuration": stored, "ForcePersistence": True})
        assert cam.state()["encoders"]["VideoEncoderToken_1"]["bitrate_kbps"] == 256

        stored.Resolution.Width, stored.Resolution.Height = 1000, 1000
        with pytest.raises(Fault) as caught:
            await media.SetVideoEncoderConfiguration({"Configuration": stored,
                                                      "ForcePersistence": True})
        assert "ConfigModify" in subcodes(caught.value)
        again = await media.GetVideoEncoderConfiguration(
            {"ConfigurationToken": "VideoEncoderToken_1"})
        assert again.Resolution.Width == 1280
    finally:
        await onvif.close()


async def test_media_answers_validate_against_xsd(camsim_factory, onvif_schemas) -> None:
    fleet = await camsim_factory(count=1, rtsp=False)
    cam = fleet.cameras[0]
    bodies = [
        f'<GetProfiles xmlns="{TRT}"/>',
        f'<GetProfile xmlns="{TRT}"><ProfileToken>Profile_1</ProfileToken></GetProfile>',
        f'<GetVideoEncoderConfigurationOptions xmlns="{TRT}"><ProfileToken>Profile_1'
        "</ProfileToken></GetVideoEncoderConfigurationOptions>",
        f'<GetStreamUri xmlns="{TRT}"><StreamSetup><Stream xmlns="http://www.onvif.org/ver10/'
        'schema">RTP-Unicast</Stream><Transport xmlns="http://www.onvif.org/ver10/schema">'
        "<Protocol>RTSP</Protocol></Transport></StreamSetup><ProfileToken>Profile_1"
        "</ProfileToken></GetStreamUri>",
        f'<GetSnapshotUri xmlns="{TRT}"><ProfileToken>Profile_1</ProfileToken></GetSnapshotUri>',
        f'<GetVideoSources xmlns="{TRT}"/>',
        f'<GetVideoEncoderConfigurations xmlns="{TRT}"/>',
        f'<GetAudioEncoderConfigurations xmlns="{TRT}"/>',
        f'<GetServiceCapabilities xmlns="{TRT}"/>',
    ]
    for body_xml in bodies:
        status, body = await raw_soap(cam.onvif_url.replace("device_service", "media_service"),
                                      body_xml, username=cam.username, password=cam.password)
        assert status == 200, body
        onvif_schemas.validate_body("media.wsdl", body)
