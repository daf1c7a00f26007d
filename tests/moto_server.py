"""moto's server mode for tests: a real AWS API (EventBridge, SQS) over HTTP on 127.0.0.1, in a
child process, plus the few AWS calls the EventBridge tests make to set up buses and read
queues back (async, through aiobotocore, so an in-process dispatcher keeps running)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from aiobotocore.session import get_session

from admin.broker import free_port
from dispatcher.streams import Stream

#: The account moto serves when no other is asked for.
ACCOUNT_ID = "123456789012"
REGION = "eu-west-1"
#: A secret no test output may ever show (the dispatcher gets it from the environment).
SECRET_ACCESS_KEY = f"tidings-test-secret-{uuid.uuid4().hex}"
#: The standard AWS chain resolves these first; files and instance metadata are ruled out.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


class MotoServer:
    """``python -m moto.server`` on a free port of 127.0.0.1."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """The URL AWS clients take as ``endpoint_url``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until it answers; on failure, show its log."""
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **AWS_ENV},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1),
            ):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto did not start; its log:\n{self.log_path.read_text()[-4000:]}")

    def stop(self) -> None:
        """Stop the server. Safe to call twice."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @classmethod
    @contextlib.contextmanager
    def running(cls, log_path: Path) -> Iterator[MotoServer]:
        """A started server, stopped at the end."""
        server = cls(log_path)
        server.start()
        try:
            yield server
        finally:
            server.stop()


def eventbridge_stream(
    bus: str,
    *,
    endpoint_url: str | None = None,
    types: list[str] | None = None,
    configuration: dict[str, Any] | None = None,
    **fields: Any,
) -> Stream:
    """An EventBridge stream to ``bus`` of moto's account (all event types unless ``types``)."""
    return Stream.model_validate(
        {
            "name": fields.pop("name", "eventbridge test stream"),
            "subscriptions": [{"event_type": t} for t in (types or ["*"])],
            "destination": {
                "type": "eventbridge",
                "configuration": {
                    "aws_account_id": ACCOUNT_ID,
                    "aws_region": REGION,
                    "event_bus_name": bus,
                    "endpoint_url": endpoint_url,
                    **(configuration or {}),
                },
            },
            **fields,
        }
    )


class Aws:
    """EventBridge and SQS clients of one moto server, for test set-up and checks."""

    def __init__(self, events: Any, sqs: Any) -> None:
        self.events = events
        self.sqs = sqs

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, endpoint: str) -> AsyncIterator[Aws]:
        """Clients for ``endpoint``, closed at the end."""
        session = get_session()
        kwargs = {"region_name": REGION, "endpoint_url": endpoint}
        async with (
            session.create_client("events", **kwargs) as events,
            session.create_client("sqs", **kwargs) as sqs,
        ):
            yield cls(events, sqs)

    async def create_bus(self) -> str:
        """A fresh custom event bus; returns its name."""
        name = f"tidings-{uuid.uuid4().hex[:12]}"
        await self.events.create_event_bus(Name=name)
        return name

    async def queue_for_rule(self, bus: str, pattern: dict[str, Any]) -> str:
        """A fresh SQS queue that receives what a new rule with ``pattern`` matches on
        ``bus``; returns the queue URL."""
        name = f"tidings-{uuid.uuid4().hex[:12]}"
        url: str = (await self.sqs.create_queue(QueueName=name))["QueueUrl"]
        attributes = await self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        queue_arn = attributes["Attributes"]["QueueArn"]
        rule = await self.events.put_rule(
            Name=name, EventBusName=bus, EventPattern=json.dumps(pattern)
        )
        # What real AWS needs for the rule to write to the queue (moto does not check it).
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "events.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": queue_arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": rule["RuleArn"]}},
                }
            ],
        }
        await self.sqs.set_queue_attributes(QueueUrl=url, Attributes={"Policy": json.dumps(policy)})
        await self.events.put_targets(
            Rule=name, EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}]
        )
        return url

    async def receive(
        self, queue_url: str, count: int, timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """Read (and delete) messages until ``count`` arrived or ``timeout`` passed; returns
        the EventBridge events they carry, parsed."""
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(events) < count and time.monotonic() < deadline:
            answer = await self.sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            for message in answer.get("Messages", []):
                events.append(json.loads(message["Body"]))
                await self.sqs.delete_message(
                    QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        return events
