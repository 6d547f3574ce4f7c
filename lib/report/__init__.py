"""The HTML report.

- :mod:`~gaialake.report.sections`: the sections (tables, figures) from the warehouse's tables.
- :mod:`~gaialake.report.html`: sections of figures and tables in one self-contained folder.
- :mod:`~gaialake.report.browser`: headless Chromium to render a page and read it back.
"""
