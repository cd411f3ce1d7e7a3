"""Metric types, as in ``pyflink.metrics``. They are native objects: an update is one method
call on a Rust structure.

- ``MetricGroup.add_group(name)`` / ``add_group(key, value)``, ``counter(name)``,
  ``gauge(name, obj)`` (``obj`` returns an int or a float; without ``obj`` the returned gauge
  is set with ``set(v)``), ``meter(name, time_span_in_seconds=60)``, ``distribution(name)``.
- ``Counter.inc(n=1)``, ``dec(n=1)``, ``get_count()``; ``Meter.mark_event(n=1)``,
  ``get_count()``, ``get_rate()``; ``Distribution.update(v)`` (int or float);
  ``Gauge.set(v)``, ``get_value()``.
"""

from weir._native import Counter, Distribution, Gauge, Meter, MetricGroup

__all__ = ["MetricGroup", "Counter", "Gauge", "Meter", "Distribution"]
