"""The Python client against a server with TLS and a bearer token.

Certificates are made at test time with the openssl command line (never
committed): a throwaway CA and a server certificate for IP 127.0.0.1.
"""

import os
import shutil
import subprocess
import tempfile
import unittest

import grpc

import stimloop
from server_process import ServerProcess

_TOKEN = "py-test-token-0b1c2d3e4f"

_OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = stimloop python test
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
"""


def make_pki(directory):
    """Writes ca.pem, server.pem, server.key and token into `directory`."""
    config = os.path.join(directory, "openssl.cnf")
    with open(config, "w") as f:
        f.write(_OPENSSL_CONFIG)
    path = lambda name: os.path.join(directory, name)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for command in (
            ["openssl", "req", "-x509", "-config", config, "-extensions", "ca_ext"] + ec +
            ["-keyout", path("ca.key"), "-out", path("ca.pem"), "-days", "2"],
            ["openssl", "req", "-new", "-config", config] + ec +
            ["-keyout", path("server.key"), "-out", path("server.csr")],
            ["openssl", "x509", "-req", "-in", path("server.csr"), "-CA", path("ca.pem"),
             "-CAkey", path("ca.key"), "-set_serial", "1", "-days", "2", "-extfile", config,
             "-extensions", "server_ext", "-out", path("server.pem")]):
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if result.returncode != 0:
            raise RuntimeError("%s failed:\n%s" % (" ".join(command),
                                                   result.stdout.decode(errors="replace")))
    with open(path("token"), "w") as f:
        f.write(_TOKEN + "\n")


class RemoteAccessTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stimloop-pytls-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        make_pki(self.dir)
        self.root_cert = os.path.join(self.dir, "ca.pem")
        self.server = ServerProcess(extra_args=[
            "--tls_cert=" + os.path.join(self.dir, "server.pem"),
            "--tls_key=" + os.path.join(self.dir, "server.key"),
            "--auth_token_file=" + os.path.join(self.dir, "token")])
        self.addCleanup(self.server.stop)  # Killed and reaped even if a test fails.
        self.address = self.server.start()

    def connect(self, **kwargs):
        client = stimloop.Client(self.address, connect_timeout=30, **kwargs)
        self.addCleanup(client.close)
        return client

    def test_root_cert_and_token_run_a_generation(self):
        client = self.connect(root_cert=self.root_cert, token=_TOKEN)
        session = client.create_session(height=32, width=32, num_neurons=1, seed=5,
                                        generation_size=4)
        stimuli = session.next_stimuli()
        self.assertEqual(len(stimuli), 4)
        ack = session.report([(s, [float(i)]) for i, s in enumerate(stimuli)])
        self.assertEqual(ack.accepted, 4)
        self.assertEqual(ack.counts.responses, 4)

    def test_root_cert_as_pem_text_works_too(self):
        with open(self.root_cert) as f:
            client = self.connect(root_cert=f.read(), token=_TOKEN)
        self.assertEqual(client.list_sessions(), [])

    def test_wrong_token_is_unauthenticated(self):
        client = self.connect(root_cert=self.root_cert, token="not-" + _TOKEN)
        with self.assertRaises(stimloop.StimloopError) as raised:
            client.create_session(height=32, width=32)
        self.assertEqual(raised.exception.code, grpc.StatusCode.UNAUTHENTICATED)
        self.assertIn("invalid bearer token", raised.exception.message)

    def test_missing_token_is_unauthenticated(self):
        client = self.connect(root_cert=self.root_cert)
        with self.assertRaises(stimloop.StimloopError) as raised:
            client.list_sessions()
        self.assertEqual(raised.exception.code, grpc.StatusCode.UNAUTHENTICATED)
        self.assertIn("missing bearer token", raised.exception.message)


if __name__ == "__main__":
    unittest.main()
