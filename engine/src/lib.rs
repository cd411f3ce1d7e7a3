//! weir's streaming engine. Empty for now: the engine issue builds the Table API, SQL and the
//! operators here, on top of `weir-metrics` for its own operator metrics.
