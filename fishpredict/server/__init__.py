"""The process model of ``fishpredict serve``, one module per layer.

- :mod:`~fishpredict.server.binding`: the listening sockets (one, or one per
  worker joined with ``SO_REUSEPORT``) and the file-descriptor limit;
- :mod:`~fishpredict.server.signals`: the signals ``serve`` handles, and those
  that arrive before the real handlers are in place;
- :mod:`~fishpredict.server.loop`: one worker process: its event loop
  (uvloop when installed), the backend serving until SIGTERM/SIGINT, SIGHUP
  reloads, the drain;
- :mod:`~fishpredict.server.supervisor`: ``--workers N``: forking the
  workers, replacing one that dies, forwarding signals.

:func:`fishpredict.server.serve.serve` puts them together.
"""
