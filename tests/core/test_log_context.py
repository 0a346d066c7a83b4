"""JSON log lines carry the context fields a task bound (``camera_id``, ``stream``, ``run_id``),
inherited by the tasks and threads it starts afterwards and by no other task."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from vms.logs import ContextFilter, JsonFormatter, bind_log_context


def _line(message: str) -> dict[str, object]:
    record = logging.LogRecord("recorder.run", logging.INFO, __file__, 1, message, None, None)
    ContextFilter().filter(record)
    return json.loads(JsonFormatter().format(record))


async def test_context_fields_follow_the_task() -> None:
    lines: dict[str, dict[str, object]] = {}

    async def recorder_task() -> None:
        bind_log_context(camera_id=7, stream="main")
        lines["before run"] = _line("connecting")
        bind_log_context(run_id=42)

        async def indexer() -> None:
            lines["indexer"] = _line("segment indexed")

        await asyncio.create_task(indexer())
        lines["thread"] = await asyncio.to_thread(_line, "probed")
        bind_log_context(run_id=None)
        lines["between runs"] = _line("retry")

    async def other_task() -> None:
        lines["other"] = _line("unrelated")

    await asyncio.gather(recorder_task(), other_task())
    assert lines["before run"]["camera_id"] == 7 and lines["before run"]["stream"] == "main"
    assert "run_id" not in lines["before run"]
    for name in ("indexer", "thread"):
        assert (lines[name]["camera_id"], lines[name]["stream"], lines[name]["run_id"]) == \
            (7, "main", 42), name
    assert "run_id" not in lines["between runs"] and lines["between runs"]["camera_id"] == 7
    assert not {"camera_id", "stream", "run_id"} & set(lines["other"])


def test_unknown_context_field_is_refused() -> None:
    with pytest.raises(ValueError, match="camera"):
        bind_log_context(camera=1)
