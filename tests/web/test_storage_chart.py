"""The storage page's server-side chart and byte sizes."""

from __future__ import annotations

from web.storage_chart import DAY_US, format_bytes, usage_chart


def test_chart_lines_cap_and_ticks() -> None:
    now = 100 * DAY_US
    samples = [{"at_us": now - (10 - i) * DAY_US, "used_bytes": i * 100, "free_bytes": 2000 - i * 150,
                "total_bytes": 2000} for i in range(10)]
    chart = usage_chart(samples, now, 30, max_bytes=1000, width=300, height=100)
    assert chart.points == 10 and chart.top_bytes == 2000
    assert chart.used_path.startswith("M200.0,100.0 ") and chart.used_path.count("L") == 9
    assert chart.used_path.endswith("L290.0,55.0")  # 9 days ago … 1 day ago; 900 of 2000 bytes
    assert chart.disk_path.endswith("L290.0,32.5")  # 2000 - 650 used on the disk
    assert chart.last_used == (290.0, 55.0) and chart.cap_y == 50.0
    assert [y for y, _ in chart.y_ticks] == [100.0, 75.0, 50.0, 25.0, 0.0]
    assert chart.x_ticks[0] == (0.0, now - 30 * DAY_US) and chart.x_ticks[-1] == (300.0, now)
    empty = usage_chart([], now)
    assert empty.points == 0 and empty.used_path == "" and empty.last_used is None
    assert empty.cap_y is None


def test_format_bytes() -> None:
    assert format_bytes(None) == "—"
    assert format_bytes(0) == "0 B" and format_bytes(1023) == "1023 B"
    assert format_bytes(1536) == "1.5 KB" and format_bytes(5 * 1024**3) == "5.0 GB"
