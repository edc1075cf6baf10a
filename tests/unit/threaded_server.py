"""An ASGI app served over mutual TLS on 127.0.0.1 from a thread (its own event loop), as
karri serves its node agent and node gateway."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import uvicorn

from karri.serving import MutualTls, Refusal, listen, server_config


class ThreadedServer:
    def __init__(self, app: Any, refusal: Refusal, tls: MutualTls) -> None:
        self.sock = listen("127.0.0.1", 0)
        self.url = f"https://127.0.0.1:{self.sock.getsockname()[1]}"
        config = server_config(app, refusal, tls)
        config.timeout_graceful_shutdown = 1  # a call still being answered is cut off
        self.server = uvicorn.Server(config)
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
