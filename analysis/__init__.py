"""From merged histograms to metrics tables, objective verdicts and reports.

Pure: takes values, returns values. It never imports ray, aiohttp, kubernetes_asyncio or github.
"""
