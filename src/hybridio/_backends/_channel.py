"""A framed message channel to a worker over a connected socket, as lean as the event loop allows.

Messages are the worker protocol's frames (``_worker.HEADER`` then the payload). Each complete
frame is handed to ``on_frame(kind, payload)`` on the event loop as soon as it arrives; when the
channel ends, ``on_end(error)`` is called once (``error`` is None for a clean end of file).

On asyncio (and uvloop) the channel is an ``asyncio.Protocol`` on the socket's transport: frames
are parsed in ``data_received`` with no task, no checkpoint and no re-registration with the
selector per message (an anyio socket stream costs all three for every receive). Elsewhere
(trio) it is an anyio socket stream with a reader task.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any, Protocol, cast

import anyio
from anyio.abc import TaskGroup, UNIXSocketStream

from .._core._signal import running_on_trio
from ._worker import HEADER

__all__ = ["Channel", "FramingError", "open_channel"]

OnFrame = Callable[[int, bytes | bytearray], None]
OnEnd = Callable[[BaseException | None], None]

_HEADER_SIZE = HEADER.size
#: A large frame is written in slices of this size, each once the previous one has drained, so
#: the transport never holds a copy of more than a slice of it.
_SLICE = 1 << 20
_unpack_header = HEADER.unpack_from


class FramingError(Exception):
    """The peer sent something the protocol does not allow."""


class Channel(Protocol):
    """Sends frames; frames received go to ``on_frame``."""

    async def send(self, frame: bytes) -> None:
        """Send one frame (frames are sent in the order of the calls)."""

    async def send_parts(self, parts: list[Any]) -> None:
        """Send one large frame given as buffers, without joining or copying them.

        It goes out whole even if the caller is cancelled meanwhile: half a frame would break
        the channel for every later message.
        """

    async def send_eof(self) -> None:
        """Tell the peer nothing more will be sent."""

    async def aclose(self) -> None:
        """Close our end at once (a pending receive ends)."""


class _Frames:
    """Cuts a byte stream into frames."""

    __slots__ = ("_buffer", "_on_frame")

    def __init__(self, on_frame: OnFrame) -> None:
        self._buffer = bytearray()
        self._on_frame = on_frame

    def feed(self, data: bytes) -> None:
        buffer = self._buffer
        if not buffer and len(data) >= _HEADER_SIZE:
            # The common case, one whole frame in one read: no copy into the buffer.
            kind, length = _unpack_header(data)
            end = _HEADER_SIZE + length
            if len(data) == end:
                self._on_frame(kind, data[_HEADER_SIZE:])
                return
        buffer += data
        while len(buffer) >= _HEADER_SIZE:
            kind, length = _unpack_header(buffer)
            end = _HEADER_SIZE + length
            if len(buffer) < end:
                return
            if len(buffer) == end:  # the buffer holds this frame only: hand it over, no copy
                payload = buffer
                buffer = self._buffer = bytearray()
                del payload[:_HEADER_SIZE]
            else:
                payload = bytearray(memoryview(buffer)[_HEADER_SIZE:end])
                del buffer[:end]
            self._on_frame(kind, payload)


class _AsyncioChannel(asyncio.Protocol):
    def __init__(self, on_frame: OnFrame, on_end: OnEnd) -> None:
        self._frames = _Frames(on_frame)
        self._on_end: OnEnd | None = on_end
        self._transport: asyncio.Transport | None = None
        self._paused: asyncio.Future[None] | None = None
        self._large: asyncio.Task[None] | None = None  # a large frame going out in slices

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's does not subclass asyncio.Transport, but behaves as one).
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._frames.feed(data)
        except Exception as exc:  # noqa: BLE001 - a framing error ends the channel
            self._end(exc)
            if self._transport is not None:
                self._transport.abort()

    def eof_received(self) -> bool:
        return False  # close our end too

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc)
        if self._paused is not None and not self._paused.done():
            self._paused.set_result(None)

    def pause_writing(self) -> None:
        self._paused = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._paused is not None and not self._paused.done():
            self._paused.set_result(None)
        self._paused = None

    def _end(self, error: BaseException | None) -> None:
        on_end, self._on_end = self._on_end, None
        if on_end is not None:
            on_end(error)

    # -- Channel ------------------------------------------------------------------------------

    async def send(self, frame: bytes) -> None:
        while self._large is not None:  # never write into the middle of a large frame
            await asyncio.shield(self._large)
        transport = self._transport
        if transport is None or transport.is_closing():
            raise anyio.BrokenResourceError
        transport.write(frame)  # buffered by the transport: frames go out in call order
        paused = self._paused
        if paused is not None:  # the peer is slow to read: wait for the buffer to drain
            # Shielded: every sender waits on this one future, and cancelling one sender (its
            # caller timed out) must not cancel the future under the others.
            await asyncio.shield(paused)
            if transport.is_closing():
                raise anyio.BrokenResourceError

    async def send_parts(self, parts: list[Any]) -> None:
        while self._large is not None:
            await asyncio.shield(self._large)
        # A task of its own, awaited shielded: a cancelled caller leaves the frame whole.
        task = self._large = asyncio.get_running_loop().create_task(self._write_parts(parts))
        task.add_done_callback(_retrieve)  # a cancelled caller no longer waits for its outcome
        try:
            await asyncio.shield(task)
        finally:
            if task.done() and self._large is task:
                self._large = None

    async def _write_parts(self, parts: list[Any]) -> None:
        try:
            for part in parts:
                view = memoryview(part).cast("B")
                for start in range(0, len(view), _SLICE):
                    transport = self._transport
                    if transport is None or transport.is_closing():
                        raise anyio.BrokenResourceError
                    transport.write(view[start : start + _SLICE])
                    while self._paused is not None and not transport.is_closing():
                        await asyncio.shield(self._paused)
        finally:
            self._large = None

    async def send_eof(self) -> None:
        while self._large is not None:
            await asyncio.shield(self._large)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write_eof()

    async def aclose(self) -> None:
        if self._transport is not None:
            self._transport.abort()


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a task's exception as seen (its sender was cancelled; the channel's end tells)."""
    if not task.cancelled():
        task.exception()


class _StreamChannel:
    """The channel on any anyio backend: a socket stream and a reader task."""

    def __init__(self, stream: UNIXSocketStream, on_frame: OnFrame, on_end: OnEnd) -> None:
        self._stream = stream
        self._frames = _Frames(on_frame)
        self._on_end = on_end
        self._outbox: list[bytes | list[Any]] = []
        self._sending = False

    async def read(self) -> None:
        error: BaseException | None = None
        try:
            while True:
                self._frames.feed(await self._stream.receive())
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            pass
        except Exception as exc:  # noqa: BLE001 - a broken stream or a framing error
            error = exc
        finally:
            try:
                with anyio.CancelScope(shield=True):  # closing while cancelled must finish
                    await self._stream.aclose()
            finally:
                self._on_end(error)

    async def send(self, frame: bytes | list[Any]) -> None:
        if self._sending:  # another task is writing: its loop sends this one next, in order
            self._outbox.append(frame)
            return
        self._sending = True
        try:
            await self._write(frame)
            while self._outbox:
                frames, self._outbox = self._outbox, []
                if all(isinstance(f, bytes) for f in frames):
                    await self._stream.send(b"".join(frames))  # type: ignore[arg-type]
                else:
                    for queued in frames:
                        await self._write(queued)
        finally:
            self._sending = False

    async def send_parts(self, parts: list[Any]) -> None:
        await self.send(parts)

    async def _write(self, frame: bytes | list[Any]) -> None:
        if isinstance(frame, bytes):
            await self._stream.send(frame)
            return
        # Shielded: a cancelled caller leaves the frame whole (a killed worker ends the send).
        with anyio.CancelScope(shield=True):
            for part in frame:
                view = memoryview(part).cast("B")
                for start in range(0, len(view), _SLICE):
                    await self._stream.send(view[start : start + _SLICE])  # type: ignore[arg-type]

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()  # the reader's pending receive ends with it


async def open_channel(
    sock: socket.socket, on_frame: OnFrame, on_end: OnEnd, task_group: TaskGroup
) -> Channel:
    """Wrap a connected socket as a channel (see the module docstring)."""
    if not running_on_trio():
        loop = asyncio.get_running_loop()
        _, protocol = await loop.connect_accepted_socket(
            lambda: _AsyncioChannel(on_frame, on_end), sock=sock
        )
        return protocol
    channel = _StreamChannel(await UNIXSocketStream.from_socket(sock), on_frame, on_end)
    task_group.start_soon(channel.read, name="hybridio worker channel")
    return channel
