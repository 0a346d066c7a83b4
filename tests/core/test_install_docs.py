"""Running it for real: the shipped systemd unit verifies, the README points only at files in the
repository, ``vms --help`` lists every command, and a command that only reads never makes an empty
database in a folder it guessed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd; scripts/test.sh "
                    "installs it)")
    text = (REPO / "packaging" / "vms.service").read_text()
    assert "ExecStart=/opt/vms/venv/bin/vms serve --config /etc/vms/vms.toml" in text
    # verify checks that ExecStart's program exists: point it at this machine's install
    vms = Path(sys.executable).parent / "vms"
    program = str(vms) if vms.exists() else f"{sys.executable} -m vms"
    unit = tmp_path / "vms.service"
    unit.write_text(text.replace("/opt/vms/venv/bin/vms", program))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60, check=False)
    problems = [line for line in (done.stderr + done.stdout).splitlines()
                if str(unit) in line or "vms.service" in line]
    assert done.returncode == 0 and not problems, done.stderr + done.stdout
    # and a broken unit is caught (the check can fail)
    unit.write_text(text.replace("/opt/vms/venv/bin/vms", "/nonexistent/vms"))
    broken = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert broken.returncode != 0


def test_readme_points_only_at_files_in_the_repository() -> None:
    text = (REPO / "README.md").read_text()
    assert "DESIGN.md" not in text  # the design card is not part of the repository
    links = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text)
    assert "packaging/vms.service" in links and "packaging/Caddyfile" in links
    missing = [link for link in links if not (REPO / link).exists()]
    assert not missing, missing
    # paths named in backticks that look like files of ours
    named = re.findall(r"`((?:packaging|docs|scripts|tests|bench|web|vms|recorder|onvif_bridge|"
                       r"camsim|migrations)/[\w./-]+)`", text)
    missing = [path for path in named if not (REPO / path).exists()]
    assert not missing, missing
    for name in ("nginx-vms.conf", "Caddyfile"):
        config = (REPO / "packaging" / name).read_text()
        assert 'trusted_proxies = ["127.0.0.1/32"]' in config  # consistent with the README
        assert "127.0.0.1:8080" in config


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    from vms.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    commands = dict(sub.choices)  # type: ignore[attr-defined]
    helps = {c.dest: c.help for c in sub._choices_actions}  # type: ignore[attr-defined]
    text = parser.format_help()
    listed = re.findall(r"^    (\S+)", text, flags=re.MULTILINE)
    assert listed == list(commands), (listed, list(commands))
    for name, command in commands.items():
        assert helps.get(name), f"vms {name} has no one-line help"
        assert command.format_help().startswith(f"usage: vms {name}")
    assert "vms COMMAND --help" in text


def test_a_read_only_command_never_makes_a_database(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from vms.cli import main

    monkeypatch.chdir(tmp_path)  # no ./vms.toml here
    monkeypatch.delenv("VMS_CONFIG", raising=False)
    for argv in (["user", "list"], ["site", "list"], ["camera", "list", "--json"],
                 ["user", "token", "list"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "no database at" in err and "--config" in err, err
    config = tmp_path / "elsewhere" / "vms.toml"
    config.parent.mkdir()
    config.write_text('data_dir = "./data"\n')
    assert main(["user", "list", "--config", str(config)]) == 2
    assert str(config) in capsys.readouterr().err
    assert not (tmp_path / "data").exists() and not (config.parent / "data").exists()
    # a command that writes still makes its database where the config says
    assert main(["site", "add", "Courtyard 7", "--config", str(config)]) == 0
    assert (config.parent / "data" / "vms.sqlite3").exists()
    assert main(["site", "list", "--config", str(config), "--json"]) == 0
    assert "Courtyard 7" in capsys.readouterr().out
