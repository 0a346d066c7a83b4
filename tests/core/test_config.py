"""vms.toml parsing: types, unknown keys, env overrides, and the docs naming every setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vms.config import SETTINGS, VOLUME_SETTINGS, ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vms.toml"
    path.write_text(text)
    return path


def test_example_config_at_the_root_loads() -> None:
    settings = load_settings(ROOT / "vms.toml", env={})
    assert settings.server.port == 8080
    assert settings.recording.segment_seconds == 60
    assert settings.volumes[0].name == "main"
    assert settings.volumes[0].path.is_absolute()
    assert settings.database_url.startswith("sqlite:///")


def test_defaults_without_a_file(tmp_path: Path) -> None:
    settings = load_settings(None, env={}, overrides={"data_dir": tmp_path})
    assert settings.data_dir == tmp_path
    assert settings.volumes[0].path == tmp_path / "recordings"
    assert settings.database_url == f"sqlite:///{tmp_path / 'vms.sqlite3'}"


@pytest.mark.parametrize(("text", "expected"), [
    ("[server]\nport = \"eighty\"\n", "server.port: expected an integer, got str 'eighty'"),
    ("[server]\nprot = 80\n", "unknown key server.prot"),
    ("colour = 1\n", "unknown key 'colour'"),
    ("[recording]\nsegment_seconds = 0\n", "recording.segment_seconds: must be >= 1"),
    ("[logging]\nlevel = \"LOUD\"\n", "logging.level: expected one of DEBUG, INFO"),
    ("[server\nport = 1\n", "not valid TOML"),
    ("[[storage.volumes]]\nname = \"a\"\n", "storage.volumes[0] needs 'path'"),
    ("[[storage.volumes]]\nname = \"a\"\npath = \"x\"\nsize = 1\n",
     "unknown key storage.volumes[0].size"),
    ("server = 5\n", "[server] must be a table"),
])
def test_bad_config_names_file_key_and_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert str(path) in str(info.value)
    assert expected in str(info.value)


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 8080\n")
    settings = load_settings(path, env={"VMS_SERVER_PORT": "9001", "VMS_DATA_DIR": "/srv/vms",
                                        "VMS_DATABASE_URL": "postgresql://u@h/db"})
    assert settings.server.port == 9001
    assert settings.data_dir == Path("/srv/vms")
    assert settings.database_url == "postgresql://u@h/db"
    with pytest.raises(ConfigError, match="environment VMS_SERVER_PORT: server.port: expected an integer"):
        load_settings(path, env={"VMS_SERVER_PORT": "x"})


def test_relative_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "vms.toml"
    path.write_text('data_dir = "../var"\n[[storage.volumes]]\nname = "a"\npath = "rec"\n')
    settings = load_settings(path, env={})
    assert settings.data_dir == (tmp_path / "var").resolve()
    assert settings.volumes[0].path == (tmp_path / "etc" / "rec").resolve()


def test_every_setting_is_in_the_docs_and_the_example() -> None:
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / "vms.toml").read_text()
    for setting in (*SETTINGS, *VOLUME_SETTINGS):
        assert f"`{setting.dotted}`" in readme, f"{setting.dotted} missing from README reference"
        assert setting.key in example, f"{setting.key} missing from vms.toml example"
    for setting in SETTINGS:
        assert setting.env_name in readme, f"{setting.env_name} missing from README"


def test_malformed_config_exits_nonzero_with_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = \"x\"\n")
    proc = subprocess.run([sys.executable, "-m", "vms.cli", "migrate", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(path) in lines[0] and "server.port" in lines[0]
