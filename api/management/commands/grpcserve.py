"""`manage.py grpcserve`: serve the chat service over gRPC (api/rpc/chat.proto) until Ctrl-C or SIGTERM."""

import asyncio

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from api.rpc.server import serve


class Command(BaseCommand):
    help = (
        "Serve the chat service over gRPC (api/rpc/chat.proto), authenticated by personal API keys, "
        "on CHAT_GRPC_HOST:CHAT_GRPC_PORT (default 127.0.0.1:50051)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", help="address to listen on (default: CHAT_GRPC_HOST, 127.0.0.1)")
        parser.add_argument("--port", type=int, help="port (default: CHAT_GRPC_PORT, 50051; 0 picks a free one)")

    def handle(self, *args: object, host: str | None, port: int | None, **options: object) -> None:
        host = host or settings.CHAT_GRPC_HOST
        port = settings.CHAT_GRPC_PORT if port is None else port
        if not 0 <= port <= 65535:
            raise CommandError(f"--port must be from 0 to 65535, not {port}.")

        def ready(bound: int) -> None:
            # Tests and scripts read the port from this line (with --port 0).
            self.stdout.write(f"gRPC chat service listening on {host}:{bound}")
            self.stdout.flush()

        try:
            asyncio.run(serve(host=host, port=port, on_ready=ready))
        except OSError as error:
            raise CommandError(str(error)) from error
