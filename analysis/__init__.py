"""From merged histograms to metrics tables, objective verdicts and reports.

Pure: takes values, returns values. It never imports ray, aiohttp, kubernetes_asyncio or github,
nor any package above it (coordinator, promote, deploy).

- ``results``: the results.json document, written atomically and read back strictly;
  ``saved_spec``: the typed view of the spec a saved run echoes (``Results.saved``), parsed once
  when the document is loaded: objectives, limits, error ranges, window, target;
- ``rejudge``: a saved run judged again, from that view and its histograms;
- ``catalog``, ``metrics``, ``evidence``, ``stats``, ``compare``, ``verdict``, ``judging``: metrics
  and verdicts; ``tables``, ``report``, ``html``, ``junit``: what is shown; ``history``,
  ``history_report``: trends across runs; ``merge``; ``safe_yaml``: bounded YAML;
- ``errors``: :class:`~analysis.errors.ResultsError`, the one error analysis raises (a document
  it cannot read); the CLI maps it to exit 2.
"""
