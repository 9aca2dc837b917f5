"""The Python client against the real stimloop-server binary (STIMLOOP_SERVER)."""

import socket
import unittest
import uuid

import grpc
import numpy as np

import stimloop
from server_process import ServerProcess


class _Injected(grpc.RpcError):
    """What a call that failed in transit raises."""

    def __init__(self, code, details="injected by the test"):
        super().__init__()
        self._code = code
        self._details = details

    def code(self):
        return self._code

    def details(self):
        return self._details


class _FailedCall:
    def __init__(self, code, details="injected by the test"):
        self._code = code
        self._details = details

    def result(self, timeout=None):
        raise _Injected(self._code, self._details)


class OwnerInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Answers the first call, without sending it, with a replica's owner
    error naming `owner` (as a replica that does not own the session would);
    records where every call went."""

    def __init__(self, owner):
        self.owner = owner
        self.calls = 0

    def intercept_unary_unary(self, continuation, details, request):
        self.calls += 1
        if self.calls == 1:
            return _FailedCall(grpc.StatusCode.FAILED_PRECONDITION,
                               "session_id: session 'ab12cd34' is owned by replica "
                               "'host-1-beef' at %s; send its requests there" % self.owner)
        return continuation(details, request)


class ReportInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Records every ReportResponses attempt; optionally lets the first one
    reach the server and then tells the client it failed with `fail_first`,
    like a reply lost on the network."""

    def __init__(self, fail_first=None):
        self.fail_first = fail_first
        self.request_ids = []
        self.metadata = []

    def intercept_unary_unary(self, continuation, details, request):
        self.metadata.append(tuple(details.metadata or ()))
        if not details.method.endswith("/ReportResponses"):
            return continuation(details, request)
        self.request_ids.append(request.request_id)
        outcome = continuation(details, request)
        if self.fail_first is not None and len(self.request_ids) == 1:
            outcome.result()  # The server stored the report; the client never hears.
            return _FailedCall(self.fail_first)
        return outcome


def rate_of(image):
    """A made-up, deterministic non-negative response to an image."""
    return float(image.astype(np.float64).mean()) / 255.0 * 50.0


class ClientTest(unittest.TestCase):

    def setUp(self):
        self.server = ServerProcess()
        self.addCleanup(self.server.stop)  # Runs even when setUp fails below.
        self.address = self.server.start()
        self.client = self.connect()

    def tearDown(self):
        self.server.stop()  # Killed and reaped: no process outlives a test.

    def connect(self, **kwargs):
        kwargs.setdefault("connect_timeout", 30)
        client = stimloop.Client(self.address, **kwargs)
        self.addCleanup(client.close)
        return client

    def new_session(self, client=None, **kwargs):
        args = dict(height=32, width=32, channels=1, num_neurons=1, optimizer="genetic",
                    image_space="spectral", seed=3, generation_size=6)
        args.update(kwargs)
        return (client or self.client).create_session(**args)

    def test_closed_loop_over_generations(self):
        session = self.new_session(metadata={"subject": "test"})
        seen = {}
        for generation, stimuli in enumerate(session.generations(3), start=1):
            self.assertEqual(len(stimuli), 6)
            responses = []
            for s in stimuli:
                self.assertEqual(s.generation, generation)
                self.assertNotIn(s.id, seen)
                self.assertEqual(s.image.shape, (32, 32))
                self.assertEqual(s.image.dtype, np.uint8)
                seen[s.id] = rate_of(s.image)
                responses.append((s, [seen[s.id]]))
            ack = session.report(responses)
            self.assertEqual(ack.accepted, 6)
            self.assertFalse(ack.duplicate)
            self.assertEqual(ack.counts.responses, 6 * generation)
            self.assertEqual(ack.counts.pending, 0)
        info = session.info()
        self.assertEqual(info.counts.generations, 3)
        self.assertEqual(info.config.metadata["subject"], "test")
        best_id = max(seen, key=seen.get)
        self.assertEqual(info.best_measured.stimulus.id, best_id)
        self.assertAlmostEqual(info.best_measured.mean_objective, seen[best_id])
        # The server learns from the pixels it sent: the best stimulus decodes
        # to the same image as when it was shown.
        best_image = stimloop.decode_png(info.best_measured.stimulus.png)
        self.assertAlmostEqual(rate_of(best_image), seen[best_id])

    def test_keywords_without_an_optimizer_run_the_default_strategy(self):
        session = self.client.create_session(height=32, width=32, num_neurons=1, seed=1,
                                             generation_size=8)
        config = session.info().config
        self.assertEqual(config.optimizer.name, "portfolio")
        self.assertEqual(config.image_space.name, "spectral")
        self.assertGreater(config.repeats.per_generation, 0)
        self.assertEqual(len(session.next_stimuli()), 8)

    def test_repeats_reshow_the_best_images(self):
        session = self.new_session(optimizer="random", repeats_per_generation=2)
        first = session.next_stimuli()
        session.report([(s, [rate_of(s.image)]) for s in first])
        second = session.next_stimuli()
        self.assertEqual(len(second), 8)
        best_two = sorted(first, key=lambda s: rate_of(s.image), reverse=True)[:2]
        repeats = [s for s in second if s.origin == "repeat"]
        self.assertEqual([s.png for s in repeats], [s.png for s in best_two])
        # Both showings of the best image count toward its mean.
        session.report([(s, [0.0]) for s in second])
        best = session.info().best_measured
        self.assertEqual(best.presentations, 2)
        self.assertEqual(best.stimulus.id, best_two[0].id)
        self.assertAlmostEqual(best.mean_objective, rate_of(best_two[0].image) / 2)

    def test_validation_block_settles_the_best_image(self):
        session = self.new_session(optimizer="random")
        first = session.next_stimuli()
        session.report([(s, [rate_of(s.image)]) for s in first])
        block = session.next_stimuli(validation={"candidates": 2, "presentations": 3})
        self.assertEqual(len(block), 6)
        self.assertEqual({s.origin for s in block}, {"validation"})
        leading = sorted(first, key=lambda s: rate_of(s.image), reverse=True)[:2]
        self.assertEqual({s.png for s in block}, {s.png for s in leading})
        # The runner-up responds best when shown again: it becomes the best.
        session.report([(s, [10.0 if s.png == leading[1].png else 0.0]) for s in block])
        best = session.info().best_measured
        self.assertEqual(best.stimulus.id, leading[1].id)
        self.assertEqual(best.presentations, 4)
        # Not at a generation boundary: a clear FAILED_PRECONDITION.
        session.next_stimuli(max_count=1)
        with self.assertRaises(stimloop.StimloopError) as raised:
            session.next_stimuli(validation={})
        self.assertEqual(raised.exception.code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("a validation block starts at a generation boundary",
                      raised.exception.message)

    def test_one_stimulus_at_a_time(self):
        session = self.new_session()
        first = session.next_stimuli(max_count=1)
        self.assertEqual(len(first), 1)
        self.assertEqual(session.info().counts.pending, 1)
        rest = session.next_stimuli()
        self.assertEqual(len(rest), 5)
        self.assertEqual({s.generation for s in first + rest}, {1})

    def test_a_generation_of_large_images_comes_in_batches(self):
        # 24 noise images of 512x512 RGB are ~19 MB of PNG: more than one
        # batch may hold (16 MiB), so next_stimuli returns part of the
        # generation and says how much is left; generations() collects it.
        session = self.new_session(height=512, width=512, channels=3, optimizer="random",
                                   image_space="pixel", generation_size=24)
        first = session.next_stimuli()
        self.assertLess(len(first), 24)
        self.assertEqual(first.remaining, 24 - len(first))
        self.assertEqual(first.generation, 1)
        rest = next(session.generations(1))
        self.assertEqual(len(rest), 24 - len(first))
        self.assertEqual(rest.remaining, 0)
        self.assertEqual({s.generation for s in first + rest}, {1})
        session.report([(s, [1.0]) for s in first + rest])
        second = next(session.generations(1))
        self.assertEqual(len(second), 24)
        self.assertEqual({s.generation for s in second}, {2})

    def test_rgb_images_are_height_width_3(self):
        session = self.new_session(channels=3, height=16, width=24)
        stimuli = session.next_stimuli()
        self.assertEqual(stimuli[0].image.shape, (16, 24, 3))

    def test_config_dict(self):
        session = self.client.create_session(config={
            "image": {"height": 16, "width": 16, "channels": 1},
            "num_neurons": 2,
            "objective": {"population_control": {"target": 1}},
            "optimizer": {"name": "random"},
            "image_space": {"name": "pixel"},
            "generation_size": 4,
            "seed": 9,
            "metadata": {"site": "V1 array 2"},
        })
        info = session.info()
        self.assertEqual(info.config.num_neurons, 2)
        self.assertEqual(info.config.objective.population_control.target, 1)
        self.assertEqual(info.config.metadata["site"], "V1 array 2")
        self.assertEqual(len(session.next_stimuli()), 4)

    def test_same_request_id_counts_once(self):
        session = self.new_session()
        stimuli = session.next_stimuli()
        responses = [(s, [1.0]) for s in stimuli]
        request_id = str(uuid.uuid4())
        first = session.report(responses, request_id=request_id)
        again = session.report(responses, request_id=request_id)
        self.assertFalse(first.duplicate)
        self.assertTrue(again.duplicate)
        self.assertEqual(again.counts.responses, 6)
        self.assertEqual(session.info().counts.responses, 6)

    def test_report_retries_a_lost_reply_with_the_same_request_id(self):
        for code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            with self.subTest(code=code.name):
                recorder = ReportInterceptor(fail_first=code)
                client = self.connect(interceptors=[recorder], retry_backoff=0.01)
                session = self.new_session(client)
                stimuli = session.next_stimuli()
                ack = session.report([(s, [2.0]) for s in stimuli])
                self.assertEqual(len(recorder.request_ids), 2)
                self.assertEqual(recorder.request_ids[0], recorder.request_ids[1])
                self.assertTrue(ack.duplicate)  # The first attempt was stored...
                self.assertEqual(ack.counts.responses, 6)  # ...and counts once.

    def test_report_gives_up_after_its_attempts(self):
        recorder = ReportInterceptor(fail_first=grpc.StatusCode.UNAVAILABLE)
        client = self.connect(interceptors=[recorder], retry_backoff=0.01, report_attempts=1)
        session = self.new_session(client)
        stimuli = session.next_stimuli()
        with self.assertRaises(stimloop.StimloopError) as caught:
            session.report([(s, [2.0]) for s in stimuli])
        self.assertEqual(caught.exception.code, grpc.StatusCode.UNAVAILABLE)
        self.assertEqual(len(recorder.request_ids), 1)

    def test_owner_address_parses_only_the_owner_error(self):
        self.assertEqual(stimloop.client.owner_address(
            "session_id: session 'x' is owned by replica 'r-1' at 10.0.0.7:50051; "
            "send its requests there"), "10.0.0.7:50051")
        self.assertIsNone(stimloop.client.owner_address("session_id: no session 'x'"))

    def second_server(self):
        other = ServerProcess()
        self.addCleanup(other.stop)
        return other.start()

    def test_follows_the_owner_error_to_the_owner(self):
        other = self.second_server()
        owner = OwnerInterceptor(other)
        client = self.connect(interceptors=[owner], replicas=[other], retry_backoff=0.01)
        session = self.new_session(client)
        self.assertEqual(client.current_address, other)
        self.assertEqual(owner.calls, 2)
        # The session lives on the owner it was sent to.
        on_other = stimloop.Client(other, connect_timeout=30)
        self.addCleanup(on_other.close)
        self.assertEqual(on_other.resume_session(session.id).id, session.id)

    def test_without_replicas_the_owner_error_is_raised(self):
        owner = OwnerInterceptor("127.0.0.1:1")
        client = self.connect(interceptors=[owner])
        with self.assertRaises(stimloop.StimloopError) as caught:
            self.new_session(client)
        self.assertEqual(caught.exception.code, grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("is owned by replica 'host-1-beef' at 127.0.0.1:1", caught.exception.message)
        self.assertEqual(owner.calls, 1)

    def test_moves_past_a_server_that_died_to_a_live_replica(self):
        other = self.second_server()
        client = self.connect(replicas=[other], retry_backoff=0.01)
        self.assertEqual(client.current_address, self.address)
        self.server.stop()
        session = self.new_session(client)
        self.assertEqual(client.current_address, other)
        self.assertEqual(session.info().id, session.id)

    def test_skipped_trial(self):
        session = self.new_session()
        stimuli = session.next_stimuli()
        ack = session.report([(stimuli[0], stimloop.SKIPPED), (stimuli[1].id, np.array([3.5]))])
        self.assertEqual(ack.accepted, 2)
        self.assertEqual(ack.counts.skipped, 1)
        self.assertEqual(ack.counts.responses, 1)
        self.assertEqual(ack.counts.pending, 4)

    def test_wrong_rate_count_is_invalid_argument_and_changes_nothing(self):
        recorder = ReportInterceptor()
        client = self.connect(interceptors=[recorder])
        session = self.new_session(client, num_neurons=2)
        stimuli = session.next_stimuli()
        with self.assertRaises(stimloop.StimloopError) as caught:
            session.report([(stimuli[0], [1.0, 2.0]), (stimuli[1], [1.0])])
        self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("responses[1].rates", caught.exception.message)
        self.assertEqual(len(recorder.request_ids), 1)  # Not retried.
        counts = session.info().counts
        self.assertEqual((counts.responses, counts.pending), (0, 6))

    def test_negative_rate_is_invalid_argument(self):
        session = self.new_session()
        stimuli = session.next_stimuli()
        with self.assertRaises(stimloop.StimloopError) as caught:
            session.report([(stimuli[0], [-1.0])])
        self.assertEqual(caught.exception.code, grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("responses[0].rates", caught.exception.message)

    def test_unknown_session_and_stimulus_are_not_found(self):
        with self.assertRaises(stimloop.StimloopError) as caught:
            self.client.resume_session("no-such-session")
        self.assertEqual(caught.exception.code, grpc.StatusCode.NOT_FOUND)
        session = self.new_session()
        session.next_stimuli()
        with self.assertRaises(stimloop.StimloopError) as caught:
            session.report([("no-such-stimulus", [1.0])])
        self.assertEqual(caught.exception.code, grpc.StatusCode.NOT_FOUND)

    def test_resume_session_from_another_client(self):
        session = self.new_session()
        stimuli = session.next_stimuli()
        resumed = self.connect().resume_session(session.id)
        self.assertEqual(resumed.config.image.height, 32)
        ack = resumed.report([(s.id, [1.0]) for s in stimuli])
        self.assertEqual(ack.accepted, 6)
        self.assertEqual(resumed.next_stimuli()[0].generation, 2)
        self.assertIn(session.id, [s.id for s in self.client.list_sessions()])

    def test_closed_session_is_failed_precondition(self):
        session = self.new_session()
        self.assertEqual(session.close().status, stimloop.client.pb.SESSION_STATUS_CLOSED)
        with self.assertRaises(stimloop.StimloopError) as caught:
            session.next_stimuli()
        self.assertEqual(caught.exception.code, grpc.StatusCode.FAILED_PRECONDITION)

    def test_token_goes_in_authorization_metadata(self):
        recorder = ReportInterceptor()
        client = self.connect(interceptors=[recorder], token="s3cret")
        self.new_session(client)
        self.assertIn(("authorization", "Bearer s3cret"), recorder.metadata[-1])
        recorder = ReportInterceptor()
        client = self.connect(interceptors=[recorder])
        self.new_session(client)
        self.assertEqual(recorder.metadata[-1], ())

    def test_connect_deadline(self):
        with socket.socket() as reserved:  # Bound, never listening: nothing answers.
            reserved.bind(("127.0.0.1", 0))
            address = "127.0.0.1:%d" % reserved.getsockname()[1]
            with self.assertRaises(stimloop.StimloopError) as caught:
                stimloop.Client(address, connect_timeout=0.5)
        self.assertEqual(caught.exception.code, grpc.StatusCode.UNAVAILABLE)
        self.assertIn(address, caught.exception.message)


if __name__ == "__main__":
    unittest.main()
