"""No secret reaches a log line: a real dispatcher process and the admin API, driven with
every authorization kind and signing, failures included, have their output scanned."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from admin_kit import start_api
from dispatch_kit import DispatcherProcess, produce_events
from dispatcher.signing import generate_secret
from producer.config import Settings
from receiver import Received, Receiver

TOKEN, PASSWORD, HEADER_VALUE = "tok-LOGSCAN-1", "pw-LOGSCAN-2", "hv-LOGSCAN-3"


async def test_logs_of_a_run_with_every_secret_kind_hold_none_of_them(
    settings: Settings, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Streams with bearer, basic, custom-header authorization and two signing secrets are
    created through the API and deliver (some failing into retries and the DLQ); neither the
    dispatcher's log (debug level) nor the API process's output contains any secret."""
    signing = [generate_secret(), generate_secret()]
    receiver = await Receiver().start()
    first_answer = {"bearer": 503, "basic": 400}
    answered: set[tuple[str, str]] = set()

    def script(request: Received, _seen: int) -> int:
        key = (request.path, request.event_id)
        status = 200 if key in answered else first_answer.get(request.path, 200)
        answered.add(key)
        return status

    receiver.script = script
    client, api = await start_api(settings)
    dispatcher = DispatcherProcess(settings, tmp_path / "dispatcher.log")
    dispatcher.env["TIDINGS_LOG_LEVEL"] = "DEBUG"
    try:
        auths = {
            "bearer": {"method": "bearer", "token": TOKEN},
            "basic": {"method": "basic", "username": "ann", "password": PASSWORD},
            "custom": {
                "method": "custom_header",
                "header_key": "X-Key",
                "header_value": HEADER_VALUE,
            },
        }
        for path, auth in auths.items():
            status, body = await api.call(
                "POST",
                "/v1/event-streams",
                {
                    "name": path,
                    "subscriptions": [{"event_type": "*"}],
                    "destination": {
                        "type": "webhook",
                        "configuration": {
                            "webhook_endpoint": receiver.url(path),
                            "webhook_authorization": auth,
                        },
                    },
                    "signing_secrets": signing,
                },
            )
            assert status == 201, body
        dispatcher.start()
        ids = produce_events(settings, 4)
        await receiver.wait_until(
            lambda: all(receiver.delivered_ids(p) >= set(ids) for p in ("bearer", "custom")),
            timeout=60,
        )
    finally:
        dispatcher.terminate()
        await client.close()
        await receiver.stop()
    captured = capfd.readouterr()
    logs = (tmp_path / "dispatcher.log").read_text() + captured.out + captured.err
    assert "delivery_retrying" in logs, "the run logged a retry"
    assert "dead_lettered" in logs, "the run logged dead letters"
    secrets = [
        TOKEN,
        PASSWORD,
        HEADER_VALUE,
        *signing,
        *(s.removeprefix("whsec_") for s in signing),
    ]
    secrets.append(base64.b64encode(f"ann:{PASSWORD}".encode()).decode())
    for secret in secrets:
        assert secret not in logs
    assert all(secret not in body for body in api.bodies for secret in secrets)
