"""A raw HTTP/2 client for tests/adversarial.rs: sends requests that a conforming client never
would (CR/LF in values, pseudo-header abuse, connection-specific headers, content-length that
disagrees with the DATA), with the h2 library's own validation switched off.

Reads {"port": N, "requests": [{"headers": [[name, value], ...], "body": "..."}]} on stdin and
prints a JSON list with one outcome per request: the response status as a string, or "reset"
when the stream or the connection was refused without an answer. Each request has its own
connection, so one refusal cannot change the next row's outcome."""

import json
import socket
import sys

import h2.config
import h2.connection
import h2.events

TIMEOUT_SECONDS = 5.0


def send(port, headers, body):
    config = h2.config.H2Configuration(
        client_side=True,
        header_encoding="utf-8",
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
    )
    connection = h2.connection.H2Connection(config=config)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_SECONDS) as sock:
        connection.initiate_connection()
        stream = connection.get_next_available_stream_id()
        connection.send_headers(stream, [tuple(pair) for pair in headers], end_stream=not body)
        if body:
            connection.send_data(stream, body.encode(), end_stream=True)
        sock.sendall(connection.data_to_send())
        status = None
        while True:
            try:
                data = sock.recv(65536)
            except (socket.timeout, ConnectionError):
                return status or "reset"
            if not data:
                return status or "reset"
            try:
                events = connection.receive_data(data)
            except Exception:  # a protocol error on our side of a broken exchange
                return status or "reset"
            for event in events:
                if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream:
                    status = dict(event.headers).get(":status")
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream:
                    return status or "reset"
                elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream:
                    return status or "reset"
                elif isinstance(event, h2.events.ConnectionTerminated):
                    return status or "reset"
            outgoing = connection.data_to_send()
            if outgoing:
                sock.sendall(outgoing)


def main():
    rows = json.load(sys.stdin)
    outcomes = [send(rows["port"], r["headers"], r["body"]) for r in rows["requests"]]
    print(json.dumps(outcomes))


main()
