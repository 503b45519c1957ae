"""make report: the page, its figures and its tables in human units.

    render      a run's tables -> the page filled in, and every file of reports/<name>/
    views       the report's tables in human units
    writers     the page as self-contained HTML and as Markdown
    figures     one function per figure (speed, stacks, learning), their registry and their axes
"""
