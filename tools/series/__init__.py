"""Patch series on released Nova: fetch, apply, install, test, boot.

``python3 -m tools.series RELEASE`` proves the series kept in
``series/RELEASE/`` (see ``tools/series/release.py`` for what that
directory holds). Nothing it creates lives in the tracked tree: downloads
and work directories go under ``.tox/series/``.
"""
