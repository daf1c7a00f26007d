"""schemathesis, run against the live admin API through its own /openapi.json: no input may
produce a 5xx, and every response must match the documented schema."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from admin_kit import TOKEN, start_api
from producer.config import Settings


async def test_schemathesis_finds_no_server_error_or_schema_violation(
    settings: Settings, tmp_path: Path
) -> None:
    """Property-based requests to every operation (with the admin token): schemathesis's
    checks for server errors, status codes, content types and response schemas all pass."""
    client, _api = await start_api(settings)
    base = str(client.make_url("")).rstrip("/")
    try:
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{base}/openapi.json",
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "40",
            "--workers",
            "1",
            "--seed",
            "1",
            # An event stream answers forever: its 400/410/429 are tested in test_events_api.
            "--exclude-path",
            "/v1/events",
            "--suppress-health-check",
            "all",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 240)
    finally:
        await client.close()
    report = output.decode(errors="replace")
    (tmp_path / "schemathesis.txt").write_text(report)
    assert process.returncode == 0, report[-6000:]
