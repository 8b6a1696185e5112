"""The pure core: window math, sketches, counter math, rules, alert states, detectors, routing.

No Kafka, Faust, ClickHouse, network or clock in here: time and I/O come in as arguments.
"""
