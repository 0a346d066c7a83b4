"""Slugs, topics and settings of the MQTT bridge, without a broker."""

from __future__ import annotations

from typing import Any

import pytest

from vms.config import ConfigError, load_settings
from vms.mqtt import MqttUrlError, parse_url
from vms.mqtt_messages import Topics, camera_infos, node_id, slugify, unique_slugs


def test_slugs_transliterate_and_stay_topic_safe() -> None:
    assert slugify("Gate A") == "gate-a"
    assert slugify("Ворота №2 (North)") == "vorota-2-north"
    assert slugify("Школа/#+ двор") == "shkola-dvor"
    assert slugify("Қақпа Әл-Фараби") == "qaqpa-al-farabi"
    assert slugify("###") == ""
    assert len(slugify("x" * 300)) == 48
    assert node_id("vms/site one") == "vms_site_one"


def test_a_clash_goes_to_the_lower_id() -> None:
    assert unique_slugs([(7, "Gate"), (3, "gate"), (9, "")], "camera") == {
        3: "gate", 7: "gate-7", 9: "camera-9"}
    rows = [(1, "u1", "Gate", 1, "Site", "", "", "", False),
            (2, "u2", "Gate", 1, "Site", "", "", "", True),  # archived: frees the slug
            (3, "u3", "Gate", 1, "Site", "", "", "", False),
            (4, "u4", "Gate", 2, "site", "", "", "", False)]
    infos = camera_infos(rows)
    assert [(infos[i].site_slug, infos[i].slug) for i in (1, 3, 4)] == [
        ("site", "gate"), ("site", "gate-3"), ("site-2", "gate")]


def test_discovery_topics_of_this_node_only() -> None:
    topics = Topics("vms/a", "homeassistant")
    assert topics.discovery_filter == "homeassistant/+/vms_a/+/config"
    assert topics.object_of("homeassistant/binary_sensor/vms_a/abc_motion/config") == "abc_motion"
    assert topics.object_of("homeassistant/binary_sensor/other/abc_motion/config") is None
    assert topics.object_of("homeassistant/binary_sensor/vms_a/abc_motion/state") is None


def test_broker_urls() -> None:
    assert parse_url("mqtt://127.0.0.1") == ("127.0.0.1", 1883, None, None, False)
    assert parse_url("mqtts://u%40x:p%2Fw@broker:9000") == ("broker", 9000, "u@x", "p/w", True)
    for bad in ("http://127.0.0.1", "127.0.0.1:1883", "mqtt://"):
        with pytest.raises(MqttUrlError, match=r"\[mqtt\] url"):
            parse_url(bad)
    with pytest.raises(MqttUrlError) as info:
        parse_url("tcp://user:hunter2@host")
    assert "hunter2" not in str(info.value)


def test_discovery_switch_in_file_and_environment(tmp_path: Any) -> None:
    config = tmp_path / "vms.toml"
    config.write_text("[mqtt]\ndiscovery = false\n")
    assert load_settings(config, env={}).mqtt.discovery is False
    assert load_settings(None, env={"VMS_MQTT_DISCOVERY": "no"}).mqtt.discovery is False
    assert load_settings(None, env={}).mqtt.discovery is True
    config.write_text('[mqtt]\ndiscovery = "maybe"\n')
    with pytest.raises(ConfigError, match="mqtt.discovery: expected true or false"):
        load_settings(config, env={})


async def test_a_bad_broker_url_stops_start_up(settings_factory: Any, aiohttp_client: Any) -> None:
    from vms.app import create_app

    app = create_app(settings_factory(**{"mqtt.url": "http://127.0.0.1:1883"}),
                     start_recorder=False)
    with pytest.raises(MqttUrlError, match="expected mqtt://host"):
        await aiohttp_client(app)
