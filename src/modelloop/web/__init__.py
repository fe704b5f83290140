"""The HTTP plumbing every web edge shares: the REST server, the web UI and serving.

- :mod:`~modelloop.web.hosts`: which ``Host`` names a server answers to (DNS rebinding);
- :mod:`~modelloop.web.middleware`: the error boundary, auth (the request's principal) and the
  body limit;
- :mod:`~modelloop.web.responses`: JSON rendered by orjson, and error bodies.

It sits below the edges and above :mod:`modelloop.auth`, so serving and the UI use it without
importing the REST server.
"""

KEEP_ALIVE_SECONDS = 30  # longer than httpx's 5 s pool expiry: the client always hangs up first
