"""``tidings secrets rotate`` never undoes a change made through the API meanwhile: a PATCH
landing between the rotation's read of a stream and its rewrite (injected by the rotation's
hook) survives, and no reader ever sees the stream go back to its state before the PATCH."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import SecretStr

from admin.secrets_rotation import rotate_secrets
from admin_kit import start_api
from dispatch_kit import register, until, webhook_stream
from dispatcher.registry import RegistryView
from dispatcher.secret_box import generate_key
from dispatcher.streams import BearerAuthorization, Stream
from producer.config import Settings


async def _caught_up_view(settings: Settings) -> tuple[RegistryView, asyncio.Task[None]]:
    view = RegistryView(settings)
    task = asyncio.create_task(view.run())
    await view.caught_up.wait()
    return view, task


async def test_a_patch_between_read_and_rewrite_survives_the_rotation(settings: Settings) -> None:
    """Key A to key B: the API changes the stream's name and token after the rotation read
    it. The rotation's rewrite based on the old state is ignored by every reader, the
    rotation retries on the new state, and in the end key B alone reads the patched stream."""
    old_key, new_key = generate_key(), generate_key()
    old = settings.model_copy(update={"secrets_key": SecretStr(old_key)})
    rotating = settings.model_copy(
        update={"secrets_key": SecretStr(new_key), "secrets_previous_keys": [SecretStr(old_key)]}
    )
    url = "https://127.0.0.1/hook"
    (stream,) = register(
        old,
        webhook_stream(
            url,
            name="original",
            configuration={"webhook_authorization": {"method": "bearer", "token": "token-A"}},
        ),
    )

    follower = RegistryView(rotating)
    names: list[str] = []

    async def record(changed: set[str]) -> None:
        if stream.id in changed and stream.id in follower.streams:
            names.append(follower.streams[stream.id].name)

    following = asyncio.create_task(follower.run(record))
    client, api = await start_api(rotating)
    patches: list[Any] = []

    async def patch_once(read: Stream) -> None:
        """The concurrent change: through the API, after the rotation read ``read``."""
        if patches:
            return
        assert read.name == "original"
        patches.append(
            await api.ok(
                "PATCH",
                f"/v1/event-streams/{stream.id}",
                {
                    "name": "patched",
                    "destination": {
                        "type": "webhook",
                        "configuration": {
                            "webhook_endpoint": url,
                            "webhook_authorization": {"method": "bearer", "token": "token-B"},
                        },
                    },
                },
            )
        )

    try:
        report = await rotate_secrets(rotating, before_write=patch_once)
        assert report.rotated == [stream.id]
        assert report.conflicts == 1, "the rewrite based on the read state lost, then retried"
        assert report.gave_up == []

        only_new = settings.model_copy(update={"secrets_key": SecretStr(new_key)})
        fresh, fresh_task = await _caught_up_view(only_new)
        fresh.stop()
        await fresh_task
        final = fresh.streams[stream.id]
        assert final.name == "patched"
        auth = final.destination.configuration.webhook_authorization  # type: ignore[union-attr]
        assert isinstance(auth, BearerAuthorization)
        assert auth.token.get_secret_value() == "token-B"

        await until(lambda: follower.order.offsets.get(stream.id) == fresh.order.offsets[stream.id])
        assert names[names.index("patched") :] == ["patched", "patched"], names
        shown = await api.ok("GET", f"/v1/event-streams/{stream.id}")
        assert shown["name"] == "patched"
    finally:
        follower.stop()
        await following
        await client.close()
