"""Starts the real stimloop-server binary on a free loopback port for a test."""

import os
import selectors
import shutil
import subprocess
import tempfile
import threading
import time

_LISTENING = "stimloop-server listening on "


def server_binary():
    path = os.environ.get("STIMLOOP_SERVER")
    if not path:
        raise RuntimeError("set STIMLOOP_SERVER to the stimloop-server binary "
                           "(ctest does: <build>/server/stimloop-server)")
    return path


class ServerProcess:
    """stimloop-server --listen=127.0.0.1:0 on a fresh data directory.

    start() returns once the server printed its address; stop() kills it and
    removes the data directory. Output is kept in `log` for failure messages.
    `extra_args` are appended to the server's command line (e.g. TLS flags).
    """

    def __init__(self, start_timeout=60.0, extra_args=()):
        self.start_timeout = start_timeout
        self.extra_args = list(extra_args)
        self.address = None
        self.log = []
        self._dir = tempfile.mkdtemp(prefix="stimloop-pytest-")
        self._process = None
        self._drain = None

    def start(self):
        self._process = subprocess.Popen(
            [server_binary(), "--listen=127.0.0.1:0",
             "--data_dir=" + os.path.join(self._dir, "data"), "--torch_threads=1"]
            + self.extra_args,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        # Raw reads from the pipe: a buffered readline() could hold the
        # listening line in its buffer while select() waits on the empty pipe.
        fd = self._process.stdout.fileno()
        pending = b""
        deadline = time.monotonic() + self.start_timeout
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while self.address is None:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(timeout=left):
                    raise RuntimeError("stimloop-server did not print its address within %gs:\n%s"
                                       % (self.start_timeout, self.output()))
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise RuntimeError("stimloop-server exited (%s) before listening:\n%s"
                                       % (self._process.wait(), self.output() + pending.decode()))
                pending += chunk
                while b"\n" in pending and self.address is None:
                    line, pending = pending.split(b"\n", 1)
                    self.log.append(line.decode(errors="replace") + "\n")
                    if self.log[-1].startswith(_LISTENING):
                        self.address = self.log[-1][len(_LISTENING):].strip()
        self.log.append(pending.decode(errors="replace"))
        # Keep reading its output so the server never blocks on a full pipe.
        self._drain = threading.Thread(target=self._read_rest, args=(fd,), daemon=True)
        self._drain.start()
        return self.address

    def output(self):
        return "".join(self.log)

    def _read_rest(self, fd):
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            self.log.append(chunk.decode(errors="replace"))

    def stop(self):
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
            if self._drain is not None:
                self._drain.join()
            self._process.stdout.close()
            self._process = None
        shutil.rmtree(self._dir, ignore_errors=True)
