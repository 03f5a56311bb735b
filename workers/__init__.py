"""Load generation: pacing, HTTP transports and latency recording into mergeable histograms.

Data flows one way (as in vegeta): plan -> pacer -> sender -> result -> recorder -> windows of
histograms. A failed request is a value (``error="connect"``), never an exception. ``LoadWorker`` is
a plain class; the coordinator wraps it with ``ray.remote`` where it schedules actors.

Modules (imports point down this list's dependencies; no two import each other):

- :mod:`workers.plan`: ``WorkerPlan``, what one worker is asked to do (frozen values);
- :mod:`workers.pacer`: when requests are due and which endpoint each goes to (pure);
- :mod:`workers.histogram`: the mergeable latency histogram (HdrHistogram layout, encode/decode);
- :mod:`workers.recorder`: results into windows of histograms, no I/O and no clock;
- :mod:`workers.rows`: request data, the order each endpoint sends its rows in (pure);
- :mod:`workers.checks`: response checks, which check a response fails first (pure);
- :mod:`workers.run_state`: what every engine shares: ``RunState`` (stop times, counters,
  recording one result) and ``pacer_for`` (an open-model plan's pacer);
- :mod:`workers.load_worker`: ``LoadWorker`` (runs a plan on its own event loop, hands over
  windows), the ``Engine`` protocol and ``AiohttpLoop``, the coroutine engine over a ``Sender``;
- :mod:`workers.raw_engine`: the two engines of ``transport: fast`` (``FastEngine`` on protocol
  connections, ``RawUsersEngine`` on raw sockets), the one importer of httptools;
- :mod:`workers.pump`: which pump drives ``RawUsersEngine`` (users, or the open model), the
  compiled one (``workers._pump``, Cython: read, parse, record, write without a Python call per
  response; a timerfd for the open model's pacer) or
  the engine's pure-Python ``_pump`` (``SLOGATE_PUMP=python``, or no C compiler at install);
- :mod:`workers.transport`: the ``Sender`` seam (one request, one outcome string);
- :mod:`workers.transport_aiohttp`: the aiohttp ``Sender``, the one importer of aiohttp here;
- :mod:`workers.refusal`: a target that refuses every connection, noticed and named early;
- :mod:`workers.transport_grpc`: the gRPC ``Sender`` on ``grpc.aio`` (and the reflection client the
  coordinator asks for a schema), the one importer of grpc;
- :mod:`workers.grpc_engine`: the Sender of a plan with gRPC endpoints (with aiohttp beside it
  when HTTP endpoints share the plan).

gRPC calls are values the same way: ``grpc:<CODE>`` outcomes. The one exception of the package
raised outside a load is ``transport_grpc.ReflectionError`` (a server that cannot be asked for
its schema), which the coordinator turns into a spec error.
"""
