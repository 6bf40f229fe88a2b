"""Inside the sandbox: http://localhost:5000/validate, forwarded to the validation server outside.

Standard library only (any python3 >= 3.6), so it runs in any agent image.

  python3 validate_shim.py serve [--socket PATH] [--port 5000] [--pidfile PATH]
      Listens on 127.0.0.1:PORT and relays every connection, byte for byte, to the unix socket
      PATH (default $MLERAY_VALIDATE_SOCKET), where mleray's ValidationServer answers. Works with
      network none: only the loopback device and a bind-mounted socket are used. Returns once
      the port is bound (the relay goes on in a forked background process), so the agent
      started right after it can validate at once. The relay holds one 64 KB chunk per direction
      per connection, never a whole request; the server outside bounds size, time and concurrency.

  python3 validate_shim.py post FILE [URL]
      POSTs FILE as multipart form field `file` (what `curl -F file=@FILE` does), streamed from
      disk, and prints the answer: validate_submission.sh's fallback when curl is absent.
"""

import os
import socket
import sys
import threading
import time
import uuid

MAX_HEAD = 64 * 1024  # the most request-header bytes the shim reads when it answers itself


def _pipe(src, dst, drain=0):
    """Copies src to dst a chunk at a time. With `drain` (seconds): once dst refuses more (the server
    answered early, 413 or 429, and closed), what src still sends is read and dropped for that long,
    so the client finishes its upload and reads the answer instead of a reset connection."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            try:
                dst.sendall(data)
            except OSError:
                if not drain:
                    raise
                deadline = time.time() + drain
                while True:
                    left = deadline - time.time()
                    if left <= 0:
                        break
                    src.settimeout(left)
                    if not src.recv(65536):
                        break
                break
    except OSError:
        pass
    finally:
        for sock, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                sock.shutdown(how)
            except OSError:
                pass


def _drain_request(client):
    """Reads the request (headers and body, dropped as they come: at most 64 KB of headers, for at most
    10 s) so the client is not cut off mid-send."""
    client.settimeout(10)
    deadline = time.time() + 10
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = client.recv(65536)
            if not chunk or len(data) > MAX_HEAD or time.time() > deadline:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip() or 0)
            if name.strip().lower() == b"expect" and value.strip().lower() == b"100-continue":
                client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        left = length - len(body)
        while left > 0 and time.time() < deadline:
            chunk = client.recv(min(left, 65536))
            if not chunk:
                return
            left -= len(chunk)
    except (OSError, ValueError):
        pass


def _relay(client, socket_path):
    try:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if len(socket_path) > 100:  # too long for sun_path: go through the folder's descriptor
            dir_fd = os.open(os.path.dirname(socket_path), os.O_RDONLY)
            try:
                upstream.connect("/proc/self/fd/%d/%s" % (dir_fd, os.path.basename(socket_path)))
            finally:
                os.close(dir_fd)
        else:
            upstream.connect(socket_path)
    except OSError as err:
        _drain_request(client)
        details = str(err).replace('"', "'")
        body = ('{"error": "the validation server is not reachable", "details": "%s"}' % details).encode()
        client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: "
                       + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        client.close()
        return
    back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
    back.start()
    _pipe(client, upstream, drain=30)
    back.join()
    client.close()
    upstream.close()


def serve(socket_path, port=5000, daemonize=True, pidfile=None):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    if daemonize:
        pid = os.fork()
        if pid > 0:
            if pidfile:
                with open(pidfile, "w") as f:
                    f.write("%d\n" % pid)
            os._exit(0)  # the parent returns as soon as the port is bound
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            time.sleep(0.05)
            continue
        try:
            threading.Thread(target=_relay, args=(client, socket_path), daemon=True).start()
        except RuntimeError:  # no thread to be had (the agent's own pids limit): drop this one, keep serving
            client.close()


def post(path, url="http://localhost:5000/validate"):
    """POSTs the file as multipart field `file`, streamed from disk in 64 KB chunks."""
    from http.client import HTTPConnection
    from urllib.parse import urlsplit

    boundary = uuid.uuid4().hex
    name = os.path.basename(path).replace('"', "")
    head = (("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
             "Content-Type: application/octet-stream\r\n\r\n" % (boundary, name)).encode())
    tail = ("\r\n--%s--\r\n" % boundary).encode()
    try:
        size = os.path.getsize(path)
        f = open(path, "rb")
    except OSError as err:
        sys.stdout.write("cannot read %s: %s\n" % (path, err.strerror))
        return 1

    def chunks():
        yield head
        while True:
            data = f.read(65536)
            if not data:
                break
            yield data
        yield tail

    parts = urlsplit(url)
    try:
        conn = HTTPConnection(parts.hostname or "localhost", parts.port or 80, timeout=600)
        conn.request("POST", parts.path or "/validate", body=chunks(),
                     headers={"Content-Type": "multipart/form-data; boundary=" + boundary,
                              "Content-Length": str(len(head) + size + len(tail))})
        answer = conn.getresponse().read(1 << 20)
    except (OSError, ValueError) as err:
        try:  # the server may answer (413, 429) and close before the upload ends
            answer = conn.getresponse().read(1 << 20)
        except Exception:
            sys.stdout.write("could not reach %s: %s\n" % (url, err))
            return 1
    finally:
        f.close()
    sys.stdout.write(answer.decode("utf-8", "replace"))
    sys.stdout.flush()
    return 0


def main(argv):
    if len(argv) >= 1 and argv[0] == "post" and len(argv) in (2, 3):
        return post(*argv[1:])
    if len(argv) >= 1 and argv[0] == "serve":
        args = dict(zip(argv[1::2], argv[2::2]))
        socket_path = args.get("--socket") or os.environ.get("MLERAY_VALIDATE_SOCKET")
        if not socket_path:
            sys.stderr.write("validate_shim: no --socket and no MLERAY_VALIDATE_SOCKET\n")
            return 2
        serve(socket_path, int(args.get("--port", 5000)), daemonize=args.get("--foreground") is None,
              pidfile=args.get("--pidfile"))
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
