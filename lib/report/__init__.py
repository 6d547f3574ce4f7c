"""The HTML report.

- :mod:`~gaialake.report.html`: sections of figures and tables in one self-contained folder.
- :mod:`~gaialake.report.browser`: headless Chromium to render a page and read it back.
"""
