"""The Amazon EventBridge destination: each event becomes one ``PutEvents`` entry on the
stream's bus, and deliveries that are ready at the same moment share one call.

The engine calls :meth:`EventBridgeClient.deliver` once per job, many jobs at once; the client
gathers those calls for at most ``linger`` seconds (or until ten entries, or 256 KiB, are
waiting) and sends them as one ``PutEvents`` request, giving each caller the outcome of its
own entry. ``PutEvents`` can fail as a whole (an AWS error, a timeout, no connection) or per
entry (``FailedEntryCount``); both are classified from the error code by
:func:`classify_error_code`, so a partial failure retries or dead-letters only the entries
that failed.

The entry: ``Source`` is the stream's ``source`` or ``tidings.<a0tenant>``; ``DetailType`` is
the event type; ``Detail`` is the CloudEvents JSON exactly as a webhook receives it; ``Time`` is
the event's time; ``EventBusName`` is the bus ARN in the configured account. An entry larger
than EventBridge accepts is never sent: its outcome is permanent, so it is dead-lettered with
the reason.

Credentials come from the standard AWS chain (environment, shared files, instance role); the
stream configuration has no place for them, and nothing here logs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import aiohttp
import structlog
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from dispatcher.destinations import Delivery, refused
from dispatcher.outcome import Outcome, OutcomeKind, classify
from dispatcher.ssrf import CheckingResolver, DestinationPolicy, DestinationRefusedError
from dispatcher.streams import EventBridgeConfiguration, Stream

log = structlog.get_logger(__name__)

#: Entries one ``PutEvents`` call takes at most.
MAX_ENTRIES: Final = 10
#: The largest entry, and the largest sum of entries in one call, EventBridge accepts (256 KiB).
MAX_ENTRY_BYTES: Final = 256 * 1024
#: What a ``Time`` parameter counts towards the entry size, whatever its value.
TIME_BYTES: Final = 14
#: How long a delivery waits for others to share its ``PutEvents`` call, in seconds.
DEFAULT_LINGER: Final = 0.005

#: Per-entry and whole-call error codes worth retrying: AWS is busy or failed internally.
RETRYABLE_CODES: Final = frozenset(
    {
        "ThrottlingException",
        "InternalFailure",
        "InternalException",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        # Refreshable credentials (instance roles, SSO) are renewed by the chain.
        "ExpiredTokenException",
        "RequestExpired",
    }
)
#: Codes that mean the stream's bus or IAM setup is wrong: permanent, like a webhook's 4xx,
#: unless the stream set ``permanent_4xx`` to false (a bus or policy still being set up).
CONFIGURATION_CODES: Final = frozenset(
    {
        "AccessDeniedException",
        "NotAuthorizedForSourceException",
        "NotAuthorizedForDetailTypeException",
        "InvalidAccountIdException",
        "ResourceNotFoundException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "IncompleteSignature",
        "InvalidClientTokenId",
    }
)
#: Codes that reject the entry itself: sending the same bytes again cannot succeed.
INVALID_ENTRY_CODES: Final = frozenset(
    {"ValidationException", "InvalidArgument", "MalformedDetail", "RedactionFailure"}
)


@dataclass(frozen=True, slots=True)
class Entry:
    """One ``PutEventsRequestEntry``."""

    source: str
    detail_type: str
    detail: str
    time: datetime | None
    event_bus_name: str
    resources: tuple[str, ...] = ()

    def to_api(self) -> dict[str, Any]:
        """The entry as ``put_events(Entries=[...])`` takes it."""
        api: dict[str, Any] = {
            "Source": self.source,
            "DetailType": self.detail_type,
            "Detail": self.detail,
            "EventBusName": self.event_bus_name,
        }
        if self.time is not None:
            api["Time"] = self.time
        if self.resources:
            api["Resources"] = list(self.resources)
        return api


def entry_size(entry: Entry) -> int:
    """The entry's size as EventBridge counts it against its limit: 14 bytes for ``Time`` if
    set, plus the UTF-8 bytes of ``Source``, ``DetailType``, ``Detail`` and each resource.
    (``EventBusName`` does not count.)"""
    size = TIME_BYTES if entry.time is not None else 0
    size += len(entry.source.encode()) + len(entry.detail_type.encode())
    size += len(entry.detail.encode())
    return size + sum(len(resource.encode()) for resource in entry.resources)


def event_bus_arn(config: EventBridgeConfiguration) -> str:
    """The bus as an ARN in the configured account: a bus name alone would resolve in whatever
    account the credentials belong to. An ARN given in the configuration is used as is."""
    name = config.event_bus_name
    if name.startswith("arn:"):
        return name
    region = config.aws_region
    partition = "aws-cn" if region.startswith("cn-") else "aws"
    if region.startswith("us-gov-"):
        partition = "aws-us-gov"
    return f"arn:{partition}:events:{region}:{config.aws_account_id}:event-bus/{name}"


def build_entry(body: bytes, *, event_bus: str, source: str | None = None) -> Entry:
    """The entry for one rendered CloudEvent. ``source`` defaults to ``tidings.<a0tenant>``.
    Raises ValueError when the body is not a CloudEvent object with a type and tenant."""
    detail = body.decode()
    event = json.loads(detail)
    if not isinstance(event, dict):
        raise ValueError("the CloudEvent is not a JSON object")
    event_type, tenant, time = event.get("type"), event.get("a0tenant"), event.get("time")
    if not isinstance(event_type, str) or not event_type:
        raise ValueError("the CloudEvent has no type")
    if source is None:
        if not isinstance(tenant, str) or not tenant:
            raise ValueError("the CloudEvent has no a0tenant to derive the source from")
        source = f"tidings.{tenant}"
    return Entry(
        source=source,
        detail_type=event_type,
        detail=detail,
        time=datetime.fromisoformat(time) if isinstance(time, str) else None,
        event_bus_name=event_bus,
    )


def oversized(size: int) -> Outcome:
    """The permanent outcome of an entry EventBridge would reject for its size."""
    return Outcome(
        OutcomeKind.PERMANENT,
        None,
        f"event too large for EventBridge: the PutEvents entry is {size} bytes, "
        f"the limit is {MAX_ENTRY_BYTES} bytes (256 KiB)",
        None,
    )


def classify_error_code(
    code: str,
    message: str | None = None,
    *,
    http_status: int | None = None,
    permanent_4xx: bool = True,
) -> Outcome:
    """Classify an EventBridge error, of one entry (``http_status`` None) or of the whole call.

    Throttling and AWS-side failures are retryable; a wrong bus, account or permission is
    permanent unless ``permanent_4xx`` is false; an invalid entry is always permanent. An
    unknown code of a whole call is classified by its HTTP status; an unknown code of an
    entry is retried (the retry schedule bounds it).
    """
    error = f"{code}: {message}" if message else code
    if code in RETRYABLE_CODES:
        return Outcome(OutcomeKind.RETRYABLE, http_status, error, None)
    if code in INVALID_ENTRY_CODES or (code in CONFIGURATION_CODES and permanent_4xx):
        return Outcome(OutcomeKind.PERMANENT, http_status, error, None)
    if code in CONFIGURATION_CODES:
        return Outcome(OutcomeKind.RETRYABLE, http_status, error, None)
    if http_status is not None:
        return classify(http_status, error=error, permanent_4xx=permanent_4xx)
    return Outcome(OutcomeKind.RETRYABLE, None, error, None)


def outcomes_of_response(
    response: Mapping[str, Any], count: int, *, permanent_4xx: bool = True
) -> list[Outcome]:
    """One outcome per entry of a ``PutEvents`` answer: the entries that carry an
    ``ErrorCode`` failed, the others were accepted."""
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 200)
    results = response.get("Entries") or []
    if len(results) != count:
        error = f"PutEvents answered {len(results)} entries for {count}"
        return [Outcome(OutcomeKind.RETRYABLE, status, error, None)] * count
    return [
        classify_error_code(
            result["ErrorCode"], result.get("ErrorMessage"), permanent_4xx=permanent_4xx
        )
        if result.get("ErrorCode")
        else Outcome(OutcomeKind.SUCCESS, status, None, None)
        for result in results
    ]


@dataclass(slots=True)
class _Waiting:
    entry: Entry
    size: int
    outcome: asyncio.Future[Outcome]


def _refusal_in(exc: BaseException) -> DestinationRefusedError | None:
    """The outbound policy's refusal behind a connection error, if that is what it was
    (botocore wraps aiohttp's error, which wraps the resolver's)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, DestinationRefusedError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class EventBridgeClient:
    """Delivers to one stream's EventBridge bus, batching concurrent deliveries."""

    max_batch = MAX_ENTRIES

    def __init__(
        self,
        stream: Stream,
        *,
        policy: DestinationPolicy | None = None,
        linger: float = DEFAULT_LINGER,
    ) -> None:
        config = stream.destination.configuration
        assert isinstance(config, EventBridgeConfiguration)
        self._config = config
        #: Another endpoint than AWS's own is under the outbound policy, like a webhook: its
        #: text is checked here (a refusal dead-letters every delivery with the reason) and
        #: each address it resolves to when connecting (CheckingResolver).
        self._policy = policy or DestinationPolicy()
        self._endpoint_url: str | None = None
        self._refused: Outcome | None = None
        if config.endpoint_url is not None:
            try:
                self._endpoint_url = self._policy.check_url(config.endpoint_url).url
            except DestinationRefusedError as exc:
                self._refused = refused(str(exc))
        self._stream_id = stream.id
        self._bus = event_bus_arn(config)
        self._timeout = stream.delivery.timeout.total_seconds()
        self._permanent_4xx = stream.delivery.permanent_4xx
        self._linger = linger
        self._waiting: list[_Waiting] = []
        self._waiting_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._sends: set[asyncio.Task[None]] = set()
        self._aws: Any = None
        self._aws_exit: contextlib.AsyncExitStack | None = None
        self._aws_lock = asyncio.Lock()
        self._closed = False

    async def deliver(self, batch: Sequence[Delivery]) -> list[Outcome]:
        """Queue each delivery for the next ``PutEvents`` call and wait for its outcome."""
        loop = asyncio.get_running_loop()
        results: list[Outcome | asyncio.Future[Outcome]] = []
        for delivery in batch:
            if self._refused is not None:
                results.append(self._refused)
                continue
            if self._closed:
                results.append(Outcome(OutcomeKind.RETRYABLE, None, "client closed", None))
                continue
            try:
                entry = build_entry(delivery.body, event_bus=self._bus, source=self._config.source)
            except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
                results.append(Outcome(OutcomeKind.PERMANENT, None, f"bad CloudEvent: {exc}", None))
                continue
            size = entry_size(entry)
            if size > MAX_ENTRY_BYTES:
                results.append(oversized(size))
                continue
            future: asyncio.Future[Outcome] = loop.create_future()
            self._enqueue(_Waiting(entry, size, future))
            results.append(future)
        return [r if isinstance(r, Outcome) else await r for r in results]

    def _enqueue(self, waiting: _Waiting) -> None:
        if self._waiting and self._waiting_bytes + waiting.size > MAX_ENTRY_BYTES:
            self._flush()  # the call's entries together must stay within the limit too
        self._waiting.append(waiting)
        self._waiting_bytes += waiting.size
        if len(self._waiting) >= MAX_ENTRIES:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._linger, self._flush)

    def _flush(self) -> None:
        """Send what is waiting as one call, in a task of its own."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting, self._waiting_bytes = self._waiting, [], 0
        if waiting:
            task = asyncio.create_task(self._send(waiting))
            self._sends.add(task)
            task.add_done_callback(self._sends.discard)

    async def _send(self, waiting: list[_Waiting]) -> None:
        outcomes: list[Outcome] = []
        try:
            outcomes = await self._attempt([w.entry.to_api() for w in waiting])
        finally:
            if len(outcomes) != len(waiting):  # cancelled: the engine retries the jobs
                outcomes = [Outcome(OutcomeKind.RETRYABLE, None, "send cancelled", None)] * len(
                    waiting
                )
            for w, outcome in zip(waiting, outcomes, strict=True):
                if not w.outcome.done():
                    w.outcome.set_result(outcome)

    async def _attempt(self, entries: list[dict[str, Any]]) -> list[Outcome]:
        """One ``PutEvents`` call, its failures turned into outcomes."""

        def every(outcome: Outcome) -> list[Outcome]:
            return [outcome] * len(entries)

        try:
            async with asyncio.timeout(self._timeout):
                response = await self._put_events(entries)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return every(
                classify_error_code(
                    str(error.get("Code") or "UnknownError"),
                    error.get("Message"),
                    http_status=status,
                    permanent_4xx=self._permanent_4xx,
                )
            )
        except TimeoutError:
            return every(classify(None, timed_out=True, error=f"timeout after {self._timeout:g}s"))
        except (BotoCoreError, aiohttp.ClientError, OSError) as exc:
            refusal = _refusal_in(exc)
            if refusal is not None:  # the endpoint's name resolved to a forbidden address
                return every(refused(str(refusal)))
            return every(classify(None, error=f"{type(exc).__name__}: {exc}"))
        except Exception as exc:  # a bug must not stall the stream: retry and say so
            log.exception("eventbridge_put_failed", stream_id=self._stream_id)
            return every(classify(None, error=f"unexpected {type(exc).__name__}: {exc}"))
        return outcomes_of_response(response, len(entries), permanent_4xx=self._permanent_4xx)

    async def _put_events(self, entries: list[dict[str, Any]]) -> Mapping[str, Any]:
        """The AWS call itself (the seam tests wrap to inject failures)."""
        aws = await self._client()
        result: Mapping[str, Any] = await aws.put_events(Entries=entries)
        return result

    async def _client(self) -> Any:
        """The aiobotocore client, created on first use."""
        async with self._aws_lock:
            if self._aws is None:
                config = AioConfig(
                    connect_timeout=min(self._timeout, 10.0),
                    read_timeout=self._timeout,
                    # One HTTP request per attempt: retrying is the retry tiers' job, and the
                    # SDK's own retries would outlast the delivery timeout unseen.
                    retries={"mode": "standard", "total_max_attempts": 1},
                    # Only an endpoint the user chose is checked: AWS's own regional name
                    # may rightly resolve to private addresses (a VPC interface endpoint).
                    connector_args=(
                        {"resolver": CheckingResolver(self._policy)}
                        if self._endpoint_url is not None
                        else None
                    ),
                )
                stack = contextlib.AsyncExitStack()
                self._aws = await stack.enter_async_context(
                    get_session().create_client(
                        "events",
                        region_name=self._config.aws_region,
                        endpoint_url=self._endpoint_url,
                        config=config,
                    )
                )
                self._aws_exit = stack
            return self._aws

    async def close(self) -> None:
        """Send what is waiting, wait for calls in flight, close the AWS client. Safe to call
        twice; a delivery after close is answered retryable (another client will take it)."""
        self._closed = True
        self._flush()
        if self._sends:
            await asyncio.gather(*self._sends, return_exceptions=True)
        async with self._aws_lock:
            if self._aws_exit is not None:
                await self._aws_exit.aclose()
            self._aws, self._aws_exit = None, None
