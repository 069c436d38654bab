"""Helm's own Go SDK (libhelm_c, through PyPI helm-python-sdk) for the tests: lint or render
a chart with values read as JSON from stdin, and print the result as JSON.

    python chart.py lint   CHART NAMESPACE < values.json   -> {"messages": [...], "errors": [...]}
    python chart.py render CHART NAMESPACE < values.json   -> {"template path": "manifest", ...}

A render that Helm refuses (a value the schema forbids, a template error) exits 65 with
Helm's message on stderr.
"""
import json
import sys

import helm_python as helm

RELEASE = "rs"


def main():
    action, chart, namespace = sys.argv[1:4]
    values = json.load(sys.stdin)
    if action == "lint":
        report = helm.lint(chart, values, strict=True, namespace=namespace)
        json.dump(report, sys.stdout)
        return 0
    try:
        with helm.Chart.load(chart) as c:
            manifests = c.render(values, name=RELEASE, namespace=namespace, is_install=True)
    except helm.HelmError as e:
        print(e, file=sys.stderr)
        return 65
    json.dump(manifests, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
