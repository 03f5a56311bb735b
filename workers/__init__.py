"""Load generation: pacing, HTTP transports and latency recording into mergeable histograms.

Data flows one way (as in vegeta): plan -> pacer -> sender -> result -> recorder -> windows of
histograms. A failed request is a value (``error="connect"``), never an exception. ``LoadWorker`` is
a plain class; the coordinator wraps it with ``ray.remote`` where it schedules actors.
"""
