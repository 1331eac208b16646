"""serving.OneSendResponse: an answer's headers and whole body in one send, the same bytes as
gunicorn's own response; chunked, long and empty answers as gunicorn writes them."""
import socket

import pytest
from gunicorn.config import Config
from gunicorn.http import wsgi
from gunicorn.http.parser import RequestParser

import serving


class CountedSocket:
    """A real socket whose sendall calls are counted."""

    def __init__(self, sock):
        self.sock = sock
        self.sends = 0

    def sendall(self, data):
        self.sends += 1
        return self.sock.sendall(data)

    def __getattr__(self, name):
        return getattr(self.sock, name)


def _answer(response_class, headers, chunks):
    """(sends, bytes on the wire) of one answer to a real GET, written by `response_class`."""
    server_end, client_end = socket.socketpair()
    with server_end, client_end:
        client_end.sendall(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        cfg = Config()
        request = next(iter(RequestParser(cfg, server_end, ("127.0.0.1", 1))))
        counted = CountedSocket(server_end)
        response, _ = wsgi.create(request, counted, ("127.0.0.1", 1), ("127.0.0.1", 2), cfg,
                                  response_class=response_class)
        response.start_response("200 OK", headers)
        for chunk in chunks:
            response.write(chunk)
        response.close()
        server_end.shutdown(socket.SHUT_WR)
        wire = b""
        while data := client_end.recv(1 << 20):
            wire += data
    # The Date header may differ by a second between the two
    return counted.sends, b"\r\n".join(line for line in wire.split(b"\r\n") if not line.startswith(b"Date: "))


CASES = {
    "whole body": ([("Content-Type", "application/json"), ("Content-Length", "11")], [b'{"ok":true}'], 1),
    "empty body": ([("Content-Length", "0")], [], 1),
    "longer than its length": ([("Content-Length", "3")], [b"abcdef"], 2),
    "streamed": ([("Content-Type", "text/plain")], [b"one", b"two"], 4),  # chunked: no Content-Length
    "long": ([("Content-Length", str(serving.ONE_SEND_BYTES + 1))], [b"x" * (serving.ONE_SEND_BYTES + 1)], 2),
    "two parts": ([("Content-Length", "6")], [b"abc", b"def"], 2),
}


@pytest.mark.parametrize("case", CASES)
def test_an_answer_goes_in_one_send_with_gunicorns_bytes(case):
    headers, chunks, sends = CASES[case]
    ours = _answer(serving.OneSendResponse, headers, chunks)
    theirs = _answer(wsgi.Response, headers, chunks)
    assert ours[1] == theirs[1]
    assert ours[0] == sends
    if sends == 1 and chunks:
        assert theirs[0] == 2  # gunicorn's headers, then its body
