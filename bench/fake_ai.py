"""The tests' fake OpenAI server, run in a child process so it never shares a GIL with the load
generator; its controls and counters are reached through a pipe.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.connection import Connection
from typing import Any

COUNTERS = ("embedding_requests", "embedding_inputs", "chat_requests", "failed_requests")


def _serve(pipe: Connection) -> None:
    from tests.fake_openai_server import FakeOpenAIServer

    with FakeOpenAIServer() as server:
        pipe.send(server.openai_base_url)
        while True:
            command, *args = pipe.recv()
            if command == "set":
                setattr(server, args[0], args[1])
                pipe.send(None)
            elif command == "counters":
                pipe.send({name: getattr(server, name) for name in COUNTERS})
            elif command == "summarized":
                pipe.send(server.summarized)
            else:
                pipe.send(None)
                return


class FakeAI:
    """`with FakeAI() as ai:` → `ai.base_url`, `ai.set("chat_delay_seconds", 0.3)`, `ai.counters()`."""

    def __init__(self) -> None:
        self._pipe, child = multiprocessing.get_context("spawn").Pipe()
        self._process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(child,), name="fake-openai", daemon=True
        )
        self._process.start()
        self.base_url: str = self._pipe.recv()

    def _call(self, *message: Any) -> Any:
        self._pipe.send(message)
        return self._pipe.recv()

    def set(self, name: str, value: float) -> None:
        self._call("set", name, value)

    def counters(self) -> dict[str, int]:
        return self._call("counters")

    def summarized(self) -> dict[str, int]:
        """How many times each episode title was summarized."""
        return self._call("summarized")

    def close(self) -> None:
        if self._process.is_alive():
            self._call("stop")
            self._process.join(timeout=10)

    def __enter__(self) -> FakeAI:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before[name] for name in COUNTERS}
