"""Alert delivery's pure core: Alertmanager's matchers, route tree, aggregation groups with their timers,
inhibition, silences and the dedup rule. No network, no clock: time comes in as an argument."""
