"""The HTTP application, free of I/O: routes, protocols, batching, codec, metrics.

Like flask's ``sansio/``, nothing here opens a socket, starts a process or
names a backend. :class:`fishpredict.app.service.Service` turns a request
(method, path, query, headers, body) into a response (status, headers, body);
a backend adapts its transport to that call, and :mod:`fishpredict.server`
runs backends in processes.
"""
