"""Generates weir's Grafana dashboards from code, with Grafana's grafana-foundation-sdk.

    pip install -r grafana/requirements.txt
    python grafana/generate.py           # writes grafana/dashboards/*.json
    python grafana/generate.py --check   # exits 1 when a committed file differs

Conventions every panel follows (checked by grafana/tests/test_dashboards.py): the datasource is
the `datasource` variable, `job_name` and `operator` variables filter every query, every
`rate`/`increase` uses `$__rate_interval`, every panel has a unit and a description saying what it
shows and what to do when it looks wrong.

Percentiles come from histograms, so they aggregate across subtasks and jobs. Each percentile
query is written for both kinds of Prometheus: classic buckets (`B_bucket`, the text formats)
`or` native histograms (`B`, protobuf with native histograms on). Only one side has data on a
given server, so the same dashboard works on both.
"""

from __future__ import annotations

import argparse
import difflib
import pathlib
import sys

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import heatmap, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "dashboards"
DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
SEL = 'job_name=~"$job_name",operator=~"$operator"'
RATE = "$__rate_interval"


# ---------------------------------------------------------------------------------------------
# Query helpers


def q(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").ref_id(ref).range()


def quantile(qv: float, hist: str, by: str = "", sel: str = SEL) -> str:
    """Job-wide (or per `by`) quantile from a distribution's histogram, classic or native."""
    by_classic = f"le, {by}" if by else "le"
    native_by = f" by ({by})" if by else ""
    return (
        f"histogram_quantile({qv}, sum by ({by_classic}) (rate({hist}_bucket{{{sel}}}[{RATE}])))"
        f" or histogram_quantile({qv}, sum{native_by} (rate({hist}{{{sel}}}[{RATE}])))"
    )


def mean(hist: str, sel: str = SEL) -> str:
    """Mean over the rate interval, from the histogram's sum and count, classic or native."""
    return (
        f"sum(rate({hist}_sum{{{sel}}}[{RATE}])) / sum(rate({hist}_count{{{sel}}}[{RATE}]))"
        f" or histogram_sum(sum(rate({hist}{{{sel}}}[{RATE}]))) / histogram_count(sum(rate({hist}{{{sel}}}[{RATE}])))"
    )


def heat(hist: str, sel: str = SEL) -> str:
    return f"sum by (le) (increase({hist}_bucket{{{sel}}}[{RATE}])) or sum(increase({hist}{{{sel}}}[{RATE}]))"


def rate_by(metric: str, by: str = "operator", sel: str = SEL) -> str:
    return f"sum by ({by}) (rate({metric}{{{sel}}}[{RATE}]))"


# ---------------------------------------------------------------------------------------------
# Panel helpers


class Layout:
    """Gives panels unique ids."""

    def __init__(self) -> None:
        self.next_id = 1

    def id(self) -> int:
        i = self.next_id
        self.next_id += 1
        return i


def series(lay: Layout, title: str, unit: str, desc: str, *targets, width: int = 12, stack: bool = False):
    p = timeseries.Panel().id(lay.id()).title(title).description(desc).unit(unit).datasource(DS).span(width).height(8)
    for t in targets:
        p = p.with_target(t)
    return p


def single(lay: Layout, title: str, unit: str, desc: str, target, width: int = 6, mappings=None):
    p = stat.Panel().id(lay.id()).title(title).description(desc).unit(unit).datasource(DS).span(width).height(4)
    if mappings:
        p = p.mappings(mappings)
    return p.with_target(target)


def heatmap_panel(lay: Layout, title: str, unit: str, desc: str, expr: str, width: int = 12):
    return (
        heatmap.Panel()
        .id(lay.id())
        .title(title)
        .description(desc)
        .unit(unit)
        .datasource(DS)
        .span(width)
        .height(8)
        .calculate(False)
        .y_axis(heatmap.YAxisConfig().unit(unit))
        .with_target(q(expr, "{{le}}").format(PromQueryFormat.HEATMAP))
    )


def datasource_var() -> db.DatasourceVariable:
    return db.DatasourceVariable("datasource").label("Data source").type("prometheus")


def label_var(name: str, label: str, query: str, regex: str = "") -> db.QueryVariable:
    v = (
        db.QueryVariable(name)
        .label(label)
        .datasource(DS)
        .query(query)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )
    if regex:
        v = v.regex(regex)
    return v


def base(uid: str, title: str, desc: str) -> db.Dashboard:
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(desc)
        .tags(["weir"])
        .editable()
        .refresh("10s")
        .time("now-30m", "now")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .with_variable(datasource_var())
        .with_variable(label_var("job_name", "Job", "label_values(weir_job_running, job_name)"))
    )


# ---------------------------------------------------------------------------------------------
# weir / Jobs


def jobs() -> db.Dashboard:
    lay = Layout()
    job = 'job_name=~"$job_name"'
    d = base(
        "weir-jobs",
        "weir / Jobs",
        "Jobs and their operators: throughput, time spent working and waiting, event time, state.",
    ).with_variable(
        label_var("operator", "Operator", 'label_values(weir_operator_records_in_total{job_name=~"$job_name"}, operator)')
    )
    running = [
        dm.ValueMap(
            {
                "0": dm.ValueMappingResult(text="finished", color="blue", index=0),
                "1": dm.ValueMappingResult(text="running", color="green", index=1),
            }
        )
    ]
    d = (
        d.with_row(db.Row("Jobs").id(lay.id()))
        .with_panel(
            single(
                lay,
                "Status",
                "none",
                "1 while the job runs, 0 once it has finished (its series stay until the environment closes). "
                "A streaming job that shows finished has stopped: read the program's output for the error.",
                q(f"max by (job_name) (weir_job_running{{{job}}})", "{{job_name}}"),
                mappings=running,
            )
        )
        .with_panel(
            single(
                lay,
                "Uptime",
                "s",
                "Time since the job started (frozen when it ends). Dropping to zero means the program was started again.",
                q(f"max by (job_name) (weir_job_uptime_seconds{{{job}}})", "{{job_name}}"),
            )
        )
        .with_panel(
            single(
                lay,
                "Restarts",
                "short",
                "Restarts of the job since it started. Anything above 0: look for the failure in the program's log.",
                q(f"sum by (job_name) (weir_job_restarts_total{{{job}}})", "{{job_name}}"),
            )
        )
        .with_panel(
            single(
                lay,
                "Rows in per second",
                "rowsps",
                "Rows entering all operators of the selected jobs. A fall to zero on a streaming job means the "
                "sources stopped: check the source connector and the Status panel.",
                q(f"sum(rate(weir_operator_records_in_total{{{SEL}}}[{RATE}]))", "rows in"),
            )
        )
        .with_row(db.Row("Operators").id(lay.id()))
        .with_panel(
            series(
                lay,
                "Rows in per second",
                "rowsps",
                "Rows each operator received, summed over its subtasks. An operator that receives much less "
                "than the one before it is filtering; one that receives nothing is starved upstream.",
                q(rate_by("weir_operator_records_in_total"), "{{operator}}"),
            )
        )
        .with_panel(
            series(
                lay,
                "Rows out per second",
                "rowsps",
                "Rows each operator emitted (for an updating aggregate, retractions count too). Out far above in "
                "means a join or table function multiplies rows.",
                q(rate_by("weir_operator_records_out_total"), "{{operator}}"),
            )
        )
        .with_panel(
            series(
                lay,
                "Busy",
                "percentunit",
                "Share of the last second the busiest subtask of each operator spent working. Near 100 % it is "
                "the bottleneck: raise parallelism.default or make its work cheaper.",
                q(f"max by (operator) (weir_operator_busy_ratio{{{SEL}}})", "{{operator}}"),
            )
        )
        .with_panel(
            series(
                lay,
                "Backpressured",
                "percentunit",
                "Share of the last second the most blocked subtask of each operator waited for room downstream. "
                "High here and busy downstream: the slow operator is the next busy one.",
                q(f"max by (operator) (weir_operator_backpressured_ratio{{{SEL}}})", "{{operator}}"),
            )
        )
        .with_panel(
            series(
                lay,
                "Watermark lag",
                "s",
                "Wall clock minus each operator's event-time watermark (worst subtask). Growing steadily: a "
                "source subtask is idle or behind, and windows wait for it.",
                q(f"max by (operator) (weir_operator_watermark_lag_seconds{{{SEL}}})", "{{operator}}"),
            )
        )
        .with_panel(
            series(
                lay,
                "Late rows dropped per second",
                "rowsps",
                "Rows that arrived after the watermark had passed their window, dropped by window operators. "
                "Not zero: widen the watermark delay in the table's WATERMARK clause.",
                q(rate_by("weir_operator_late_records_dropped_total"), "{{operator}}"),
            )
        )
        .with_panel(
            series(
                lay,
                "State size",
                "short",
                "Keys held (groups, open windows, join keys), summed over subtasks. Growing without bound on an "
                "unbounded key: add a window or filter the key space.",
                q(f"sum by (operator) (weir_operator_state_keys{{{SEL}}})", "{{operator}}"),
            )
        )
        .with_panel(
            series(
                lay,
                "Bytes in per second",
                "Bps",
                "Arrow buffer bytes each operator received. Compared with rows in, the average row size.",
                q(rate_by("weir_operator_bytes_in_total"), "{{operator}}"),
            )
        )
        .with_row(db.Row("Metrics pipeline").id(lay.id()))
        .with_panel(
            series(
                lay,
                "Exports per second",
                "ops",
                "Pushes delivered (A) and given up after retries (B) by the OTLP and Pushgateway exporters of "
                "each process. Failures: check metrics.reporter.*.endpoint / hostUrl and the collector.",
                q(f"sum by (exporter) (rate(weir_metrics_exports_total[{RATE}]))", "{{exporter}} delivered"),
                q(f"sum by (exporter) (rate(weir_metrics_export_failures_total[{RATE}]))", "{{exporter}} failed", "B"),
            )
        )
        .with_panel(
            series(
                lay,
                "Series dropped (cardinality limit)",
                "short",
                "Series not registered because their family reached metrics.weir.cardinality-limit, per "
                "family. Not empty: a label takes unbounded values (an id in add_group(key, value)); "
                "fix the UDF rather than raising the limit.",
                q("sum by (metric) (weir_metrics_series_dropped_total)", "{{metric}}"),
            )
        )
    )
    return d


# ---------------------------------------------------------------------------------------------
# weir / Python UDFs


def python_udfs() -> db.Dashboard:
    lay = Layout()
    d = base(
        "weir-python-udfs",
        "weir / Python UDFs",
        "Python UDF operators: calls, errors, bundle times from histograms, queues, workers, the channel.",
    ).with_variable(
        label_var("operator", "UDF operator", 'label_values(weir_python_udf_rows_total{job_name=~"$job_name"}, operator)')
    )
    bundle = "weir_python_udf_bundle_seconds"
    wait = "weir_python_udf_wait_seconds"
    rows = "weir_python_udf_bundle_rows"
    d = (
        d.with_row(db.Row("Calls").id(lay.id()))
        .with_panel(
            series(
                lay,
                "Rows per second",
                "rowsps",
                "Rows evaluated by the Python functions of each operator (one call per row and function for "
                "scalar UDFs). Flat at zero while the job runs: the operator gets no input.",
                q(rate_by("weir_python_udf_rows_total"), "{{operator}}"),
            )
        )
        .with_panel(
            series(
                lay,
                "Errors per second",
                "ops",
                "Exceptions raised by the UDFs (rows skipped with python.udf.on-error=skip, or the error that "
                "failed the job). Not zero: the job's log names the function and the input row.",
                q(rate_by("weir_python_udf_errors_total"), "{{operator}}"),
            )
        )
        .with_panel(
            series(
                lay,
                "Bundles per second",
                "ops",
                "Bundles sent to Python workers. Many bundles of few rows: raise python.fn-execution.bundle.size "
                "or bundle.time for throughput.",
                q(rate_by("weir_python_udf_bundles_total"), "{{operator}}"),
            )
        )
        .with_panel(
            series(
                lay,
                "Worker restarts",
                "short",
                "Python workers that died (crash, kill, heartbeat timeout) and were replaced; their bundles were "
                "replayed, so results and metrics stay exact. Repeated restarts: read the worker's last log lines.",
                q(f"sum by (operator) (increase(weir_python_udf_worker_restarts_total{{{SEL}}}[{RATE}]))", "{{operator}}"),
            )
        )
        .with_row(db.Row("Bundle time").id(lay.id()))
        .with_panel(
            series(
                lay,
                "Bundle time, job-wide",
                "s",
                "p50, p95, p99 of the time from sending a bundle to applying its result, over all subtasks (from "
                "the histogram, so these are true percentiles of the job). p99 far above p50: a few slow rows "
                "or a worker that paused (GC, swap).",
                q(quantile(0.5, bundle), "p50"),
                q(quantile(0.95, bundle), "p95", "B"),
                q(quantile(0.99, bundle), "p99", "C"),
            )
        )
        .with_panel(
            series(
                lay,
                "Bundle time per subtask",
                "s",
                "p50 and p99 of bundle time for each subtask. One subtask far above the others: its input is "
                "skewed (a hot key) or its worker is slower.",
                q(quantile(0.5, bundle, by="subtask"), "p50 subtask {{subtask}}"),
                q(quantile(0.99, bundle, by="subtask"), "p99 subtask {{subtask}}", "B"),
            )
        )
        .with_panel(
            heatmap_panel(
                lay,
                "Bundle time heatmap",
                "s",
                "How many bundles took how long, over time (all subtasks). A second band above the main one: "
                "some bundles are regularly slower (a different input, a slow call).",
                heat(bundle),
            )
        )
        .with_panel(
            series(
                lay,
                "Queue wait, job-wide",
                "s",
                "p50 and p99 of the time a bundle waited for a free worker before it was sent. High: the "
                "workers are saturated; raise parallelism or make the UDF cheaper.",
                q(quantile(0.5, wait), "p50"),
                q(quantile(0.99, wait), "p99", "B"),
            )
        )
        .with_row(db.Row("Bundles and the channel").id(lay.id()))
        .with_panel(
            series(
                lay,
                "Rows per bundle",
                "short",
                "p50 and p99 of bundle sizes, and the mean. Far below python.fn-execution.bundle.size: bundles "
                "are closed by bundle.time because input is slow.",
                q(quantile(0.5, rows), "p50"),
                q(quantile(0.99, rows), "p99", "B"),
                q(mean(rows), "mean", "C"),
            )
        )
        .with_panel(
            series(
                lay,
                "Bytes on the worker channel",
                "Bps",
                "Bytes sent to the workers (A) and received from them (B). Much more received than sent: the "
                "UDFs return large values; check their result types.",
                q(rate_by("weir_python_udf_sent_bytes_total"), "{{operator}} sent"),
                q(rate_by("weir_python_udf_received_bytes_total"), "{{operator}} received", "B"),
            )
        )
    )
    return d


# ---------------------------------------------------------------------------------------------
# weir / User metrics

# Distributions: the names of the `_window` series (their `quantile` label is one no UDF can
# use), without the suffix (the regex's capture group is the value).
DISTRIBUTION_REGEX = "/^(.*)_window$/"
# Gauges: user series without a `quantile` label, less the distributions' own names (a native
# histogram is a series named like its distribution), and less the suffixes of counters, meters
# and distributions. Grafana renders each `query_result` series as `name{labels} value time`;
# the regex keeps the name.
USER = 'job_name=~"$job_name", operator=~"$operator"'
GAUGE_QUERY = (
    f'query_result(group by (__name__) ({{__name__=~"weir_user_.+", quantile="", {USER}}})'
    " unless on (__name__) label_replace(group by (__name__) "
    f'({{__name__=~"weir_user_.+_window", {USER}}}), "__name__", "$1", "__name__", "(.+)_window"))'
)
GAUGE_REGEX = "/^(?![a-zA-Z0-9_:]*_(?:total|sum|count|bucket|min|max|mean)\\{)([a-zA-Z_:][a-zA-Z0-9_:]*)\\{/"


def user_metrics() -> db.Dashboard:
    lay = Layout()
    d = base(
        "weir-user-metrics",
        "weir / User metrics",
        "Every metric the UDFs register in open(ctx): counters and meters as rates, gauges, distributions "
        "as percentiles from histograms.",
    )
    d = (
        d.with_variable(
            label_var("operator", "Operator", 'label_values({__name__=~"weir_user_.+", job_name=~"$job_name"}, operator)')
        )
        .with_variable(
            label_var(
                "counter",
                "Counters and meters",
                'label_values({__name__=~"weir_user_.+_total", job_name=~"$job_name", operator=~"$operator"}, __name__)',
            )
        )
        .with_variable(
            label_var(
                "gauge",
                "Gauges",
                GAUGE_QUERY,
                regex=GAUGE_REGEX,
            )
        )
        .with_variable(
            label_var(
                "distribution",
                "Distributions",
                'label_values({__name__=~"weir_user_.+_window", quantile="0.5", job_name=~"$job_name", operator=~"$operator"}, __name__)',
                regex=DISTRIBUTION_REGEX,
            )
        )
    )
    hist = "${distribution}"
    d = (
        d.with_row(db.Row("Counters and meters").id(lay.id()))
        .with_panel(
            series(
                lay,
                "$counter per second",
                "ops",
                "Rate of the counter or meter per subtask (counters count what the UDF passes to inc(); a meter "
                "marks events). A counter that goes down shows as a spike: Prometheus reads any decrease as a "
                "restart; use a gauge for values that move both ways.",
                q(f"sum by (operator, subtask) (rate(${{counter}}{{{SEL}}}[{RATE}]))", "{{operator}} {{subtask}}"),
            ).repeat("counter")
        )
        .with_row(db.Row("Gauges").id(lay.id()))
        .with_panel(
            series(
                lay,
                "$gauge",
                "short",
                "The gauge's value per subtask as last read (callbacks are read every bundle.time). A gap: the "
                "callback raised, and the worker's log says why.",
                q(f"${{gauge}}{{{SEL}}}", "{{operator}} {{subtask}}"),
            ).repeat("gauge")
        )
        .with_row(db.Row("Distributions").id(lay.id()))
        .with_panel(
            series(
                lay,
                "$distribution percentiles, job-wide",
                "short",
                "p50, p90, p99 over all selected subtasks and jobs, from the histogram (classic buckets or "
                "native). Classic buckets bound the precision: set metrics.weir.histogram.buckets.<family> to "
                "bounds that fit the values, or scrape with native histograms on.",
                q(quantile(0.5, hist), "p50"),
                q(quantile(0.9, hist), "p90", "B"),
                q(quantile(0.99, hist), "p99", "C"),
            ).repeat("distribution")
        )
        .with_panel(
            series(
                lay,
                "$distribution mean, min and max",
                "short",
                "Mean over the dashboard's rate interval, and the all-time smallest and largest value of any "
                "subtask. Max far above p99: rare outliers worth a look in the input.",
                q(mean(hist), "mean"),
                q(f"min(${{distribution}}_min{{{SEL}}})", "min", "B"),
                q(f"max(${{distribution}}_max{{{SEL}}})", "max", "C"),
            ).repeat("distribution")
        )
        .with_panel(
            heatmap_panel(
                lay,
                "$distribution heatmap",
                "short",
                "How many values fell in which bucket, over time. Two bands: two populations in the input "
                "(two kinds of request, two sources).",
                heat(hist),
            ).repeat("distribution")
        )
    )
    return d


DASHBOARDS = {
    "weir-jobs.json": jobs,
    "weir-python-udfs.json": python_udfs,
    "weir-user-metrics.json": user_metrics,
}


def render(build) -> str:
    return JSONEncoder(sort_keys=True, indent=2).encode(build().build()) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    args = p.parse_args()
    OUT.mkdir(exist_ok=True)
    stale = []
    for name, build in DASHBOARDS.items():
        text = render(build)
        path = OUT / name
        if args.check:
            old = path.read_text() if path.exists() else ""
            if old != text:
                stale.append(name)
                sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), text.splitlines(True), str(path), "generated", n=1))
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(HERE.parent)}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python grafana/generate.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
