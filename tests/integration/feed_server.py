"""A local HTTP server for the feed tests: 127.0.0.1, port 0, scripted answers.

``FeedServer({path: [Answer, ...]})``: the n-th request to a path gets the n-th
answer (the last one repeats). An answer with an ``etag`` is a 304 to a request
whose ``If-None-Match`` names it. Every request is logged with its headers
(``requests(path)``), so a test can check what the client sent and when.
"""
import dataclasses
import http.server
import threading
import time

__all__ = ["Answer", "FeedServer"]


@dataclasses.dataclass(frozen=True)
class Answer:
    body: bytes = b""
    status: int = 200
    content_type: str = "application/rss+xml"
    etag: str = None
    headers: tuple = ()  # extra (name, value) pairs
    delay_s: float = 0.0


class FeedServer:
    def __init__(self, routes):
        self.routes = routes
        self.log = []  # (path, {header: value})
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server._answer(self)

            def log_message(self, *args):  # quiet
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def requests(self, path):
        with self._lock:
            return [headers for p, headers in self.log if p == path]

    def _answer(self, handler):
        path = handler.path
        with self._lock:
            seen = sum(1 for p, _ in self.log if p == path)
            self.log.append((path, {k.lower(): v for k, v in handler.headers.items()}))
        answers = self.routes.get(path)
        if not answers:
            handler.send_response(404)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        answer = answers[min(seen, len(answers) - 1)]
        if answer.delay_s:
            time.sleep(answer.delay_s)
        if answer.etag and handler.headers.get("If-None-Match") == answer.etag:
            handler.send_response(304)
            handler.send_header("ETag", answer.etag)
            handler.end_headers()
            return
        handler.send_response(answer.status)
        handler.send_header("Content-Type", answer.content_type)
        handler.send_header("Content-Length", str(len(answer.body)))
        if answer.etag:
            handler.send_header("ETag", answer.etag)
        for name, value in answer.headers:
            handler.send_header(name, value)
        handler.end_headers()
        try:
            handler.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (size limit)
            pass

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()
