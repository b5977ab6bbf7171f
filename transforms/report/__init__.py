"""The HTML reports: a small kit, plots and the two pages, rendered by the launcher."""
