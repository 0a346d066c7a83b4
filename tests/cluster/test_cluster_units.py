"""The cluster's pure parts: shares by camera count under caps, node-to-node signatures, and the
``[cluster]`` section refused with SQLite (a cluster needs PostgreSQL)."""

from __future__ import annotations

import pytest

from vms.cluster import sign, signed_headers, targets, verify
from vms.config import ConfigError, load_settings


def test_shares_cover_every_camera_and_respect_caps() -> None:
    assert targets([("a", 0), ("b", 0), ("c", 0)], 12) == {"a": 4, "b": 4, "c": 4}
    assert targets([("a", 0), ("b", 0), ("c", 0)], 13) == {"a": 5, "b": 4, "c": 4}
    shares = targets([("a", 2), ("b", 0), ("c", 0)], 12)
    assert shares["a"] == 2 and sum(shares.values()) >= 12 and max(shares.values()) == 5
    assert targets([("a", 3), ("b", 3)], 10) == {"a": 3, "b": 3}  # the caps win: 4 unrecorded
    assert targets([], 5) == {}


def test_signatures_bind_node_method_path_and_time() -> None:
    secret = b"k" * 32
    headers = signed_headers(secret, "a", "GET", "/api/v1/cameras/1/media/2", now_s=1000)
    assert verify(secret, headers, "GET", "/api/v1/cameras/1/media/2", now_s=1100) == "a"
    assert verify(secret, headers, "HEAD", "/api/v1/cameras/1/media/2", now_s=1100) is None
    assert verify(secret, headers, "GET", "/api/v1/cameras/1/media/3", now_s=1100) is None
    assert verify(secret, headers, "GET", "/api/v1/cameras/1/media/2", now_s=1400) is None
    assert verify(b"x" * 32, headers, "GET", "/api/v1/cameras/1/media/2", now_s=1000) is None
    forged = {**headers, "X-VMS-Node": "b"}
    assert verify(secret, forged, "GET", "/api/v1/cameras/1/media/2", now_s=1000) is None
    assert sign(secret, "a", "get", "/x", 1) == sign(secret, "a", "GET", "/x", 1)


def test_cluster_settings_need_postgresql(tmp_path) -> None:
    config = tmp_path / "vms.toml"
    config.write_text('[cluster]\nnode_name = "a"\n')
    with pytest.raises(ConfigError, match=r"\[cluster\] node_name: a cluster needs a PostgreSQL"):
        load_settings(config, env={})
    with pytest.raises(ConfigError, match="lease_seconds"):
        load_settings(config, env={"VMS_CLUSTER_LEASE_SECONDS": "5"})
    pg = tmp_path / "pg.toml"
    pg.write_text('[database]\nurl = "postgresql://u@127.0.0.1/db"\n'
                  '[cluster]\nnode_name = "a"\nadvertise_url = "http://10.0.0.5:8080/"\n')
    settings = load_settings(pg, env={})
    assert settings.clustered and settings.node_name == "a"
    assert settings.advertise_url == "http://10.0.0.5:8080"
    plain = load_settings(None, env={})
    assert not plain.clustered and plain.advertise_url == "http://127.0.0.1:8080"
