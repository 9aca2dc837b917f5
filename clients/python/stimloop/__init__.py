"""Python client for the stimloop closed-loop stimulus optimization server.

See stimloop.client for the API and clients/python/examples/rig.py for a rig.
The generated gRPC stubs live in the subpackage stimloop.v1 (a build output:
<build>/python/stimloop is this package with its stubs).
"""

from stimloop.client import SKIPPED, Batch, Client, Session, StimloopError, Stimulus
from stimloop.png import decode_png

__all__ = ["Batch", "Client", "Session", "Stimulus", "StimloopError", "SKIPPED", "decode_png"]
