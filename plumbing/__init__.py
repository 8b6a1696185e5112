"""What every component shares below it: configuration, errors, Kafka topics and the dev broker, self-metrics,
log redaction and the HTTP guard.

It sits above the pure core and below agents, sinks, producers, reports, dashboard and the CLI, so none of
those has to import the application shell (`watchkeeper/`) for a setting or a counter
(docs/concepts.md, "Architecture").
"""
