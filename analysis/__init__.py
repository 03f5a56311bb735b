"""From merged histograms to metrics tables, objective verdicts and reports.

Pure: takes values, returns values. It never imports ray, aiohttp, kubernetes_asyncio or github,
nor any package above it (coordinator, promote, deploy).

Modules, roughly from the bottom up (no two import each other):

- :mod:`analysis.errors`: :class:`~analysis.errors.ResultsError`, the one error analysis raises
  (a document it cannot read); the CLI maps it to exit 2;
- :mod:`analysis.catalog`: the built-in metric names, their kinds (``MetricKind``) and units;
- :mod:`analysis.safe_yaml`: the one way slogate reads YAML (bounded, no alias bombs);
- :mod:`analysis.stats`: confidence intervals that know their sample size;
- :mod:`analysis.merge`: workers' windows merged into one run (counts summed, never averaged);
- :mod:`analysis.metrics`: the metrics table (``Measured``) read from merged histograms;
- :mod:`analysis.evidence`, :mod:`analysis.compare`: an objective's value, interval and n, for
  one version or a candidate against its baseline;
- :mod:`analysis.custom`: custom metrics read from a metrics store (Prometheus): query
  templates, its answers decoded, readings (no data kept apart from errors) and their point
  judgement; :mod:`analysis.custom_report` what every report shows of them (plain data);
- :mod:`analysis.formatting`: how an objective's values and limits are written, everywhere;
- :mod:`analysis.verdict`: ``Slo`` (an objective in canonical units), each objective's verdict
  and the run's (PASS, FAIL, INCONCLUSIVE, INVALID);
- :mod:`analysis.judging`: the one path from a measured run to its verdicts;
- :mod:`analysis.stages`: a run judged stage by stage (``load.stages``) and window by window
  (``window: worst``), from the windows of its results;
- :mod:`analysis.results`: the ``results.json`` document, written atomically, read strictly;
  :mod:`analysis.saved_spec`: the typed view of the spec a saved run echoes
  (``Results.saved``), parsed once when the document is loaded: objectives, limits, error
  ranges, window, target;
- :mod:`analysis.rejudge`: a saved run judged again, from that view and its histograms;
- :mod:`analysis.outcomes`: how the requests ended, per endpoint (every report's outcomes table);
- :mod:`analysis.report`: text and markdown reports and :func:`~analysis.report.render` for
  every format; :mod:`analysis.html` and :mod:`analysis.junit` the HTML and JUnit ones;
- :mod:`analysis.tables`: pandas views of a saved run, for notebooks;
- :mod:`analysis.history`, :mod:`analysis.history_report`: an experiment's trend over archived
  runs, its newest run's drift, and their reports.
"""
