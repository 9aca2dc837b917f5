"""The stimloop client: connect, create or resume a session, run the loop.

    import stimloop

    client = stimloop.Client("127.0.0.1:50051")
    session = client.create_session(height=64, width=64, channels=1, num_neurons=1,
                                    optimizer="genetic", image_space="spectral", seed=1)
    for stimuli in session.generations(10):
        responses = []
        for s in stimuli:
            show(s.image)                       # uint8, H x W (gray) or H x W x 3
            responses.append((s, measure()))    # one rate per neuron, or None = skipped
        session.report(responses)

Every call has a deadline. report() retries transient failures (UNAVAILABLE,
DEADLINE_EXCEEDED) with the same request_id, which the server counts once.
Any failure raises StimloopError with the gRPC code and the server's message,
which names the offending field. A Client is safe to share between threads
(gRPC channels are); a Session holds no state beyond its id.

Several servers on one PostgreSQL store (README, "Running several servers"):
give the other replicas' addresses, Client(address, replicas=[...]). A call
answered with the owner error (FAILED_PRECONDITION "... is owned by replica
'<id>' at <host:port>; send its requests there") is sent again to the owner,
and a call that finds its server UNAVAILABLE to the next address, until
failover_timeout; a report is resent with its request_id, counted once.
"""

import os
import re
import threading
import time
import uuid

import grpc
from google.protobuf import json_format

from stimloop.png import decode_png

try:
    from stimloop.v1 import stimloop_pb2 as pb
    from stimloop.v1 import stimloop_pb2_grpc as pb_grpc
except ImportError as e:  # The stubs are a build output, not in the source tree.
    raise ImportError(
        "stimloop: the generated gRPC stubs (stimloop.v1.stimloop_pb2) were not found. "
        "Build the target stimloop_proto_python and put <build>/python on PYTHONPATH "
        "(it holds this package together with its stubs); see clients/python/README.md"
    ) from e

# Report a stimulus as skipped (an aborted trial) by giving SKIPPED as its rates.
SKIPPED = None

_TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)

# The owner error of a replica (base/session_owner.h): the owner's address.
_OWNER = re.compile(r"' is owned by replica '.*' at (\S+); send its requests there$")


def owner_address(message):
    """The owner's address in a replica's owner error message, else None."""
    match = _OWNER.search(message or "")
    return match.group(1) if match else None


class StimloopError(Exception):
    """A failed call: `code` is the grpc.StatusCode, `message` the server's text."""

    def __init__(self, code, message):
        super().__init__("%s: %s" % (code.name, message))
        self.code = code
        self.message = message

    @classmethod
    def from_rpc_error(cls, error):
        return cls(error.code(), error.details() or "")


class Stimulus:
    """One stimulus to show.

    Attributes:
      id: the server's stimulus id, given back in report().
      generation: the generation it belongs to (1-based).
      origin: what made it (optimizer name, "prior", "reference", "pool:<file>",
        "repeat": an earlier image shown again).
      png: the exact 8-bit image as PNG bytes.
      is_reference: True for a natural reference image.
      model_version: surrogate model version that proposed it (0: none).
      predicted_objective: the model's prediction, NaN when no model proposed it.
      image: the pixels as a uint8 numpy array, H x W (gray) or H x W x 3 (RGB);
        decoded from `png` on first access.
    """

    __slots__ = ("id", "generation", "origin", "png", "is_reference", "model_version",
                 "predicted_objective", "_image")

    def __init__(self, message):
        self.id = message.id
        self.generation = message.generation
        self.origin = message.origin
        self.png = message.png
        self.is_reference = message.is_reference
        self.model_version = message.model_version
        self.predicted_objective = message.predicted_objective
        self._image = None

    @property
    def image(self):
        if self._image is None:
            self._image = decode_png(self.png)
            self._image.setflags(write=False)
        return self._image

    def __repr__(self):
        return "Stimulus(id=%r, generation=%d, origin=%r)" % (self.id, self.generation,
                                                              self.origin)


class Batch(list):
    """The stimuli of one NextStimuli call: a list of Stimulus, plus
    generation (1-based) and remaining (stimuli of that generation still to
    be handed out; 0 when the next call starts a new generation)."""

    def __init__(self, message):
        super().__init__(Stimulus(s) for s in message.stimuli)
        self.generation = message.generation
        self.remaining = message.remaining


class Session:
    """A closed-loop session on the server. Get one from Client.create_session
    or Client.resume_session."""

    def __init__(self, client, message):
        self._client = client
        self.id = message.id
        self.config = message.config  # stimloop.v1.SessionConfig

    def next_stimuli(self, max_count=0, validation=None):
        """The next stimuli to show, a list of Stimulus.

        max_count 0: the rest of the current generation, or a whole new one
        once every stimulus of the current one was handed out (the optimizer
        then learns from every response reported so far). 1: one at a time.
        A call returns at most 16 MiB of PNG, so a generation of large images
        comes in several calls: the returned Batch (a list of Stimulus) says
        in `remaining` how many of its generation are left; generations()
        collects whole generations.

        validation: a dict of ValidationBlock fields (candidates,
        presentations, include_best_guess), e.g. {"candidates": 5,
        "presentations": 20}: the new generation is then a validation block,
        the leading images shown again to settle the session's best. Only at
        a generation boundary (hand out, and report, the current one first).
        """
        request = pb.NextStimuliRequest(session_id=self.id, max_count=max_count)
        if validation is not None:
            request.validation.CopyFrom(pb.ValidationBlock(**validation))
        batch = self._client._call("NextStimuli", request)
        return Batch(batch)

    def report(self, responses, request_id=None):
        """Reports measured responses; returns the server's ReportResponsesAck
        (accepted, duplicate, counts).

        Args:
          responses: iterable of (stimulus, rates) pairs. `stimulus` is a
            Stimulus or its id; `rates` is one non-negative number per neuron
            (a list, tuple or numpy array), or SKIPPED (None) for an aborted
            trial. Report a stimulus several times for several presentations.
          request_id: unique per report within the session; default a fresh
            uuid4. Retries of this call reuse it with the same responses, so
            the server counts the report once; pass your own (e.g. a trial
            counter that never restarts within a session) to make a report
            idempotent across restarts. Reusing one for other responses is
            ALREADY_EXISTS (StimloopError), and nothing is stored.
        """
        request = pb.ReportResponsesRequest(session_id=self.id,
                                            request_id=request_id or str(uuid.uuid4()))
        for stimulus, rates in responses:
            response = request.responses.add()
            response.stimulus_id = stimulus if isinstance(stimulus, str) else stimulus.id
            if rates is SKIPPED:
                response.skipped = True
            else:
                response.rates.extend(float(r) for r in _flat(rates))
        return self._client._call_with_retries("ReportResponses", request)

    def generations(self, count=None):
        """Yields one generation (a list of Stimulus) at a time, `count` times
        or forever. Report each generation before taking the next: the server
        proposes the next generation from the responses it has then."""
        produced = 0
        while count is None or produced < count:
            generation = self.next_stimuli(0)
            while generation.remaining > 0:
                more = self.next_stimuli(0)
                generation.extend(more)
                generation.remaining = more.remaining
            yield generation
            produced += 1

    def info(self):
        """The session as the server sees it now: stimloop.v1.Session (config,
        status, counts, best_measured, optimizer_best_png)."""
        return self._client._call("GetSession", pb.GetSessionRequest(session_id=self.id))

    def close(self):
        """Ends the session; returns the final stimloop.v1.Session."""
        return self._client._call("CloseSession", pb.CloseSessionRequest(session_id=self.id))

    def __repr__(self):
        return "Session(id=%r)" % self.id


class Client:
    """A connection to a stimloop server.

    Args:
      address: "host:port" of the server.
      timeout: deadline of every call, in seconds.
      token: bearer token sent on every call ("authorization: Bearer <token>").
      root_cert: PEM root certificate (bytes, str, or a path to a PEM file) to
        trust: connects with TLS. None: plaintext, for a loopback server.
      connect_timeout: how long to wait for the server when connecting.
      report_attempts: tries of a report on UNAVAILABLE / DEADLINE_EXCEEDED.
      retry_backoff: seconds before the first retry, doubled for each next one.
      interceptors: optional grpc client interceptors (e.g. for logging).
      replicas: addresses of other replicas of the same store, tried after
        `address` when it is down, and followed on the owner error.
      failover_timeout: seconds a call keeps following before it raises.
    Raises:
      StimloopError(UNAVAILABLE): the server was not reachable in connect_timeout.
    """

    def __init__(self, address="127.0.0.1:50051", timeout=30.0, token=None, root_cert=None,
                 connect_timeout=10.0, report_attempts=5, retry_backoff=0.2,
                 interceptors=(), replicas=(), failover_timeout=30.0):
        self.address = address
        self.timeout = timeout
        self.report_attempts = max(1, int(report_attempts))
        self.retry_backoff = retry_backoff
        self.failover_timeout = failover_timeout
        self._addresses = [address] + list(replicas)
        self._root_cert = root_cert
        self._interceptors = interceptors
        self._metadata = (("authorization", "Bearer " + token),) if token else None
        self._lock = threading.Lock()
        deadline = time.monotonic() + connect_timeout
        while True:
            for candidate in self._addresses:
                channel = self._open(candidate)
                wait = deadline - time.monotonic()
                if len(self._addresses) > 1:
                    wait = min(wait, 0.5)
                try:
                    grpc.channel_ready_future(channel).result(timeout=max(wait, 0.01))
                except grpc.FutureTimeoutError:
                    channel.close()
                    continue
                self._use(candidate, channel)
                return
            if time.monotonic() >= deadline:
                raise StimloopError(grpc.StatusCode.UNAVAILABLE,
                                    "cannot reach stimloop server at %s%s within %gs"
                                    % (address, " or its replicas" if replicas else "",
                                       connect_timeout)) from None

    @property
    def current_address(self):
        """The address calls go to now (changes when following replicas)."""
        return self._current

    def _open(self, address):
        options = [("grpc.max_receive_message_length", 64 << 20)]
        if self._root_cert is None:
            return grpc.insecure_channel(address, options=options)
        credentials = grpc.ssl_channel_credentials(root_certificates=_pem(self._root_cert))
        return grpc.secure_channel(address, credentials, options=options)

    def _use(self, address, channel):
        self._current = address
        self._channel = channel
        if self._interceptors:
            channel = grpc.intercept_channel(channel, *self._interceptors)
        self._stub = pb_grpc.StimLoopStub(channel)

    def _move_to(self, address):
        with self._lock:
            if address == self._current:
                return
            old = self._channel
            self._use(address, self._open(address))
        old.close()

    def create_session(self, height=64, width=64, channels=1, num_neurons=1,
                       optimizer=None, image_space=None, seed=0,
                       generation_size=0, optimizer_params=None, image_space_params=None,
                       objective=None, metadata=None, surrogate_params=None,
                       reference_dir="", references_per_generation=0,
                       repeats_per_generation=None, config=None):
        """Starts a session; returns a Session.

        Either the keyword arguments, or `config`: a dict in the shape of
        stimloop.v1.SessionConfig (field names as in the .proto, e.g.
        {"image": {"height": 64, "width": 64, "channels": 1}, "num_neurons": 1,
        "optimizer": {"name": "cmaes", "params": {...}}, ...}) or a
        SessionConfig message; then the keyword arguments are ignored.

        optimizer, image_space, repeats_per_generation: None leaves them to
        the server: with no optimizer named it runs its default strategy
        (the portfolio in the spectral space, re-showing leading images).
        objective: None (neuron 0), a dict in the shape of stimloop.v1.Objective
        (e.g. {"population_control": {"target": 0}}), or an int (that neuron).
        generation_size 0 means the server's default, 40.
        repeats_per_generation: the leading images re-shown in each generation
        so the best is chosen on several presentations (RepeatsConfig).
        reference_dir: a folder of images on the server, relative to its
        assets folder (--assets_dir); absolute paths and '..' are refused.
        """
        if config is None:
            config = pb.SessionConfig(num_neurons=num_neurons, generation_size=generation_size,
                                      seed=seed)
            config.image.height, config.image.width, config.image.channels = (
                height, width, channels)
            if optimizer is not None:
                config.optimizer.name = optimizer
            config.optimizer.params.update(optimizer_params or {})
            if image_space is not None:
                config.image_space.name = image_space
            config.image_space.params.update(image_space_params or {})
            config.surrogate.params.update(surrogate_params or {})
            config.metadata.update(metadata or {})
            config.reference_images.dir = reference_dir
            config.reference_images.per_generation = references_per_generation
            if repeats_per_generation is not None:
                config.repeats.per_generation = repeats_per_generation
            if isinstance(objective, int):
                config.objective.single_neuron.index = objective
            elif objective is not None:
                json_format.ParseDict(objective, config.objective)
        elif isinstance(config, dict):
            config = json_format.ParseDict(config, pb.SessionConfig())
        message = self._call("CreateSession", pb.CreateSessionRequest(config=config))
        return Session(self, message)

    def resume_session(self, session_id):
        """A Session for an existing session id (e.g. after the rig software
        restarted). Raises StimloopError(NOT_FOUND) for an unknown id."""
        message = self._call("GetSession", pb.GetSessionRequest(session_id=session_id))
        return Session(self, message)

    def list_sessions(self):
        """Every session the server knows, newest first: stimloop.v1.Session
        messages without images."""
        return list(self._call("ListSessions", pb.ListSessionsRequest()).sessions)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method, request):
        return self._follow(method, request, retry_transient=False)

    def _call_with_retries(self, method, request):
        return self._follow(method, request, retry_transient=True)

    def _call_once(self, method, request):
        try:
            return getattr(self._stub, method)(request, timeout=self.timeout,
                                               metadata=self._metadata)
        except grpc.RpcError as e:
            raise StimloopError.from_rpc_error(e) from None

    def _follow(self, method, request, retry_transient):
        """One call; with replicas, follows the owner error and moves past
        UNAVAILABLE servers until failover_timeout; with retry_transient,
        retries UNAVAILABLE / DEADLINE_EXCEEDED (a report, same request_id)."""
        deadline = time.monotonic() + self.failover_timeout
        delay = self.retry_backoff
        attempts = 0
        following = len(self._addresses) > 1
        while True:
            try:
                return self._call_once(method, request)
            except StimloopError as e:
                attempts += 1
                owner = owner_address(e.message)
                if following and owner and time.monotonic() < deadline:
                    if owner == self._current:
                        time.sleep(delay)
                    self._move_to(owner)
                    continue
                transient = e.code == grpc.StatusCode.UNAVAILABLE or (
                    retry_transient and e.code in _TRANSIENT)
                if not transient:
                    raise
                if following:
                    if time.monotonic() >= deadline:
                        raise
                    try:
                        i = self._addresses.index(self._current)
                        nxt = self._addresses[(i + 1) % len(self._addresses)]
                    except ValueError:  # an owner's address not in the list
                        nxt = self._addresses[0]
                    self._move_to(nxt)
                elif not retry_transient or attempts >= self.report_attempts:
                    raise
            time.sleep(delay)  # Back off before retrying the same request.
            delay = min(delay * 2, 1.0)


def _flat(rates):
    """A flat sequence of numbers from a list, tuple, scalar or numpy array."""
    if hasattr(rates, "ravel"):
        return rates.ravel().tolist()
    if isinstance(rates, (int, float)):
        return [rates]
    return rates


def _pem(root_cert):
    if isinstance(root_cert, bytes):
        return root_cert
    if "-----BEGIN" in root_cert:
        return root_cert.encode()
    with open(os.fspath(root_cert), "rb") as f:
        return f.read()
